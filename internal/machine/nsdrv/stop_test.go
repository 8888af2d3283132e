package nsdrv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/loop"
	"github.com/haven-dr/haven/internal/machine/machinetest"
	"github.com/haven-dr/haven/internal/vnet"
	"golang.org/x/sys/unix"
)

// newEnv's boot bound is a hang guard: TestMemoryLimit also runs in a VM
// under TCG (e2e TestRealVMCgroup2).
func newEnv(t *testing.T) *machinetest.Env {
	return machinetest.NewEnv(t, machinetest.Config{
		New: func(t testing.TB, nets machine.Networks) machine.Driver {
			return &Driver{Networks: nets, StateDir: filepath.Join(t.TempDir(), "state")}
		},
		Boot: 2 * time.Minute,
	})
}

// TestStopIsIdempotent: Stop succeeds after the bridge-side veth was
// removed behind the driver's back, again on a stopped machine whose loop
// number another device holds by then, and on a machine whose site
// namespace is gone.
func TestStopIsIdempotent(t *testing.T) {
	e := newEnv(t)
	a := e.Start(e.Spec("a", "app", "10.91.0.40/24"))
	c := e.Start(e.Spec("c", "app", "10.91.0.41/24"))
	e.WaitHealthy(a, e.Edge)
	e.WaitHealthy(c, e.Edge)
	site := e.Lab.ID + "-rec"
	for _, l := range machineLinks(t, site) {
		if err := (vnet.Netlink{}).DelLink(site, l); err != nil {
			t.Fatal(err)
		}
	}
	stopOK(t, a, "after its veth was removed")
	n := a.(*instance).loops[0].n
	holdLoop(t, n)
	stopOK(t, a, "a second time")
	if err := (vnet.Netlink{}).DelNS(site); err != nil {
		t.Fatal(err)
	}
	stopOK(t, c, "after its site namespace was deleted")
}

func stopOK(t *testing.T, m machine.Instance, when string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Stop(ctx); err != nil {
		t.Fatalf("stop %s: %v", when, err)
	}
	if m.State() != machine.Stopped {
		t.Fatalf("state %s after stop %s", m.State(), when)
	}
}

// machineLinks lists the bridge sides of machine veths in the site.
func machineLinks(t *testing.T, site string) []string {
	var out []string
	err := vnet.Do(site, func() error {
		ifs, err := net.Interfaces()
		for _, i := range ifs {
			if strings.HasPrefix(i.Name, vnet.Prefix) {
				out = append(out, i.Name)
			}
		}
		return err
	})
	if err != nil || len(out) != 2 {
		t.Fatalf("machine links %v %v, want 2", out, err)
	}
	return out
}

// holdLoop attaches image to loop device n under another tag, as another
// machine's start would once autoclear freed the number. If someone else
// already took the number the test's condition holds anyway.
func holdLoop(t *testing.T, n int) {
	t.Helper()
	image := filepath.Join(t.TempDir(), "other.img")
	if err := os.WriteFile(image, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := os.OpenFile(image, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	dev, err := os.OpenFile(fmt.Sprintf("/dev/loop%d", n), os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	cfg := unix.LoopConfig{Fd: uint32(img.Fd())}
	cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
	copy(cfg.Info.File_name[:63], vnet.NewID()+"-other")
	err = unix.IoctlLoopConfigure(int(dev.Fd()), &cfg)
	if err != nil && !errors.Is(err, unix.EBUSY) {
		dev.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() }) // autoclear detaches it
}

// TestFailedStartLeavesNothing: a disk that cannot be mounted fails the
// start with the mount error; the machine's loop device and state are
// gone, so the same machine starts once the spec is fixed.
func TestFailedStartLeavesNothing(t *testing.T) {
	e := newEnv(t)
	spec := e.Spec("bad", "app", "10.91.0.43/24")
	spec.Disks[0].FSType = "vfat" // the image is ext4
	_, err := e.Driver.Start(context.Background(), spec)
	if err == nil || !strings.Contains(err.Error(), "mount") {
		t.Fatalf("start with a wrong file system type: %v", err)
	}
	if left, _ := loop.Attached(LoopName(spec.Name, "")); len(left) != 0 {
		t.Fatalf("loop devices left: %v", left)
	}
	dir := filepath.Join(e.Driver.(*Driver).StateDir, spec.Name)
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("state left: %v", err)
	}
	spec.Disks[0].FSType = ""
	e.WaitHealthy(e.Start(spec), e.Edge)
}

// TestStartOverDeadInstancesLink: the bridge-side veth of a machine killed
// without its cleanup can outlive it while the kernel tears its namespace
// down; a start of the same machine meets the name taken, removes the
// dead instance's link and comes up (it failed with "file exists").
func TestStartOverDeadInstancesLink(t *testing.T) {
	e := newEnv(t)
	spec := e.Spec("a", "app", "10.91.0.42/24")
	site := e.Lab.ID + "-rec"
	ops := vnet.Netlink{}
	dead := vnet.Prefix + "dead" + e.Lab.ID[len(e.Lab.ID)-4:]
	if err := ops.AddNS(dead); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ops.DelNS(dead) })
	if err := ops.AddVeth(site, hostLink(spec.Name, "eth0"), dead, "eth0", nil); err != nil {
		t.Fatal(err)
	}
	m := e.Start(spec)
	e.WaitHealthy(m, e.Edge)
	stopOK(t, m, "after starting over a dead instance's link")
}
