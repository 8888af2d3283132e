package overlay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"

	"github.com/haven-dr/haven/internal/vnet"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// A site whose uplink is on one host (the edge) needs a way out from the
// others: each host's gateway routes for the machines on that host, and
// only the edge host's site has the uplink. The transit link is a routed
// link between the hosts' sites: a VXLAN device of its own VNI carrying an
// address (no bridge, no machine on it), over which every other host's
// site routes its default to the edge host's site. Traffic leaving a
// subnet on host B thus goes B's gateway -> transit -> A's site -> A's
// uplink; the answers come back from A's site over the subnet's own
// overlay network (A resolves the machine on B by ARP, gateway.go), so
// the edge's namespace (conntrack, published addresses' NAT) sees both
// directions. The subnets themselves need no route: every host's site
// has every network's bridge and gateway.

// TransitDevice is the transit link in a site's namespace. A network's
// device is vx-<name>, so no network name can take this one.
const TransitDevice = "hv-transit"

// TransitPrefix holds the hosts' transit addresses: link-local, never a
// recovered machine's subnet, and only ever inside site namespaces (the
// uplink's link-local /30 is more specific, and the edge host never
// routes to another host's transit address, so the two do not meet).
var TransitPrefix = netip.MustParsePrefix("169.254.254.0/24")

// TransitAddr is the i-th host's address on the transit link.
func TransitAddr(i int) (netip.Prefix, error) {
	if i < 0 || i >= 1<<(32-TransitPrefix.Bits())-2 {
		return netip.Prefix{}, fmt.Errorf("overlay: no transit address for host %d: %s has room for %d", i, TransitPrefix, 1<<(32-TransitPrefix.Bits())-2)
	}
	a := TransitPrefix.Addr().As4()
	n := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	n += uint32(i) + 1
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), TransitPrefix.Bits()), nil
}

// Transit is a site's transit link on one host.
type Transit struct {
	VNI uint32 `json:"vni"`
	// Addr is this host's address on the link, with the link's prefix
	// length.
	Addr netip.Prefix `json:"addr"`
	// Via is the edge host's address on the link, where this host's site
	// routes its default; not valid on the edge host itself, whose
	// uplink is the way out.
	Via netip.Addr `json:"via,omitzero"`
}

// Check says whether the link is one a host can make.
func (t Transit) Check() error {
	switch {
	case t.VNI == 0 || t.VNI > MaxVNI:
		return fmt.Errorf("overlay: transit vni %d: want 1-%d", t.VNI, MaxVNI)
	case !t.Addr.IsValid() || !t.Addr.Addr().Is4() || t.Addr.Bits() > 30:
		return fmt.Errorf("overlay: transit address %v: want an IPv4 address in a subnet of /30 or more", t.Addr)
	case t.Via.IsValid() && (!t.Addr.Masked().Contains(t.Via) || t.Via == t.Addr.Addr()):
		return fmt.Errorf("overlay: transit route via %v: want another address of %v", t.Via, t.Addr.Masked())
	}
	return nil
}

// transitKey names the transit link's temporary device (tempName); a
// network name cannot hold a NUL.
const transitKey = "\x00transit"

// ensureTransit makes the site's transit link what t says, or removes it
// (t nil). A device of another VNI, port or underlay is made again.
func ensureTransit(u Underlay, siteNS string, under, site handle, t *Transit, peers []netip.Addr) error {
	if t != nil {
		if err := t.Check(); err != nil {
			return err
		}
	}
	link, err := site.nl.LinkByName(TransitDevice)
	var nf netlink.LinkNotFoundError
	switch {
	case errors.As(err, &nf):
		link = nil
	case err != nil:
		return err
	case t == nil || !isDevice(link, u, t.VNI):
		if err := site.nl.LinkDel(link); err != nil {
			return err
		}
		link = nil
	}
	if t == nil {
		return nil
	}
	if link == nil {
		if link, err = makeDevice(u, under, site, tempName(siteNS, transitKey), TransitDevice, t.VNI); err != nil {
			return err
		}
	}
	steps := []func() error{
		func() error { return checkClash(site.nl, link, t.Addr) },
		func() error { return looseRPFilter(siteNS) },
		func() error { return syncAddr(site.nl, link, t.Addr) },
		func() error { return site.nl.LinkSetUp(link) },
		func() error { return syncPeers(site.nl, link, peers) },
		func() error { return syncDefault(site.nl, link, t.Via) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return fmt.Errorf("overlay: %s transit link: %w", siteNS, err)
		}
	}
	return nil
}

// looseRPFilter: a machine's packet arrives on the edge host's transit
// link from a subnet the site routes to a bridge. Strict reverse-path
// filtering (rp_filter 1, which a namespace may inherit from the host)
// would drop it; loose (2) still drops sources the site cannot route at
// all. The kernel takes the larger of the interface's value and "all",
// so 2 on the link is loose whatever "all" says.
func looseRPFilter(siteNS string) error {
	return vnet.Do(siteNS, func() error {
		return os.WriteFile("/proc/sys/net/ipv4/conf/"+TransitDevice+"/rp_filter", []byte("2"), 0o644)
	})
}

// checkClash refuses a transit subnet that overlaps an address the site
// already has on another link (a network's subnet, an uplink): routes to
// one would take the other's packets.
func checkClash(nl *netlink.Handle, l netlink.Link, want netip.Prefix) error {
	addrs, err := nl.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		p, ok := prefixOf(a.IPNet)
		if !ok || a.LinkIndex == l.Attrs().Index || !p.Masked().Overlaps(want.Masked()) {
			continue
		}
		name := fmt.Sprint(a.LinkIndex)
		if o, err := nl.LinkByIndex(a.LinkIndex); err == nil {
			name = o.Attrs().Name
		}
		return fmt.Errorf("the transit subnet %s overlaps %s on %s in the site: the site was made for another layout (remove it, so that it is made again) or a network uses that range", want.Masked(), p, name)
	}
	return nil
}

// syncAddr makes want the link's only IPv4 address.
func syncAddr(nl *netlink.Handle, l netlink.Link, want netip.Prefix) error {
	have, err := nl.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	found := false
	for _, a := range have {
		p, ok := prefixOf(a.IPNet)
		if ok && p == want {
			found = true
			continue
		}
		if err := nl.AddrDel(l, &a); err != nil {
			return err
		}
	}
	if found {
		return nil
	}
	ip := net.IP(want.Addr().AsSlice())
	return nl.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: net.CIDRMask(want.Bits(), 32)}})
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), ok
}

// syncDefault routes the site's default via the edge's transit address
// (via valid), or removes a default the link carries (via not valid). A
// default through another link is the site's own uplink: a site with an
// uplink is the edge, and is never given a route through another host.
func syncDefault(nl *netlink.Handle, l netlink.Link, via netip.Addr) error {
	routes, err := nl.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	idx := l.Attrs().Index
	for _, r := range routes {
		if !isDefault(r) {
			continue
		}
		if r.LinkIndex != idx {
			if via.IsValid() {
				return fmt.Errorf("the site has its own way out (a default route on another link): it is not routed through %v", via)
			}
			continue
		}
		if via.IsValid() && r.Gw != nil && r.Gw.Equal(net.IP(via.AsSlice())) {
			return nil
		}
		if err := nl.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			return err
		}
	}
	if !via.IsValid() {
		return nil
	}
	return nl.RouteAdd(&netlink.Route{LinkIndex: idx, Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
		Gw: net.IP(via.AsSlice())})
}

func isDefault(r netlink.Route) bool {
	if r.Table != 0 && r.Table != unix.RT_TABLE_MAIN {
		return false
	}
	if r.Dst == nil {
		return true
	}
	ones, _ := r.Dst.Mask.Size()
	return ones == 0
}

// TransitOf reads a site's transit link: its VNI, address, flood peers
// and default route (tests, `haven host` status). ok is false without one.
func TransitOf(ns string) (t Transit, peers []netip.Addr, ok bool, err error) {
	h, err := openHandle(netns.GetFromName(ns))
	if err != nil {
		return t, nil, false, err
	}
	defer h.Close()
	l, err := h.nl.LinkByName(TransitDevice)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return t, nil, false, nil
	}
	if err != nil {
		return t, nil, false, err
	}
	vx, isVX := l.(*netlink.Vxlan)
	if !isVX {
		return t, nil, false, fmt.Errorf("overlay: %s in %s is not a VXLAN device", TransitDevice, ns)
	}
	t.VNI = uint32(vx.VxlanId)
	addrs, err := h.nl.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return t, nil, false, err
	}
	if len(addrs) > 0 {
		t.Addr, _ = prefixOf(addrs[0].IPNet)
	}
	routes, err := h.nl.RouteList(l, netlink.FAMILY_V4)
	if err != nil {
		return t, nil, false, err
	}
	if i := slices.IndexFunc(routes, isDefault); i >= 0 && routes[i].Gw != nil {
		t.Via, _ = netip.AddrFromSlice(routes[i].Gw.To4())
	}
	peers, err = Peers(h.nl, l)
	return t, peers, true, err
}
