package e2e

import (
	"context"
	"errors"
	"golang.org/x/sys/unix"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/machinetest"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
	"github.com/haven-dr/haven/internal/vnet/vnettest"
)

// runnerOf is the pid of the one `haven machine run` process of machine
// file path (0: none); two fail the test.
func runnerOf(t *testing.T, path string) int {
	t.Helper()
	found := 0
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		args := strings.Split(string(b), "\x00")
		if len(args) > 4 && args[1] == "machine" && args[2] == "run" && args[4] == path {
			if found != 0 {
				t.Fatalf("two runners of %s", path)
			}
			found, _ = strconv.Atoi(filepath.Base(filepath.Dir(p)))
		}
	}
	return found
}

func parentOf(pid int) int {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// TestDetachedMachineRunner: a host with Exec runs an ns machine in a
// `haven machine run` it started itself (its child, no `haven machine
// start` between) in a session of its own, so the machine is not in the
// starter's process group a signal to the server would reach. A second
// host on the same directory (a restarted server) finds it running, starts
// no second runner and stops it; its state is gone after. A runner
// that cannot boot its machine fails the start with the runner's own
// error, and leaves no runner behind.
func TestDetachedMachineRunner(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.LookPath(t, "ip")
	ctx := context.Background()
	dir := t.TempDir()
	open := func() *host.Local {
		h, err := host.NewLocal(dir, nil, vnet.Netlink{})
		if err != nil {
			t.Fatal(err)
		}
		h.Exec = havenBin
		return h
	}
	h := open()
	edge := h.ID() + "-edge"
	if err := (vnet.Netlink{}).AddNS(edge); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		open().RemoveSite(context.Background(), "rec")
		vnet.Netlink{}.DelNS(edge)
	})
	if err := h.EnsureSite(ctx, "rec", []vnet.Network{vnettest.Net("a", "10.233.1.0/24")}, edge); err != nil {
		t.Fatal(err)
	}
	spec := machine.Spec{Name: "web", StopTimeout: 10 * time.Second,
		Disks:      []machine.Disk{{Name: "root", Path: machinetest.Image(t)}},
		NICs:       []vnet.NIC{{Name: "eth0", Network: "a", Addr: netip.MustParsePrefix("10.233.1.10/24")}},
		Health:     machine.HealthCheck{HTTPPort: 80, HTTPPath: "/"},
		ConsoleLog: filepath.Join(t.TempDir(), "console.log")}
	if err := h.StartMachine(ctx, "rec", "ns", spec); err != nil {
		t.Fatal(err)
	}
	mfile := filepath.Join(dir, "machines", "rec", "detached", "web.json")
	pid := runnerOf(t, mfile)
	if pid == 0 {
		t.Fatal("no runner after StartMachine")
	}
	if parentOf(pid) != os.Getpid() {
		t.Fatalf("runner %d is a child of %d, not of the host's process %d", pid, parentOf(pid), os.Getpid())
	}
	if sid, _ := unix.Getsid(pid); sid != pid {
		t.Fatalf("runner %d is in session %d, not one of its own", pid, sid)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := h.WaitHealthy(wctx, "rec", spec); err != nil {
		t.Fatal(err)
	}

	again := open() // the server restarted
	if !again.Running("rec", "web") {
		t.Fatal("a new host on the directory does not see the machine run")
	}
	if err := again.StartMachine(ctx, "rec", "ns", spec); err != nil {
		t.Fatal(err)
	}
	if p := runnerOf(t, mfile); p != pid {
		t.Fatalf("runner %d after a second start, was %d", p, pid)
	}
	if err := again.StopMachine(ctx, "rec", "web"); err != nil {
		t.Fatal(err)
	}
	if p := runnerOf(t, mfile); p != 0 {
		t.Fatalf("runner %d still there after StopMachine", p)
	}
	if again.Running("rec", "web") {
		t.Fatal("machine still running after StopMachine")
	}
	if _, err := os.Stat(filepath.Join(dir, "machines", "rec", "detached", "state", "web")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("machine state after stop: %v", err)
	}

	// A disk that is no file system: the runner fails to boot it.
	junk := filepath.Join(t.TempDir(), "junk.img")
	if err := os.WriteFile(junk, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := spec
	bad.Name = "bad"
	bad.Disks = []machine.Disk{{Name: "root", Path: junk}}
	bad.NICs = []vnet.NIC{{Name: "eth0", Network: "a", Addr: netip.MustParsePrefix("10.233.1.11/24")}}
	err := again.StartMachine(ctx, "rec", "ns", bad)
	if err == nil {
		t.Fatal("a machine with a junk disk started")
	}
	log, _ := os.ReadFile(filepath.Join(dir, "machines", "rec", "detached", "bad.run.log"))
	last := strings.TrimSpace(string(log))
	if i := strings.LastIndexByte(last, '\n'); i >= 0 {
		last = last[i+1:]
	}
	if last == "" || !strings.Contains(err.Error(), last) {
		t.Fatalf("start error %q does not carry the runner's last log line %q", err, last)
	}
	if p := runnerOf(t, filepath.Join(dir, "machines", "rec", "detached", "bad.json")); p != 0 {
		t.Fatalf("failed start left runner %d", p)
	}
}
