package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/haven-dr/haven/internal/blob"
)

const locksPrefix = "locks/"

// Lock leases: a writer refreshes its lock every LockRefresh; a lock not
// refreshed for LockLease belongs to a dead or cut-off process and is
// ignored. A holder trusts its own lease only for LockLease - LockRefresh
// after the last refresh that succeeded (measured on the monotonic clock):
// the margin covers clock skew between machines and the time a commit's
// writes take.
var (
	LockLease   = 90 * time.Second
	LockRefresh = 20 * time.Second
)

// ErrLeaseLost: the operation's lock could not be refreshed in time, so
// another process may already act as if it were gone. Nothing was
// committed; the operation can be run again.
var ErrLeaseLost = errors.New("vault lock lease lost (lock refresh failed); nothing committed")

// Lock kinds. Snapshots take shared locks (any number at once, and they
// never wait). Prune takes an exclusive lock, which only excludes other
// prunes: it never blocks snapshots, because it deletes data in two phases
// (see garbage.go) and never deletes what a writer may still reference.
const (
	lockShared    = "shared"
	lockExclusive = "exclusive"
)

type lockFile struct {
	Kind     string    `json:"kind"`
	Holder   string    `json:"holder"`
	Host     string    `json:"host"`
	PID      int       `json:"pid"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
	Released bool      `json:"released,omitempty"`
}

// Lock is a held lease, refreshed in the background until Release. Every
// write of it is a new object locks/<id>/<seq> and its release is one more,
// locks/<id>/released: the holder never overwrites or deletes (an agent's
// credential may only add objects), and readers go by the newest object of
// each lock. Prune, which holds the admin credential, removes them.
type Lock struct {
	v    *Vault
	name string // locks/<id>: the prefix of all of this lock's objects
	seq  int
	file lockFile
	stop chan struct{}
	done sync.WaitGroup
	once sync.Once

	mu        sync.Mutex
	safeUntil time.Time // monotonic; zero until the first write succeeded
	lost      error     // sticky: once lapsed, others may have acted on it
	lapsed    chan struct{}
}

// write stores the lock's next object and, on success, extends how long
// the holder may trust it: from the moment the write started, since the
// lock may have become visible to others at any point of the call.
func (l *Lock) write(ctx context.Context) error {
	start := time.Now()
	l.file.Expires = start.Add(LockLease).UTC()
	data, err := encodeSigned(&l.file, nil)
	if err != nil {
		return err
	}
	// A failed write still takes its number: the service may have applied
	// it, and the next write must not land on the same name.
	l.seq++
	if err := l.v.be.Put(ctx, lockSeqName(l.name, l.seq), data); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// A refresh that lands after the lease lapsed does not revive it:
	// another process may have acted on its absence in between.
	if l.lapsedLocked() == nil {
		l.safeUntil = start.Add(LockLease - LockRefresh)
	}
	return nil
}

// check returns ErrLeaseLost unless the lease is certainly still held.
func (l *Lock) check() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lapsedLocked()
}

func (l *Lock) lapsedLocked() error {
	if l.lost == nil && !l.safeUntil.IsZero() && !time.Now().Before(l.safeUntil) {
		l.lost = fmt.Errorf("%w: last refreshed more than %s ago", ErrLeaseLost, LockLease-LockRefresh)
		close(l.lapsed)
	}
	return l.lost
}

// bind returns a context that is cancelled with ErrLeaseLost as soon as the
// lease is known to be lost, so a long snapshot stops uploading for nothing.
func (l *Lock) bind(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-l.lapsed:
			cancel(l.check())
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(nil) }
}

// guard returns a context for a write that must not land after the lease
// may have lapsed: it ends when the lease stops being trustworthy.
func (l *Lock) guard(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if err := l.check(); err != nil {
		return nil, nil, err
	}
	l.mu.Lock()
	until := l.safeUntil
	l.mu.Unlock()
	ctx, cancel := context.WithDeadlineCause(ctx, until, ErrLeaseLost)
	return ctx, cancel, nil
}

// guarded runs a write under guard and reports a lapse as ErrLeaseLost.
func (l *Lock) guarded(ctx context.Context, write func(context.Context) error) error {
	gctx, cancel, err := l.guard(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	err = write(gctx)
	if err != nil && errors.Is(context.Cause(gctx), ErrLeaseLost) {
		return fmt.Errorf("%w: %v", ErrLeaseLost, err)
	}
	return err
}

// liveLocks returns the other holders' unexpired locks. A lock that cannot be
// read is treated as a live exclusive lock created at the dawn of time until
// it is older than the lease: when in doubt, do not delete.
func (v *Vault) liveLocks(ctx context.Context, self string) ([]lockFile, error) {
	groups, err := v.lockGroups(ctx)
	if err != nil {
		return nil, err
	}
	var live []lockFile
	now := time.Now()
	for _, g := range groups {
		if g.name == self || g.released || !g.maybeLive(now) {
			continue
		}
		data, err := v.be.Get(ctx, g.newest.Name, 0, -1)
		if errors.Is(err, blob.ErrNotFound) {
			continue // cleaned up meanwhile (or a legacy lock released)
		} else if err != nil {
			return nil, err
		}
		var lf lockFile
		if err := decodeSigned(g.newest.Name, data, nil, &lf); err != nil {
			if now.Sub(g.newest.ModTime) < LockLease {
				live = append(live, lockFile{Kind: lockExclusive, Holder: "unreadable " + g.newest.Name})
			}
			continue
		}
		if now.Before(lf.Expires) && !lf.Released {
			live = append(live, lf)
		}
	}
	return live, nil
}

// holderName says who holds a lock: the configured name (several agents
// may share one) made unique by host and process.
func (v *Vault) holderName(host string) string {
	id := fmt.Sprintf("%s/%d", host, os.Getpid())
	if v.holder == "" {
		return id
	}
	return v.holder + "@" + id
}

// acquire writes a lock of kind, then looks at the others (write first, then
// list: of two racing lockers at least one sees the other). A shared lock
// never waits. An exclusive lock waits while another exclusive one is live.
func (v *Vault) acquire(ctx context.Context, kind string, wait time.Duration) (*Lock, error) {
	host, _ := os.Hostname()
	deadline := time.Now().Add(wait)
	for {
		// A new lock each attempt: the last one was released.
		l := &Lock{v: v, name: locksPrefix + randomHex(16), stop: make(chan struct{}), lapsed: make(chan struct{}),
			file: lockFile{Kind: kind, Holder: v.holderName(host), Host: host, PID: os.Getpid(), Created: time.Now().UTC()}}
		if err := l.write(ctx); err != nil {
			return nil, fmt.Errorf("write lock: %w", err)
		}
		peers, err := v.liveLocks(ctx, l.name)
		if err != nil {
			l.writeRelease(context.WithoutCancel(ctx))
			return nil, err
		}
		blocker := ""
		for _, p := range peers {
			if kind == lockExclusive && p.Kind == lockExclusive {
				blocker = p.Holder
			}
		}
		if blocker == "" {
			l.done.Add(1)
			go l.refresh()
			return l, nil
		}
		// Step back so the other prune can finish, then try again.
		l.writeRelease(context.WithoutCancel(ctx))
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w (exclusive lock held by %s)", ErrLocked, blocker)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// refresh rewrites the lock every LockRefresh, and sooner after a failure,
// so that a short storage hiccup does not cost the lease.
func (l *Lock) refresh() {
	defer l.done.Done()
	next := LockRefresh
	for {
		t := time.NewTimer(next)
		select {
		case <-l.stop:
			t.Stop()
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), LockRefresh)
		err := l.write(ctx)
		cancel()
		next = LockRefresh
		if err != nil {
			next = LockRefresh / 4
		}
		// A refresh that succeeded too late still loses the lease; once
		// lost, refreshing is pointless: the holder can commit nothing.
		if lost := l.check(); lost != nil {
			slog.Warn("vault lock lease lost", "lock", l.name, "err", err)
			return
		}
		if err != nil {
			slog.Warn("vault lock refresh failed, retrying", "lock", l.name, "err", err)
		}
	}
}

// Release stops refreshing and writes the release object. If that write
// fails, the lock expires after the lease like a crashed holder's.
func (l *Lock) Release() {
	l.once.Do(func() {
		close(l.stop)
		l.done.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		l.writeRelease(ctx)
	})
}

// writeRelease stores locks/<id>/released. It is a lock object that has
// already expired, so a reader that predates release objects ignores it
// and waits for the lock's last refresh to expire: later, never earlier.
func (l *Lock) writeRelease(ctx context.Context) {
	f := l.file
	f.Expires, f.Released = time.Now().UTC(), true
	data, err := encodeSigned(&f, nil)
	if err == nil {
		err = l.v.be.Put(ctx, l.name+"/"+lockReleased, data)
	}
	if err != nil {
		slog.Warn("vault lock release failed; it expires with its lease", "lock", l.name, "err", err)
	}
}
