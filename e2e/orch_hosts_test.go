package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/blobopen"
	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/httpauth"
	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/machinetest"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/server"
	"github.com/haven-dr/haven/internal/server/client"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vault"
	"github.com/haven-dr/haven/internal/vnet"
)

// lossyHost is a real in-process host (host.Local, its own state
// directory and so its own namespace names) that the test can lose: its
// machines are stopped, as when the machine dies, and from then on every
// call fails and Ping says so, as a `haven host` that no longer answers.
// It counts the machines it started.
type lossyHost struct {
	*host.Local
	name string

	mu      sync.Mutex
	lost    error
	starts  map[string]int
	loseAt  string // lose the host when this machine is started
	cleanup func()
}

var errHostGone = errors.New("connection refused (host lost by the test)")

func (h *lossyHost) check() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lost
}

func (h *lossyHost) lose() {
	h.mu.Lock()
	h.lost = errHostGone
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h.Local.Close(ctx) // its machines die with it
}

func (h *lossyHost) Ping(ctx context.Context) error { return h.check() }

func (h *lossyHost) EnsureSite(ctx context.Context, site string, nets []vnet.Network, edge string) error {
	if err := h.check(); err != nil {
		return err
	}
	return h.Local.EnsureSite(ctx, site, nets, edge)
}

func (h *lossyHost) RemoveSite(ctx context.Context, site string) error {
	if err := h.check(); err != nil {
		return err
	}
	return h.Local.RemoveSite(ctx, site)
}

func (h *lossyHost) PrepareDisk(ctx context.Context, req host.DiskRequest) (*host.DiskResult, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	return h.Local.PrepareDisk(ctx, req)
}

func (h *lossyHost) RemoveDisk(ctx context.Context, path string) error {
	if err := h.check(); err != nil {
		return err
	}
	return h.Local.RemoveDisk(ctx, path)
}

func (h *lossyHost) StartMachine(ctx context.Context, site, driver string, spec machine.Spec) error {
	if err := h.check(); err != nil {
		return err
	}
	h.mu.Lock()
	at := h.loseAt == spec.Name
	h.mu.Unlock()
	if at {
		h.lose()
		return errHostGone
	}
	if err := h.Local.StartMachine(ctx, site, driver, spec); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.starts[spec.Name]++
	return nil
}

func (h *lossyHost) StopMachine(ctx context.Context, site, name string) error {
	if err := h.check(); err != nil {
		return err
	}
	return h.Local.StopMachine(ctx, site, name)
}

func (h *lossyHost) Running(site, name string) bool {
	return h.check() == nil && h.Local.Running(site, name)
}

func (h *lossyHost) WaitHealthy(ctx context.Context, site string, spec machine.Spec) error {
	if err := h.check(); err != nil {
		return err
	}
	return h.Local.WaitHealthy(ctx, site, spec)
}

func (h *lossyHost) startsOf(m string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.starts[m]
}

// TestThreeHostsFailover runs the real server (in process, its API over
// HTTP) on three recovery hosts, each a real host.Local with its own
// state and namespaces: apply places db and web on different hosts; an
// unplanned failover loses web's host as it starts web, fails naming it,
// and the retry brings web up on the third host without starting db again;
// then db's host dies after the failover, and recover-machines brings db
// up on the one host left, beside web.
func TestThreeHostsFailover(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	dir, vaultURL, pw := hostsVault(t)
	off := false
	// Islands: in-process hosts share this process's namespace, where no
	// underlay may be; the overlay is TestHostsFailoverOverlay's.
	cfg := &server.Config{Listen: "127.0.0.1:0", StateDir: filepath.Join(dir, "server"), Vault: vaultURL,
		PasswordFile: pw, Standby: &off, Islands: true}
	hosts := map[string]*lossyHost{}
	for _, n := range []string{"a", "b", "c"} {
		tok := filepath.Join(dir, n+".token")
		hostsMust(t, os.WriteFile(tok, []byte(n+"-token-0123456789abcdef\n"), 0o600))
		cfg.Hosts = append(cfg.Hosts, server.HostConfig{Name: n, URL: "https://" + n + ".invalid:7790", TokenFile: tok, CPUs: 4, MemoryMB: 1024})
	}
	hostsMust(t, cfg.Defaults())
	dial := func(ctx context.Context, hc server.HostConfig, v *vault.Vault) (host.Host, error) {
		l, err := host.NewLocal(filepath.Join(dir, "host-"+hc.Name), v, nil)
		if err != nil {
			return nil, err
		}
		h := &lossyHost{Local: l, name: hc.Name, starts: map[string]int{}}
		hosts[hc.Name] = h
		t.Cleanup(func() {
			cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			l.Close(cctx)
			for _, s := range []string{orchestrator.SiteRecovery, orchestrator.SiteTest} {
				if err := l.RemoveSite(cctx, s); err != nil {
					t.Errorf("host %s: remove site %s: %v", hc.Name, s, err)
				}
				if _, err := os.Stat(filepath.Join("/var/run/netns", l.SiteNS(s))); err == nil {
					t.Errorf("host %s: namespace %s left behind", hc.Name, l.SiteNS(s))
				}
			}
		})
		return h, nil
	}
	c := startHostsServer(t, cfg, dial)

	res, err := c.Apply(ctx, []byte(hostsShop))
	hostsMust(t, err)
	db, web := res.Placement["db"], res.Placement["web"]
	if db == "" || web == "" || db == web {
		t.Fatalf("db and web (2 CPUs each) spread over empty hosts of 4: want two hosts, got %v", res.Placement)
	}
	if len(res.Warnings) != 0 {
		t.Fatalf("two machines on three hosts survive any one host: %q", res.Warnings)
	}

	hosts[web].mu.Lock()
	hosts[web].loseAt = "web"
	hosts[web].mu.Unlock()
	j, err := c.Submit(ctx, "shop", string(orchestrator.UnplannedFailover), api.Params{})
	hostsMust(t, err)
	j = waitHostsJob(t, c, j.ID)
	if j.State != "failed" || !strings.Contains(j.Error, "host "+web+": ") {
		t.Fatalf("failover: %s: %q, want failed naming host %s", j.State, j.Error, web)
	}
	_, err = c.Retry(ctx, j.ID)
	hostsMust(t, err)
	if j = waitHostsJob(t, c, j.ID); j.State != "succeeded" {
		t.Fatalf("retry: %s: %s", j.State, j.Error)
	}
	third := "abc"
	for _, n := range []string{db, web} {
		third = strings.Replace(third, n, "", 1)
	}
	if !hosts[third].Running(orchestrator.SiteRecovery, "web") || hosts[third].startsOf("web") != 1 {
		t.Fatalf("web not running on the third host %s (starts %d)", third, hosts[third].startsOf("web"))
	}
	if hosts[db].startsOf("db") != 1 || !hosts[db].Running(orchestrator.SiteRecovery, "db") {
		t.Fatalf("db on %s: started %d times, running %v: want once, running", db, hosts[db].startsOf("db"), hosts[db].Running(orchestrator.SiteRecovery, "db"))
	}
	if out := outputsOfAPI(t, j); out.Placement["web"] != third || out.Placement["db"] != db {
		t.Fatalf("job records %v, want db on %s, web on %s", out.Placement, db, third)
	}

	// db's host dies after the failover: recover-machines puts db beside
	// web, the only host left, from the newest point.
	hosts[db].lose()
	r, err := c.Submit(ctx, "shop", string(orchestrator.RecoverMachines), api.Params{})
	hostsMust(t, err)
	if r = waitHostsJob(t, c, r.ID); r.State != "succeeded" {
		t.Fatalf("recover-machines: %s: %s", r.State, r.Error)
	}
	if !hosts[third].Running(orchestrator.SiteRecovery, "db") || hosts[third].startsOf("web") != 1 {
		t.Fatalf("db not running on %s, or web started again (%d)", third, hosts[third].startsOf("web"))
	}
	if out := outputsOfAPI(t, r); len(out.Lost) != 1 || out.Lost[0] != "db" {
		t.Fatalf("recover-machines found lost %v, want [db]", out.Lost)
	}

	// Cancel removes both machines and the site from the host left.
	cj, err := c.Submit(ctx, "shop", string(orchestrator.CancelFailover), api.Params{})
	hostsMust(t, err)
	if cj = waitHostsJob(t, c, cj.ID); cj.State != "succeeded" {
		t.Fatalf("cancel: %s: %s", cj.State, cj.Error)
	}
	for _, m := range []string{"db", "web"} {
		if hosts[third].Running(orchestrator.SiteRecovery, m) {
			t.Fatalf("%s still runs on %s after the cancel", m, third)
		}
	}
	if _, err := os.Stat(filepath.Join("/var/run/netns", hosts[third].SiteNS(orchestrator.SiteRecovery))); err == nil {
		t.Fatalf("the recovery site's namespace is left on %s", third)
	}
}

// hostsShop is two ns machines of the guest image (which serves HTTP on
// port 80), 2 CPUs each, no agent (the primary is simply gone) and no
// uplink.
const hostsShop = hostsNets + `machines:
  - {name: db, cpus: 2, disks: [{name: root}], health: {tcp_port: 80}, health_timeout: 1m,
     nics: [{name: eth0, network: prod, address: 10.1.0.10/24, recovery: static, static: 10.2.0.10}]}
  - {name: web, cpus: 2, disks: [{name: root}], health: {http_port: 80, http_path: /}, health_timeout: 1m,
     nics: [{name: eth0, network: prod, address: 10.1.0.20/24, recovery: static, static: 10.2.0.20}]}
plans:
  - name: shop
    groups:
      - {name: database, machines: [db]}
      - {name: web, machines: [web]}
`

// hostsNets are the sites and networks of the hosts tests' plans.
const hostsNets = `sites: {primary: onprem, recovery: cloud}
networks:
  primary: [{name: prod, subnet: 10.1.0.0/24, gateway: 10.1.0.1}]
  recovery: [{name: rec, subnet: 10.2.0.0/24, gateway: 10.2.0.1}]
  test: [{name: drill, subnet: 10.2.0.0/24, gateway: 10.2.0.1}]
mapping: {recovery: {prod: rec}, test: {prod: drill}}
`

// seedHostsVault makes the vault with one point of each machine's root
// disk (the guest image).
func seedHostsVault(t *testing.T, url string) {
	ctx := context.Background()
	be, err := blobopen.Open(ctx, url, blob.DefaultLimits())
	hostsMust(t, err)
	v, err := vault.Init(ctx, be, "correct horse", vault.Options{KDF: vault.KDFParams{N: 1 << 10, R: 8, P: 1}})
	hostsMust(t, err)
	defer v.Close()
	for _, m := range []string{"db", "web"} {
		_, _, err := v.Snapshot(ctx, vault.SnapshotOptions{Machine: m, Disks: []vault.DiskSource{{Name: "root", Path: machinetest.Image(t)}},
			Consistency: vault.CrashConsistent, Provider: "none"})
		hostsMust(t, err)
	}
}

func startHostsServer(t *testing.T, cfg *server.Config, dial server.HostDialer) *client.Client {
	s, err := server.New(context.Background(), cfg, server.Options{Hosts: dial, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hostsMust(t, err)
	ln, err := net.Listen("tcp", cfg.Listen)
	hostsMust(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		s.Close()
	})
	tok, err := httpauth.ReadTokenFile(cfg.TokenFile)
	hostsMust(t, err)
	scheme := "http://"
	if cfg.TLS.Mode != "off" {
		scheme = "https://"
	}
	return client.New(scheme+ln.Addr().String(), tok, 30*time.Second)
}

func waitHostsJob(t *testing.T, c *client.Client, id string) *api.Job {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		j, err := c.Job(context.Background(), id)
		hostsMust(t, err)
		if j.State == "succeeded" || j.State == "failed" || j.State == "canceled" {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s after 3m", id, j.State)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func outputsOfAPI(t *testing.T, j *api.Job) *orchestrator.Outputs {
	t.Helper()
	var out orchestrator.Outputs
	if err := json.Unmarshal(j.Outputs, &out); err != nil {
		t.Fatal(fmt.Errorf("job %s outputs: %w", j.ID, err))
	}
	return &out
}

func hostsMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
