package libvirtdrv_test

import (
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/haven-dr/haven/internal/machine/libvirtdrv"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
)

// TestCheckNetNS: a libvirtd in another network namespace (a `haven
// host` started in a namespace, libvirtd in the root one) is refused
// with an error saying so, before libvirt's own "specified dev doesn't
// exist"; from libvirtd's namespace it is accepted.
func TestCheckNetNS(t *testing.T) {
	testenv.RequireRoot(t)
	ns := vnet.NewID() + "-lv"
	if err := (vnet.Netlink{}).AddNS(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vnet.Netlink{}.DelNS(ns) })
	sock := testenv.LibvirtdIn(t, ns)
	if err := libvirtdrv.CheckNetNS(sock); err == nil || !strings.Contains(err.Error(), "another network namespace") {
		t.Fatalf("libvirtd in namespace %s, checked from the root one: %v", ns, err)
	}

	done := make(chan error)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread dies with its namespace
		h, err := netns.GetFromName(ns)
		if err == nil {
			err = netns.Set(h)
			h.Close()
		}
		if err == nil {
			err = libvirtdrv.CheckNetNS(sock)
		}
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatalf("from libvirtd's own namespace: %v", err)
	}
}
