package machinetest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/loop"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
	"github.com/haven-dr/haven/internal/vnet/vnettest"
)

// testIsolation: a test copy of A, with A's address on an isolated test
// network, cannot reach production B, and B still reaches production A.
func testIsolation(t *testing.T, cfg Config) {
	e := NewEnv(t, cfg)
	if _, err := e.Lab.AddSite("test", []vnet.Network{vnettest.Net("apptest", "10.91.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	testSite := e.Lab.ID + "-test" // the test site's own router: probes from there
	a := e.Start(e.Spec("a", "app", "10.91.0.10/24"))
	b := e.Start(e.Spec("b", "app", "10.91.0.11/24"))
	ta := e.Start(e.Spec("ta", "apptest", "10.91.0.10/24"))
	e.WaitHealthy(a, e.Edge)
	e.WaitHealthy(b, e.Edge)
	e.WaitHealthy(ta, testSite)
	if got := e.MustDo(e.Edge, http.MethodGet, b, "/fetch?addr=10.91.0.10:80", ""); got != "hello from "+a.Spec().Name+"\n" {
		t.Fatalf("B reached %q instead of production A", got)
	}
	if got, err := e.Do(testSite, http.MethodGet, ta, "/fetch?addr=10.91.0.11:80", ""); err == nil {
		t.Fatalf("test copy reached production B: %q", got)
	}
}

// counts is what a machine may leave behind, restricted to this lab.
type counts struct {
	Loops, Links, Netns, Children, Mounts, StateDirs int
}

func snapshot(t *testing.T, e *Env, stateDir string) counts {
	var c counts
	loops, err := loop.Attached(vnet.Prefix + "-" + e.Lab.ID)
	if err != nil {
		t.Fatal(err)
	}
	c.Loops = len(loops)
	vnet.Do(e.Lab.ID+"-rec", func() error {
		ifs, err := net.Interfaces()
		c.Links = len(ifs)
		return err
	})
	ents, _ := os.ReadDir("/run/netns")
	for _, n := range ents {
		if strings.HasPrefix(n.Name(), e.Lab.ID) {
			c.Netns++
		}
	}
	tasks, _ := filepath.Glob("/proc/self/task/*/children")
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		c.Children += len(strings.Fields(string(b)))
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mi), "\n") {
		if strings.Contains(line, e.Lab.ID) || strings.Contains(line, stateDir) {
			c.Mounts++
		}
	}
	states, _ := os.ReadDir(stateDir)
	c.StateDirs = len(states)
	return c
}

// testNoLeaks starts and stops ten machines, then checks that no loop
// device, link, namespace, process, mount or state directory is left.
func testNoLeaks(t *testing.T, cfg Config) {
	e := NewEnv(t, cfg)
	stateDir := filepath.Join(t.TempDir(), "state")
	if sd, ok := e.Driver.(interface{ SetStateDir(string) }); ok {
		sd.SetStateDir(stateDir)
	}
	before := snapshot(t, e, stateDir)
	var specs []machine.Spec
	for i := range 10 {
		specs = append(specs, e.Spec(fmt.Sprintf("m%d", i), "app", fmt.Sprintf("10.91.0.%d/24", 20+i)))
	}
	var wg sync.WaitGroup
	for round := range 2 {
		for _, s := range specs {
			wg.Go(func() { startCheckStop(t, e, s) })
		}
		wg.Wait()
		if t.Failed() {
			t.Fatalf("round %d failed", round)
		}
	}
	if after := snapshot(t, e, stateDir); after != before {
		t.Fatalf("leaked: before %+v after %+v", before, after)
	}
}

func startCheckStop(t *testing.T, e *Env, s machine.Spec) {
	m, err := e.Driver.Start(context.Background(), s)
	if err != nil {
		t.Errorf("start %s: %v", s.Name, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.Boot)
	defer cancel()
	if err := machine.WaitHealthy(ctx, e.Edge, s); err != nil {
		t.Errorf("%v\n%s", err, testenv.TailFile(m.ConsoleLog()))
	}
	if err := m.Stop(ctx); err != nil {
		t.Errorf("stop %s: %v", s.Name, err)
	}
}
