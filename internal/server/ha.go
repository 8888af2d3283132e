package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/haven-dr/haven/internal/store"
)

// HAConfig runs several servers on one PostgreSQL state: the one that
// holds the leader lease runs jobs, the others serve reads and forward
// writes to it.
type HAConfig struct {
	// Lease is how long the leader's lease lasts unrenewed (it renews
	// every third of it); 0 turns HA off.
	Lease time.Duration `yaml:"lease"`
	// Advertise is the URL other servers forward writes to; default
	// http://<listen>.
	Advertise string `yaml:"advertise"`
}

// ErrLostLease ends a leader that could not renew its lease in time:
// another server may lead by now, so it stops its jobs at once and exits
// (its supervisor restarts it as a follower).
var ErrLostLease = errors.New("lost the leader lease")

// lease is a server's part in leader election.
type lease struct {
	pg     *store.Postgres // unfenced: the lease itself and the leader lookup
	holder string
	epoch  atomic.Int64 // the fencing epoch of the store's writes; 0 when not leading
	// leading: this process runs jobs and takes writes.
	leading atomic.Bool
}

func newLease(pg *store.Postgres) *lease {
	host, _ := os.Hostname()
	return &lease{pg: pg, holder: fmt.Sprintf("%s/%d/%s", host, os.Getpid(), rand.Text()[:8])}
}

// runHA waits for the lease, then leads until ctx ends or the lease is
// lost. The leader's work (lead) starts only once the lease is held,
// and every write it makes carries the lease's epoch, so a deposed
// leader cannot save a step even before it notices.
func (s *Server) runHA(ctx context.Context) error {
	ttl, tick := s.cfg.HA.Lease, s.cfg.HA.Lease/3
	var epoch int64
	var sent time.Time
	for {
		sent = time.Now()
		e, ok, err := s.lease.pg.Acquire(ctx, s.lease.holder, s.cfg.HA.Advertise, ttl)
		if ok {
			epoch = e
			break
		}
		if err != nil && ctx.Err() == nil {
			s.log.Warn("leader lease", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(tick):
		}
	}
	s.lease.epoch.Store(epoch)
	s.lease.leading.Store(true)
	s.log.Info("leading", "epoch", epoch, "holder", s.lease.holder)
	stop, err := s.lead(ctx)
	if err != nil {
		return err
	}
	why := s.holdLease(ctx, epoch, sent)
	if why != nil {
		// Fenced already: nothing this process still has in flight lands.
		s.lease.leading.Store(false)
		stop()
		return fmt.Errorf("%w (%v): stopped all jobs; restart to serve as a follower", ErrLostLease, why)
	}
	stop() // jobs save where they stopped while the lease is still held
	s.lease.leading.Store(false)
	rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.lease.pg.Release(rctx, s.lease.holder, epoch)
}

// forward sends a write that reaches a follower to the leader.
func (s *Server) forward(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if readOnly(r.Method) || s.lease.leading.Load() {
			next.ServeHTTP(w, r)
			return
		}
		l, err := s.lease.pg.Leader(r.Context())
		if err != nil || l.Addr == s.cfg.HA.Advertise {
			// No leader now (one is taking over): the caller retries.
			writeErr(w, http.StatusServiceUnavailable, "no leader server right now; retry in a few seconds")
			return
		}
		u, err := url.Parse(l.Addr)
		if err != nil {
			writeErr(w, http.StatusBadGateway, "leader address "+l.Addr+": "+err.Error())
			return
		}
		p := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.SetXForwarded()
		}, ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			// A leader that just died: another takes over within a lease.
			// Only a refused connection proves the write never arrived;
			// any later failure leaves it unknown, and a blind retry
			// could submit a job twice.
			var op *net.OpError
			if errors.As(err, &op) && op.Op == "dial" {
				writeErr(w, http.StatusServiceUnavailable, "leader server unreachable, retry in a few seconds: "+err.Error())
				return
			}
			writeErr(w, http.StatusBadGateway, "the leader server did not answer; the request may have been applied "+
				"(look at the jobs before sending it again): "+err.Error())
		}}
		p.ServeHTTP(w, r)
	})
}

// holdLease renews the lease until ctx ends (nil) or it is lost. A local
// watchdog fences the store once a lease's time has passed since the
// last renewal was sent, so a leader cut off from PostgreSQL stops
// writing no later than the lease expires there.
func (s *Server) holdLease(ctx context.Context, epoch int64, acquired time.Time) error {
	ttl, tick := s.cfg.HA.Lease, s.cfg.HA.Lease/3
	lost := make(chan struct{})
	var once sync.Once
	watchdog := time.AfterFunc(ttl-time.Since(acquired), func() { once.Do(func() { s.lease.epoch.Store(0); close(lost) }) })
	defer watchdog.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-lost:
			return errors.New("not renewed within the lease")
		case <-time.After(tick):
		}
		sent := time.Now()
		rctx, cancel := context.WithTimeout(ctx, tick)
		err := s.lease.pg.Renew(rctx, s.lease.holder, epoch, ttl)
		cancel()
		switch {
		case errors.Is(err, store.ErrNotLeader):
			s.lease.epoch.Store(0)
			return err
		case err != nil:
			if ctx.Err() == nil {
				s.log.Warn("renew leader lease", "err", err)
			}
		default:
			watchdog.Reset(ttl - time.Since(sent))
		}
	}
}
