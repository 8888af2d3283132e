package vnet_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
	"golang.org/x/sys/unix"
)

// netnsChildEnv runs this test binary as the child of TestNetnsAfterIPNetnsAdd,
// in a mount namespace of its own with a fresh /run, so the host's mount
// table is never touched.
const netnsChildEnv = "HAVEN_TEST_NETNS_CHILD"

func init() {
	name := os.Getenv(netnsChildEnv)
	if name == "" {
		return
	}
	if err := netnsChild(name); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("ok")
	os.Exit(0)
}

func netnsChild(name string) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", "/run", "tmpfs", 0, "size=1m"); err != nil {
		return err
	}
	ops := vnet.Netlink{}
	if err := ops.AddNS(name); err != nil {
		return err
	}
	if err := ipNetnsSetup(); err != nil {
		return err
	}
	if err := ops.DelNS(name); err != nil {
		return err
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), name) {
		return fmt.Errorf("namespace %s still mounted", name)
	}
	return err
}

// ipNetnsSetup does what iproute2's `ip netns add` does before adding a
// namespace: make /run/netns shared, binding it over itself first if it is
// not a mount point.
func ipNetnsSetup() error {
	err := unix.Mount("", "/run/netns", "none", unix.MS_SHARED|unix.MS_REC, "")
	if err == unix.EINVAL {
		if err := unix.Mount("/run/netns", "/run/netns", "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
		err = unix.Mount("", "/run/netns", "none", unix.MS_SHARED|unix.MS_REC, "")
	}
	return err
}

// TestNetnsAfterIPNetnsAdd: a namespace Haven made can still be deleted
// after `ip netns add` first ran on the host (which, on a plain /run/netns,
// binds the directory over itself and would hide Haven's mounts).
func TestNetnsAfterIPNetnsAdd(t *testing.T) {
	testenv.RequireRoot(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), netnsChildEnv+"="+vnet.NewID()+"-mnt")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "ok\n" {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
