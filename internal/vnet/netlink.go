package vnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

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
