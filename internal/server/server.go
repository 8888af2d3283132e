package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/haven-dr/haven/internal/alert"
	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/vault"
	"github.com/haven-dr/haven/internal/vnet"
)

// Server is a running control plane.
type Server struct {
	cfg    *Config
	log    *slog.Logger
	store  store.Store
	vault  *vault.Vault
	host   *host.Local
	orch   *orchestrator.Orchestrator
	cat    *catalogWriter
	alerts *alerts
	// tokens holds the admin's and the viewer's token hashes; a viewer
	// may read through the API and the console but change nothing.
	tokens   *tokens
	sessions *sessions
	start    time.Time
	// lease is set with ha.lease: only the leader runs jobs (ha.go).
	lease *lease
	// cert is what the API is served with; nil serves plain HTTP.
	cert *tls.Certificate
	// unclaim lets another server use the PostgreSQL state (store.Claim).
	unclaim func()
	// copies keep the second vaults current (copies.go).
	copies []*copier
	// hosts are the recovery hosts, fenced, as the orchestrator has them.
	hosts []orchestrator.SiteHost
	// dnsServers is the traffic loop's last look at the DNS servers.
	dnsServers atomic.Pointer[[]api.DNSServerStatus]
}

// Options are the parts a caller (a test) may replace.
type Options struct {
	Logger *slog.Logger
	Agents orchestrator.AgentDialer // default HTTP
	// AlertRetry bounds webhook and e-mail redelivery (default: 10
	// attempts, 1s doubling up to 5m).
	AlertRetry alert.Retry
	// Hosts dials the remote recovery hosts of the config (hosts.go).
	Hosts HostDialer
}

// New opens the state, the vault and the recovery host. It does not
// start jobs or listen yet (Run does).
func New(ctx context.Context, cfg *Config, o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Agents == nil {
		o.Agents = orchestrator.HTTPAgents
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, err
	}
	toks, err := openTokens(cfg)
	if err != nil {
		return nil, err
	}
	cert, err := serverCert(cfg)
	if err != nil {
		return nil, err
	}
	v, err := cfg.openVault(ctx)
	if err != nil {
		return nil, err
	}
	var st store.Store
	if cfg.State != "" {
		st, err = store.OpenPostgres(ctx, cfg.State)
	} else {
		st, err = store.OpenSQLite(ctx, filepath.Join(cfg.StateDir, "state.db"))
	}
	if err != nil {
		v.Close()
		return nil, err
	}
	var ls *lease
	if cfg.HA.Lease > 0 {
		pg := st.(*store.Postgres)
		lpg, err := pg.ForLease(ctx)
		if err != nil {
			st.Close()
			v.Close()
			return nil, err
		}
		ls = newLease(lpg)
		st = pg.Fenced(&ls.epoch)
	}
	h, err := host.NewLocal(filepath.Join(cfg.StateDir, "host"), v, nil)
	if err != nil {
		st.Close()
		v.Close()
		return nil, err
	}
	h.Tunnels = cfg.Tunnels
	h.Underlay = cfg.localUnderlay()
	h.UseVMs(cfg.VMConfig)
	// Recovered machines run detached, so a server restart leaves them
	// serving; tests that build a server in-process have no haven binary.
	if exe, err := os.Executable(); err == nil && filepath.Base(exe) == "haven" {
		h.Exec = exe
	}
	alloc, err := vnet.OpenAllocator(filepath.Join(cfg.StateDir, "addresses.json"))
	if err != nil {
		st.Close()
		v.Close()
		return nil, err
	}
	al, err := newAlerts(cfg, o.Logger, o.AlertRetry)
	if err != nil {
		st.Close()
		v.Close()
		return nil, err
	}
	unclaim := func() {}
	if pg, ok := st.(*store.Postgres); ok {
		if unclaim, err = pg.Claim(ctx, ls != nil); err != nil {
			st.Close()
			v.Close()
			return nil, err
		}
	}
	cat := newCatalogWriter(st, v, o.Logger, cfg.CatalogRetry)
	cat.seqFile = filepath.Join(cfg.StateDir, catalogSeqFile)
	cat.secrets = func(doc json.RawMessage) (*CatalogSecrets, error) { return collectSecrets(cfg, doc) }
	dial := o.Hosts
	if dial == nil {
		dial = dialHostAPI(filepath.Join(cfg.StateDir, "disks"))
	}
	hosts, err := siteHosts(ctx, cfg, h, dial, v, ls.enter)
	if err != nil {
		h.Close(ctx)
		st.Close()
		v.Close()
		return nil, err
	}
	orch := orchestrator.New(orchestrator.Options{Store: st, Hosts: hosts, Vault: v,
		Agents: fencedAgents(o.Agents, ls.enter), Traffic: fencedTraffic(orchestrator.DNSTraffic, ls.enter),
		DiskDir: filepath.Join(cfg.StateDir, "disks"), Edge: cfg.Edge.String(),
		Alloc: alloc, Logger: o.Logger, StandbyEnabled: *cfg.Standby, OnChange: cat.changed, Islands: cfg.Islands})
	orch.Registry().MustRegister(al.collectors()...)
	orch.DrillGrace = cfg.DrillGrace
	srv := &Server{cfg: cfg, log: o.Logger, store: st, vault: v, host: h, orch: orch, cat: cat, alerts: al, tokens: toks,
		sessions: newSessions(), start: time.Now(), lease: ls, cert: cert, unclaim: unclaim, copies: newCopiers(cfg), hosts: hosts}
	toks.rotated = func(role string) { srv.tokenRotated(role); cat.changed() }
	return srv, nil
}

func password(file string) (string, error) {
	p, err := vault.LoadPassword(file)
	if errors.Is(err, vault.ErrNoPassword) {
		return "", fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return p, err
}

// Orchestrator is the server's job runner (tests).
func (s *Server) Orchestrator() *orchestrator.Orchestrator { return s.orch }

// Run resumes unfinished jobs, keeps standby images current and serves
// the API on ln until ctx ends. With HA, only the leader does the
// former; every server serves the API.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if s.lease == nil {
		stop, err := s.lead(ctx)
		if err != nil {
			return err
		}
		defer stop()
		return s.serve(ctx, ln)
	}
	served := make(chan error, 1)
	go func() { served <- s.serve(ctx, ln); cancel() }()
	err := s.runHA(ctx)
	cancel()
	return errors.Join(err, <-served)
}

// lead starts what only one server may run: jobs, standby images, alerts
// and the catalog. stop ends them in order.
func (s *Server) lead(ctx context.Context) (stop func(), err error) {
	var unfenced []orchestrator.SiteHost
	if s.lease != nil {
		unfenced = s.fenceHosts(ctx, s.hosts)
	}
	if err := s.orch.Start(ctx); err != nil {
		return nil, err
	}
	catStop := s.cat.start(ctx)
	// The loops may be mid vault check or mid image: they end before
	// Close closes the vault, and before a deposed leader returns.
	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.drillLoop(lctx) })
	wg.Go(func() { s.standbyLoop(lctx) })
	wg.Go(func() { s.alertLoop(lctx) })
	for _, c := range s.copies {
		wg.Go(func() { s.copyLoop(lctx, c) })
	}
	wg.Go(func() { s.trafficLoop(lctx) })
	wg.Go(func() { s.fenceLoop(lctx, unfenced) })
	return func() {
		cancel()
		wg.Wait()
		s.orch.Close()
		catStop() // after orch.Close, so it saves what stopping jobs changed
	}, nil
}

func (s *Server) serve(ctx context.Context, ln net.Listener) error {
	var h http.Handler = s.Handler()
	if s.lease != nil {
		h = s.forward(h)
	}
	// A client that does not trust the certificate is a handshake error
	// per attempt: not worth more than a debug line.
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if s.cert != nil {
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{*s.cert}, MinVersion: tls.VersionTLS12})
	}
	s.log.Info("haven server listening", "addr", ln.Addr().String(), "tls", s.cfg.TLS.Mode, "state", s.cfg.StateDir, "token_file", s.cfg.TokenFile)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Close releases the state and the vault; the recovery machines this
// process runs are stopped gracefully.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.host.Close(ctx)
	s.unclaim()
	err := errors.Join(s.store.Close(), s.vault.Close())
	if s.lease != nil {
		err = errors.Join(err, s.lease.pg.Close())
	}
	return err
}

func (s *Server) standbyLoop(ctx context.Context) {
	for {
		if err := s.orch.RefreshStandby(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("standby images", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.StandbyInterval):
		}
	}
}
