package machinetest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
	"github.com/haven-dr/haven/internal/vnet/vnettest"
)

// Config plugs a driver into the suite.
type Config struct {
	// New returns the driver under test, using nets for NICs.
	New func(t testing.TB, nets machine.Networks) machine.Driver
	// Boot bounds how long a boot to healthy may take (generous: this is
	// a hang guard, not a timing test).
	Boot time.Duration
	// Many enables the tests that boot many machines (cheap drivers only).
	Many bool
}

// Env is one lab for a test: a recovery site "rec" with network "app"
// reached from edge "edge", and a driver.
type Env struct {
	T      testing.TB
	Lab    *vnet.Lab
	Edge   string
	Driver machine.Driver
	cfg    Config
}

// NewEnv builds the lab and the driver; everything goes in t.Cleanup.
func NewEnv(t testing.TB, cfg Config) *Env {
	lab := vnettest.NewLab(t)
	if _, err := lab.AddSite("rec", []vnet.Network{vnettest.Net("app", "10.91.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	edge, err := lab.AddEdge("edge")
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.Connect("edge", "rec"); err != nil {
		t.Fatal(err)
	}
	return &Env{T: t, Lab: lab, Edge: edge, Driver: cfg.New(t, lab), cfg: cfg}
}

// Spec is a machine named <lab>-<name> booting a fresh test image on
// network, answering health checks on HTTP :80.
func (e *Env) Spec(name, network, addr string) machine.Spec {
	return machine.Spec{
		Name:       e.Lab.ID + "-" + name,
		Disks:      []machine.Disk{{Name: "root", Path: Image(e.T)}},
		NICs:       []vnet.NIC{{Name: "eth0", Network: network, Addr: netip.MustParsePrefix(addr)}},
		Health:     machine.HealthCheck{HTTPPort: 80, HTTPPath: "/"},
		ConsoleLog: filepath.Join(e.T.TempDir(), name+".console.log"),
	}
}

// Start boots spec and stops it in t.Cleanup if the test has not.
func (e *Env) Start(spec machine.Spec) machine.Instance {
	e.T.Helper()
	m, err := e.Driver.Start(context.Background(), spec)
	if err != nil {
		e.T.Fatalf("start %s: %v", spec.Name, err)
	}
	e.T.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := m.Stop(ctx); err != nil {
			e.T.Errorf("stop %s: %v", spec.Name, err)
		}
	})
	return m
}

// WaitHealthy waits for m's health check from probeNS.
func (e *Env) WaitHealthy(m machine.Instance, probeNS string) {
	e.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.Boot)
	defer cancel()
	if err := machine.WaitHealthy(ctx, probeNS, m.Spec()); err != nil {
		e.T.Fatalf("%v\nconsole:\n%s", err, testenv.TailFile(m.ConsoleLog()))
	}
}

// Get does an HTTP request from probeNS to m and returns the body.
func (e *Env) Do(probeNS, method string, m machine.Instance, path, body string) (string, error) {
	addr, _ := m.Spec().Addr()
	req, _ := http.NewRequest(method, "http://"+addr.String()+path, strings.NewReader(body))
	resp, err := machine.HTTPClient(probeNS).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return string(b), fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	return string(b), err
}

// MustDo is Do failing the test on error.
func (e *Env) MustDo(probeNS, method string, m machine.Instance, path, body string) string {
	e.T.Helper()
	s, err := e.Do(probeNS, method, m, path, body)
	if err != nil {
		e.T.Fatal(err)
	}
	return s
}

// Run runs the conformance suite against a driver.
func Run(t *testing.T, cfg Config) {
	t.Run("Lifecycle", func(t *testing.T) { testLifecycle(t, cfg) })
	if cfg.Many {
		t.Run("TestNetworkIsolated", func(t *testing.T) { testIsolation(t, cfg) })
		t.Run("TenMachinesNoLeaks", func(t *testing.T) { testNoLeaks(t, cfg) })
	}
}

// Eat has the test image's guest at addr, reached from ns, touch mb MiB
// in a child process (its /eat) and returns how the child ended ("killed
// by " and the signal's name once the kernel killed it). Before an OOM kill the kernel
// reclaims what it can, which in a VM under TCG (e2e's cgroup v2 test)
// can take many seconds: the bound is a hang guard.
func Eat(t testing.TB, ns string, addr netip.Addr, mb int) string {
	t.Helper()
	c := machine.HTTPClient(ns)
	c.Timeout = 3 * time.Minute
	resp, err := c.Post(fmt.Sprintf("http://%s/eat?mb=%d", addr, mb), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("eat: %s %q %v", resp.Status, b, err)
	}
	return string(b)
}
