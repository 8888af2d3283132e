package nsdrv_test

import (
	"context"
	"io"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/loop"
	"github.com/haven-dr/haven/internal/machine/machinetest"
	"github.com/haven-dr/haven/internal/machine/nsdrv"
	"github.com/haven-dr/haven/internal/vnet"
	"github.com/haven-dr/haven/internal/vnet/vnettest"
)

func TestConformance(t *testing.T) {
	machinetest.Run(t, machinetest.Config{
		New: func(t testing.TB, nets machine.Networks) machine.Driver {
			return &nsdrv.Driver{Networks: nets, StateDir: filepath.Join(t.TempDir(), "state")}
		},
		Boot: 30 * time.Second,
		Many: true,
	})
}

// TestCleanupAfterCrash leaves a running machine behind as a crashed run
// would, and checks that Cleanup (haven site cleanup) kills it, detaches
// its loop device and removes its state. The owner is this process, which
// may always clean up its own.
func TestCleanupAfterCrash(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	e := machinetest.NewEnv(t, machinetest.Config{
		New: func(t testing.TB, nets machine.Networks) machine.Driver {
			return &nsdrv.Driver{Networks: nets, StateDir: state}
		},
		Boot: 2 * time.Minute, // a hang guard; also run in a VM under TCG (e2e TestRealVMCgroup2)
	})
	m := e.Start(e.Spec("crash", "app", "10.91.0.30/24"))
	e.WaitHealthy(m, e.Edge)
	tags := vnet.Prefix + "-" + e.Lab.ID
	removed, err := nsdrv.Cleanup(state, tags)
	if err != nil {
		t.Fatal(err)
	}
	<-m.Done()
	if len(removed) != 2 && len(removed) != 3 { // the loop device may already have autocleared
		t.Fatalf("removed %v, want the machine, its cgroup (and maybe its loop device)", removed)
	}
	for _, root := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		if left, _ := filepath.Glob(filepath.Join(root, tags+"*")); len(left) != 0 {
			t.Fatalf("cgroups left: %v", left)
		}
	}
	if err := m.Stop(context.Background()); err != nil { // waits for autoclear
		t.Fatal(err)
	}
	if left, _ := loop.Attached(tags); len(left) != 0 {
		t.Fatalf("loop devices left: %v", left)
	}
	leftover := vnet.NewID()
	if err := (vnet.Netlink{}).AddNS(leftover + "-x"); err != nil {
		t.Fatal(err)
	}
	removed, err = vnet.CleanupNamespaces(vnet.Netlink{}, leftover)
	if err != nil || len(removed) != 1 {
		t.Fatalf("namespaces removed: %v %v", removed, err)
	}
}

// TestTwoNICs: a machine with NICs on two networks (in two sites) starts,
// answers the edge through its first NIC's default route, and answers a
// client on each network at that network's address.
func TestTwoNICs(t *testing.T) {
	e := machinetest.NewEnv(t, machinetest.Config{
		New: func(t testing.TB, nets machine.Networks) machine.Driver {
			return &nsdrv.Driver{Networks: nets, StateDir: filepath.Join(t.TempDir(), "state")}
		},
		Boot: 30 * time.Second,
	})
	if _, err := e.Lab.AddSite("rec2", []vnet.Network{vnettest.Net("db", "10.92.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	spec := e.Spec("two", "app", "10.91.0.50/24")
	spec.NICs = append(spec.NICs, vnet.NIC{Name: "eth1", Network: "db", Addr: netip.MustParsePrefix("10.92.0.50/24")})
	m := e.Start(spec)
	e.WaitHealthy(m, e.Edge)
	clients := map[string]string{
		vnettest.Host(t, e.Lab, "ca", "app", "10.91.0.60/24"): "10.91.0.50",
		vnettest.Host(t, e.Lab, "cd", "db", "10.92.0.60/24"):  "10.92.0.50",
	}
	for ns, addr := range clients {
		resp, err := machine.HTTPClient(ns).Get("http://" + addr + "/")
		if err != nil {
			t.Fatalf("from %s to %s: %v", ns, addr, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := "hello from " + spec.Name + "\n"; err != nil || string(b) != want {
			t.Fatalf("from %s to %s: %q %v, want %q", ns, addr, b, err, want)
		}
	}
}
