package vnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsDir is where named namespaces are bind-mounted (iproute2's place).
const netnsDir = "/run/netns"

// NSOwnerDir holds one owner record per namespace Netlink made, named like
// the namespace, so cleanup leaves a running Haven's namespaces alone.
const NSOwnerDir = "/run/haven/netns"

func nsOwnerPath(name string) string { return filepath.Join(NSOwnerDir, name) }

// Netlink is the real Ops: netlink requests sent into the named namespace
// through a per-call handle, so the calling thread never changes namespace.
type Netlink struct{}

var _ Ops = Netlink{}

// openNS returns a handle to a namespace by name or "pid:N".
func openNS(name string) (netns.NsHandle, error) {
	if pid, ok := strings.CutPrefix(name, "pid:"); ok {
		n, err := strconv.Atoi(pid)
		if err != nil {
			return -1, fmt.Errorf("%w: %q", ErrBadName, name)
		}
		return netns.GetFromPid(n)
	}
	if name == "" {
		return netns.Get()
	}
	return netns.GetFromName(name)
}

// withHandle runs fn with a netlink handle bound to namespace ns.
func withHandle(ns string, fn func(h *netlink.Handle) error) error {
	nh, err := openNS(ns)
	if err != nil {
		return fmt.Errorf("vnet: open netns %q: %w", ns, err)
	}
	defer nh.Close()
	h, err := netlink.NewHandleAt(nh)
	if err != nil {
		return fmt.Errorf("vnet: netlink handle in %q: %w", ns, err)
	}
	defer h.Close()
	return fn(h)
}

// AddNS creates a named namespace with its loopback up, recording this
// process as its owner first (so it never exists unowned). The namespace is
// created on a locked thread that is thrown away afterwards, so no goroutine
// ever runs in it by accident.
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
		runtime.LockOSThread() // never unlocked: the thread exits with us
		h, err := netns.NewNamed(name)
		if err == nil {
			h.Close()
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
	if name == "" || strings.ContainsAny(name, "/") || name == "." || name == ".." {
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

func (Netlink) AddBridge(ns, name string) error {
	return withHandle(ns, func(h *netlink.Handle) error {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
		if err := h.LinkAdd(br); err != nil {
			return fmt.Errorf("vnet: add bridge %s/%s: %w", ns, name, err)
		}
		return nil
	})
}

func (Netlink) AddVeth(ns, name, peerNS, peer string, peerMAC net.HardwareAddr) error {
	pn, err := openNS(peerNS)
	if err != nil {
		return fmt.Errorf("vnet: open peer netns %q: %w", peerNS, err)
	}
	defer pn.Close()
	return withHandle(ns, func(h *netlink.Handle) error {
		v := &netlink.Veth{
			LinkAttrs:        netlink.LinkAttrs{Name: name},
			PeerName:         peer,
			PeerHardwareAddr: peerMAC,
			PeerNamespace:    netlink.NsFd(pn),
		}
		if err := h.LinkAdd(v); err != nil {
			return fmt.Errorf("vnet: add veth %s/%s-%s/%s: %w", ns, name, peerNS, peer, err)
		}
		return nil
	})
}

// DelLink deletes a link. A link already gone is not an error: a veth
// vanishes with its peer's namespace, and the kernel may remove it between
// the lookup and the delete (ENODEV); a namespace already gone took its
// links with it.
func (Netlink) DelLink(ns, name string) error {
	nh, err := openNS(ns)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("vnet: open netns %q: %w", ns, err)
	}
	defer nh.Close()
	h, err := netlink.NewHandleAt(nh)
	if err != nil {
		return fmt.Errorf("vnet: netlink handle in %q: %w", ns, err)
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err == nil {
		err = h.LinkDel(l)
	}
	if err == nil || errors.As(err, &netlink.LinkNotFoundError{}) || errors.Is(err, unix.ENODEV) {
		return nil
	}
	return fmt.Errorf("vnet: delete link %s/%s: %w", ns, name, err)
}

func (Netlink) SetMaster(ns, link, bridge string) error {
	return withHandle(ns, func(h *netlink.Handle) error {
		l, err := h.LinkByName(link)
		if err != nil {
			return fmt.Errorf("vnet: link %s/%s: %w", ns, link, err)
		}
		b, err := h.LinkByName(bridge)
		if err != nil {
			return fmt.Errorf("vnet: bridge %s/%s: %w", ns, bridge, err)
		}
		return h.LinkSetMasterByIndex(l, b.Attrs().Index)
	})
}

func (Netlink) AddAddr(ns, link string, addr netip.Prefix) error {
	if ns == "" {
		return ErrRootNS
	}
	return withHandle(ns, func(h *netlink.Handle) error {
		l, err := h.LinkByName(link)
		if err != nil {
			return fmt.Errorf("vnet: link %s/%s: %w", ns, link, err)
		}
		a := &netlink.Addr{IPNet: prefixToIPNet(addr)}
		if err := h.AddrAdd(l, a); err != nil {
			return fmt.Errorf("vnet: addr %v on %s/%s: %w", addr, ns, link, err)
		}
		return nil
	})
}

func (Netlink) LinkUp(ns, link string) error {
	return withHandle(ns, func(h *netlink.Handle) error {
		l, err := h.LinkByName(link)
		if err != nil {
			return fmt.Errorf("vnet: link %s/%s: %w", ns, link, err)
		}
		return h.LinkSetUp(l)
	})
}

func (Netlink) AddRoute(ns string, dst netip.Prefix, gw netip.Addr) error {
	if ns == "" {
		return ErrRootNS
	}
	return withHandle(ns, func(h *netlink.Handle) error {
		r := &netlink.Route{Dst: prefixToIPNet(dst), Gw: net.IP(gw.AsSlice())}
		if err := h.RouteAdd(r); err != nil {
			return fmt.Errorf("vnet: route %v via %v in %s: %w", dst, gw, ns, err)
		}
		return nil
	})
}

// SetForwarding writes the namespace's own ip_forward sysctl; /proc/sys/net
// shows the namespace of the thread that opens it.
func (Netlink) SetForwarding(ns string, on bool) error {
	if ns == "" {
		return ErrRootNS
	}
	v := "0"
	if on {
		v = "1"
	}
	return Do(ns, func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte(v), 0o644)
	})
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	a := p.Addr()
	return &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(p.Bits(), a.BitLen())}
}
