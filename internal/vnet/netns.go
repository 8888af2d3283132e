package vnet

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsDir is where named namespaces are bind-mounted (iproute2's place).
const netnsDir = "/run/netns"

// NSOwnerDir holds one owner record per namespace Netlink made, named like
// the namespace, so cleanup leaves a running Haven's namespaces alone.
const NSOwnerDir = "/run/haven/netns"

func nsOwnerPath(name string) string { return filepath.Join(NSOwnerDir, name) }

// AddNS creates a named namespace with its loopback up, recording this
// process as its owner first (so it never exists unowned). The namespace is
// created on a locked thread that returns to its own namespace before it is
// released, so no goroutine ever runs in the new one by accident.
func (Netlink) AddNS(name string) error {
	if name == "" || strings.ContainsAny(name, "/:") || name == "." || name == ".." {
		return fmt.Errorf("%w: namespace %q", ErrBadName, name)
	}
	if err := shareNetnsDir(); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(netnsDir, name)); err == nil {
		return fmt.Errorf("vnet: create netns %s: %w", name, os.ErrExist) // keep its owner's record
	}
	if err := WriteOwner(nsOwnerPath(name), Self()); err != nil {
		return fmt.Errorf("vnet: record owner of netns %s: %w", name, err)
	}
	errc := make(chan error, 1)
	go func() {
		// The thread is put back into its namespace and released; if it
		// cannot be put back it stays locked and Go ends it with this
		// goroutine. Never just left locked: when the scheduler ran this
		// goroutine on the main thread, which Go cannot end, that thread
		// stayed in the new namespace forever and kept it (and its veths)
		// alive after DelNS, so the next uplink of the same name failed
		// with "file exists".
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		h, err := netns.NewNamed(name)
		if err == nil {
			h.Close()
		}
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		os.Remove(nsOwnerPath(name))
		return fmt.Errorf("vnet: create netns %s: %w", name, err)
	}
	return Netlink{}.LinkUp(name, "lo")
}

var netnsDirMu sync.Mutex

// shareNetnsDir makes /run/netns a shared mount point of its own, as
// iproute2's `ip netns add` does first. Left a plain directory, the first
// `ip netns add` on the host would bind /run/netns over itself and hide
// the namespace mounts already in it, which could then never be deleted
// (remove: device or resource busy). A file lock keeps two Haven
// processes from stacking two such binds.
func shareNetnsDir() error {
	netnsDirMu.Lock()
	defer netnsDirMu.Unlock()
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return fmt.Errorf("vnet: %w", err)
	}
	lock, err := os.OpenFile(netnsDir+".haven-lock", os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("vnet: %w", err)
	}
	defer lock.Close() // releases the flock
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("vnet: lock %s: %w", lock.Name(), err)
	}
	err = unix.Mount("", netnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) { // not a mount point yet
		if err := unix.Mount(netnsDir, netnsDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("vnet: bind %s: %w", netnsDir, err)
		}
		err = unix.Mount("", netnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	}
	if err != nil {
		return fmt.Errorf("vnet: share %s: %w", netnsDir, err)
	}
	return nil
}

// DelNS removes a named namespace; links inside it go with it. A namespace
// already gone, or half made (its file exists but was never bind-mounted, as
// a crash inside AddNS leaves it), is removed without error: cleanups and
// the orchestrator's retries run it more than once.
func (Netlink) DelNS(name string) error {
	if name == "" {
		return ErrRootNS
	}
	if strings.ContainsAny(name, "/") || name == "." || name == ".." {
		return fmt.Errorf("%w: namespace %q", ErrBadName, name)
	}
	path := filepath.Join(netnsDir, name)
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("vnet: delete netns %s: %w", name, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("vnet: delete netns %s: %w", name, err)
	}
	if err := os.Remove(nsOwnerPath(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("vnet: delete owner of netns %s: %w", name, err)
	}
	return nil
}
