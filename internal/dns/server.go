// Package dns is Haven's traffic manager: an authoritative DNS server whose
// answers for a profile's name follow the health of the profile's endpoints,
// with an HTTP API for run-time changes and Prometheus metrics.
package dns

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/haven-dr/haven/internal/dns/health"
	"github.com/haven-dr/haven/internal/fence"
)

// Options configure a Server beyond its config file.
type Options struct {
	Log        *slog.Logger
	ConfigPath string // for Reload from the API or SIGHUP; may be empty
}

// Server serves DNS and the API for one configuration at a time.
type Server struct {
	log     *slog.Logger
	path    string
	table   atomic.Pointer[table]
	pool    *health.Pool
	metrics *metrics
	wire    atomic.Pointer[wireCache] // packed replies of the UDP fast path

	mu        sync.Mutex // serialises reloads and API edits
	ovr       atomic.Pointer[overrides]
	statePath string
	auth      atomic.Pointer[apiAuth]
	// epoch refuses endpoint changes from a deposed HA leader of haven
	// server (kept beside the state file).
	epoch *fence.Guard
	// versions numbers the zones' contents for secondaries (zone_transfer).
	versions *versions

	lis    *listeners
	dns    []*dns.Server
	api    *http.Server
	apiL   net.Listener
	apiTLS bool
	wg     sync.WaitGroup
	cl     cluster
}

// New compiles cfg, reads the state file of API changes, creates the API
// token if absent, and starts health checks; Start opens the sockets.
func New(cfg *Config, o Options) (*Server, error) {
	s := &Server{log: o.Log, path: o.ConfigPath}
	s.cl.clients, s.cl.views = map[peerConf]*Client{}, map[string]peerView{}
	if s.log == nil {
		s.log = slog.Default()
	}
	var e errs
	s.statePath = compileFiles(&e, cfg).state
	ov, err := loadOverrides(s.statePath)
	if err != nil {
		return nil, err
	}
	s.ovr.Store(&ov)
	guardPath := ""
	if s.statePath != "" {
		guardPath = s.statePath + ".leader-epoch"
	}
	if s.epoch, err = fence.Open(guardPath); err != nil {
		return nil, err
	}
	s.metrics = newMetrics(s)
	if s.versions, err = newVersions(s, s.statePath); err != nil {
		return nil, err
	}
	s.pool = health.NewPool(health.Hooks{Result: s.probeResult, Change: s.changed})
	if err := s.Reload(cfg); err != nil {
		s.pool.Close()
		return nil, err
	}
	s.versions.update() // the first version's serial before the first answer
	return s, nil
}

// Reload swaps in a new configuration; on error the old one keeps serving.
func (s *Server) Reload(cfg *Config) error {
	t, err := compile(cfg)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.table.Load()
	if old != nil && (old.listen != t.listen || old.api != t.api || old.files.state != t.files.state ||
		(old.files.cert == "") != (t.files.cert == "")) {
		s.log.Warn("listen, api, state_file and turning API TLS on or off change only on restart")
	}
	auth, err := loadAPIAuth(t, s.log)
	if err != nil {
		return err
	}
	s.applyOverrides(t)
	if err := s.attachDNSSEC(t); err != nil {
		return err
	}
	if err := s.attachCheckers(t); err != nil {
		return err
	}
	s.table.Store(t)
	if t.cluster != nil {
		s.vote(t.cluster) // the new endpoints get the cluster's verdicts at once
	}
	s.auth.Store(auth)
	s.log.Info("dns config loaded", "zones", len(t.zones), "profiles", len(t.profiles))
	return nil
}

// ReloadFile re-reads the config file given in Options.
func (s *Server) ReloadFile() error {
	if s.path == "" {
		return errors.New("no config file to reload")
	}
	cfg, err := LoadConfig(s.path)
	if err != nil {
		return err
	}
	return s.Reload(cfg)
}

func (s *Server) attachCheckers(t *table) error {
	var targets []health.Target
	var eps []*endpoint
	for _, p := range t.profiles {
		p.log = s.log
		p.metrics = s.metrics.forProfile(p.name)
		for _, e := range p.endpoints {
			e.metrics = s.metrics.forEndpoint(p.name, e.name)
			if e.spec != nil {
				targets = append(targets, health.Target{Profile: p.name, Endpoint: e.name, Host: e.probeHost, Spec: *e.spec})
				eps = append(eps, e)
			}
		}
	}
	cs, err := s.pool.Sync(targets)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	for i, c := range cs {
		eps[i].checker = c
	}
	return nil
}

// Start opens the DNS sockets (UDP and TCP) and the API listener.
func (s *Server) Start() error {
	s.catchUp() // before answering anyone
	t := s.table.Load()
	lis, err := listen(t.listen, runtime.GOMAXPROCS(0))
	if err != nil {
		return err
	}
	s.lis = lis
	for _, pc := range lis.udp {
		s.serve(&dns.Server{PacketConn: s.wrapUDP(pc), Handler: s, UDPSize: dns.MaxMsgSize, TsigProvider: tsigProvider{s}})
	}
	s.serve(&dns.Server{Listener: lis.tcp, Handler: s, ReadTimeout: 5 * time.Second, TsigProvider: tsigProvider{s}})
	s.versions.start() // NOTIFY only once secondaries can ask back
	if t.api != "" {
		if err := s.startAPI(t.api); err != nil {
			s.Close()
			return err
		}
	}
	s.startCluster()
	s.log.Info("dns serving", "listen", s.DNSAddr(), "api", s.APIAddr())
	return nil
}

func (s *Server) serve(srv *dns.Server) {
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	s.dns = append(s.dns, srv)
	s.wg.Go(func() {
		if err := srv.ActivateAndServe(); err != nil {
			s.log.Debug("dns server ended", "err", err)
		}
	})
	<-started
}

// DNSAddr is the bound DNS address (UDP and TCP share the port).
func (s *Server) DNSAddr() string {
	if s.lis == nil {
		return ""
	}
	return s.lis.tcp.Addr().String()
}

// APIAddr is the bound API address, "" without an API.
func (s *Server) APIAddr() string {
	if s.apiL == nil {
		return ""
	}
	return s.apiL.Addr().String()
}

// APIURL is the API's base URL for NewClient, "" without an API.
func (s *Server) APIURL() string {
	if s.apiL == nil {
		return ""
	}
	if s.apiTLS {
		return "https://" + s.APIAddr()
	}
	return "http://" + s.APIAddr()
}

// Close stops serving and probing.
func (s *Server) Close() error {
	for _, srv := range s.dns {
		_ = srv.Shutdown()
	}
	if s.api != nil {
		_ = s.api.Close()
	}
	s.stopCluster()
	s.wg.Wait()
	s.versions.close()
	s.pool.Close()
	return nil
}
