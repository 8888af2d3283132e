package nsdrv_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/loop"
	"github.com/haven-dr/haven/internal/machine/machinetest"
	"github.com/haven-dr/haven/internal/machine/nsdrv"
	"github.com/haven-dr/haven/internal/vnet"
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
// its loop device and removes its state.
func TestCleanupAfterCrash(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	e := machinetest.NewEnv(t, machinetest.Config{
		New: func(t testing.TB, nets machine.Networks) machine.Driver {
			return &nsdrv.Driver{Networks: nets, StateDir: state}
		},
		Boot: 30 * time.Second,
	})
	m := e.Start(e.Spec("crash", "app", "10.91.0.30/24"))
	e.WaitHealthy(m, e.Edge)
	removed, err := nsdrv.Cleanup(state, nsdrv.LoopName(e.Lab.ID, ""))
	if err != nil {
		t.Fatal(err)
	}
	<-m.Done()
	if len(removed) != 1 && len(removed) != 2 { // the loop device may already have autocleared
		t.Fatalf("removed %v, want the machine (and maybe its loop device)", removed)
	}
	if err := m.Stop(context.Background()); err != nil { // waits for autoclear
		t.Fatal(err)
	}
	if left, _ := loop.Attached(nsdrv.LoopName(e.Lab.ID, "")); len(left) != 0 {
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
