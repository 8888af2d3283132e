package host

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/machinetest"
	"github.com/haven-dr/haven/internal/vnet"
	"github.com/haven-dr/haven/internal/vnet/vnettest"
)

// TestWaitHealthyNamesMemory: an ns machine with a 64 MiB limit in which
// the kernel killed a process for memory; a health check that then fails
// says the machine went over its memory limit, not merely "unhealthy".
func TestWaitHealthyNamesMemory(t *testing.T) {
	h, edge := newSiteHost(t)
	ctx := context.Background()
	if err := h.EnsureSite(ctx, "rec", []vnet.Network{vnettest.Net("a", "10.232.1.0/24")}, edge); err != nil {
		t.Fatal(err)
	}
	spec := machine.Spec{Name: "lim", MemoryMB: 64, CPUs: 1,
		Disks:      []machine.Disk{{Name: "root", Path: machinetest.Image(t)}},
		NICs:       []vnet.NIC{{Name: "eth0", Network: "a", Addr: netip.MustParsePrefix("10.232.1.10/24")}},
		Health:     machine.HealthCheck{HTTPPort: 80, HTTPPath: "/"},
		ConsoleLog: filepath.Join(t.TempDir(), "console.log")}
	if err := h.StartMachine(ctx, "rec", "ns", spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.StopMachine(context.Background(), "rec", "lim") })
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute) // a hang guard; also run in a VM under TCG (e2e TestRealVMCgroup2)
	defer cancel()
	if err := h.WaitHealthy(wctx, "rec", spec); err != nil {
		t.Fatal(err)
	}
	if out := machinetest.Eat(t, h.SiteNS("rec"), netip.MustParseAddr("10.232.1.10"), 256); !strings.Contains(out, "killed by "+syscall.SIGKILL.String()) {
		t.Fatalf("eater: %q, want it killed", out)
	}
	broken := spec
	broken.Health = machine.HealthCheck{TCPPort: 81} // nothing listens
	wctx, cancel = context.WithTimeout(ctx, time.Second)
	defer cancel()
	err := h.WaitHealthy(wctx, "rec", broken)
	if !errors.Is(err, machine.ErrUnhealthy) || !errors.Is(err, machine.ErrOverMemory) || !strings.Contains(err.Error(), "64 MiB") {
		t.Fatalf("WaitHealthy = %v, want unhealthy and over its memory limit", err)
	}
	// What the host reports up (host.MemoryChecker): the same kill.
	st, err := h.MachineMemory(ctx, "rec", "lim")
	if err != nil || st.Source != machine.MemoryCgroup || st.LimitMB != 64 || st.OOMKills == 0 {
		t.Fatalf("MachineMemory = %+v, %v; want the cgroup's kill under 64 MiB", st, err)
	}
	if _, err := h.MachineMemory(ctx, "rec", "nosuch"); !errors.Is(err, machine.ErrNotRunning) {
		t.Fatalf("MachineMemory of a machine not there: %v, want not running", err)
	}
}
