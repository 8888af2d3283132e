// Package overlay joins the bridges of one network on several recovery
// hosts into one LAN: a VXLAN device per network, plugged into the site
// bridge, whose packets travel between the hosts' underlay addresses by
// unicast UDP. Each network has its own VNI, so a test network and the
// recovery network it copies never share a frame even where their
// subnets are the same.
//
// The device is made in the underlay namespace (the calling thread's: the
// host's own, where its underlay address is) and then moved into the site's namespace: the
// kernel keeps its UDP socket where the device was made, so encapsulated
// traffic uses the host's underlay while the device itself sits beside
// the site's bridge, and deleting the site's namespace deletes it.
//
// Flooding (ARP, broadcast, unknown unicast) goes to every peer through
// all-zero FDB entries (head-end replication), and the device learns
// which MAC is behind which peer from what arrives: no multicast is
// needed in the underlay, and the peer list is all the configuration.
package overlay

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Port is the IANA VXLAN port.
const Port = 4789

// Underlay is where a host's overlay traffic leaves: its own address in
// the underlay network, the UDP port, and the MTU of the overlay devices.
type Underlay struct {
	Local netip.Addr `json:"local" yaml:"local"`
	Port  int        `json:"port,omitempty" yaml:"port,omitempty"` // default 4789
	// MTU of the VXLAN devices; default 1500, so machines keep their
	// usual MTU. Encapsulation adds 50 bytes: an underlay with MTU 1500
	// then carries full-size frames as two IP fragments (the devices do
	// not set DF); give the underlay 1550 or more, or set 1450 here and
	// in the machines, to avoid that.
	MTU int `json:"mtu,omitempty" yaml:"mtu,omitempty"`
}

// Check says whether the underlay is usable.
func (u Underlay) Check() error {
	switch {
	case !u.Local.IsValid():
		return errors.New("overlay: underlay local address missing")
	case u.Port < 0 || u.Port > 65535:
		return fmt.Errorf("overlay: port %d", u.Port)
	case u.MTU != 0 && (u.MTU < 576 || u.MTU > 9000):
		return fmt.Errorf("overlay: mtu %d: want 576-9000", u.MTU)
	}
	return nil
}

func (u Underlay) port() int {
	if u.Port == 0 {
		return Port
	}
	return u.Port
}

func (u Underlay) mtu() int {
	if u.MTU == 0 {
		return 1500
	}
	return u.MTU
}

// Network is one network of a site on the overlay.
type Network struct {
	Name string `json:"name"`
	VNI  uint32 `json:"vni"`
	// Gateway is the network's gateway address, kept local to each host
	// (gateway.go); the host fills it from its site.
	Gateway netip.Addr `json:"-"`
}

// MaxVNI is the largest VXLAN network identifier (24 bits).
const MaxVNI = 1<<24 - 1

// DefaultVNI derives a VNI from a site and network name, the same on
// every host, in [4096, MaxVNI]. Two pairs can collide (one chance in
// about 16 million per pair); a host refuses to give one VNI to two
// networks, and a caller may assign VNIs itself instead.
func DefaultVNI(site, network string) uint32 {
	s := sha256.Sum256([]byte(site + "\x00" + network))
	return 4096 + binary.BigEndian.Uint32(s[:4])%(MaxVNI-4096+1)
}

// DeviceName is the VXLAN device of network inside the site's namespace.
func DeviceName(network string) string { return "vx-" + network }

// tempName is the device's name in the underlay namespace for the moment
// between its creation and its move: unique per site and network, so a
// crash in between leaves a link the next Ensure finds and removes.
func tempName(siteNS, network string) string {
	s := sha256.Sum256([]byte(siteNS + "/" + network))
	return fmt.Sprintf("hv%x", s[:5])
}

// Ensure makes the site's overlay what nets, peers and transit say: a
// VXLAN device per network of nets (on bridge "br-"+name, which must
// exist) flooding to every peer, no VXLAN device for any other network of
// the site, and the transit link (transit.go) when transit is not nil.
// Peers equal to the local address are skipped, so every host can be
// given the same list. A device of the wrong VNI, port or local address
// is made again; FDB entries are added and removed to match peers. It
// is idempotent.
func Ensure(u Underlay, siteNS string, nets []Network, peers []netip.Addr, transit *Transit) error {
	if err := u.Check(); err != nil {
		return err
	}
	under, site, err := handles(siteNS)
	if err != nil {
		return err
	}
	defer under.Close()
	defer site.Close()
	var others []netip.Addr
	for _, p := range peers {
		if p != u.Local && !slices.Contains(others, p) {
			others = append(others, p)
		}
	}
	// The filter comes first: a device must not carry a gateway's ARP
	// for a moment before it.
	if err := keepGatewaysLocal(siteNS, nets); err != nil {
		return err
	}
	for _, n := range nets {
		if err := ensureNet(u, siteNS, under, site, n, others); err != nil {
			return fmt.Errorf("overlay: %s network %s (vni %d): %w", siteNS, n.Name, n.VNI, err)
		}
	}
	if err := ensureTransit(u, siteNS, under, site, transit, others); err != nil {
		return err
	}
	return removeOthers(site.nl, nets)
}

// Remove deletes the devices a site's overlay has (or half-made ones in
// the underlay namespace); the site's namespace may already be gone.
func Remove(siteNS string, networks []string) error {
	under, err := openHandle(netns.Get())
	if err != nil {
		return err
	}
	defer under.Close()
	var errs []error
	for _, n := range append(slices.Clip(networks), transitKey) {
		errs = append(errs, delLink(under.nl, tempName(siteNS, n)))
	}
	return errors.Join(errs...)
}

type handle struct {
	ns netns.NsHandle
	nl *netlink.Handle
}

func (h handle) Close() {
	h.nl.Close()
	h.ns.Close()
}

func openHandle(ns netns.NsHandle, err error) (handle, error) {
	if err != nil {
		return handle{}, fmt.Errorf("overlay: %w", err)
	}
	nl, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return handle{}, fmt.Errorf("overlay: netlink: %w", err)
	}
	return handle{ns, nl}, nil
}

func handles(siteNS string) (under, site handle, err error) {
	if under, err = openHandle(netns.Get()); err != nil {
		return
	}
	if site, err = openHandle(netns.GetFromName(siteNS)); err != nil {
		under.Close()
		err = fmt.Errorf("overlay: site namespace %s: %w", siteNS, err)
	}
	return
}

func ensureNet(u Underlay, siteNS string, under, site handle, n Network, peers []netip.Addr) error {
	if n.VNI == 0 || n.VNI > MaxVNI {
		return fmt.Errorf("vni %d: want 1-%d", n.VNI, MaxVNI)
	}
	if !u.Local.Is4() {
		// One address family for every peer: the device has one source.
		return errors.New("the underlay address must be IPv4")
	}
	br, err := site.nl.LinkByName("br-" + n.Name)
	if err != nil {
		return fmt.Errorf("bridge br-%s: %w", n.Name, err)
	}
	dev := DeviceName(n.Name)
	link, err := site.nl.LinkByName(dev)
	if err == nil && !isDevice(link, u, n.VNI) {
		if err := site.nl.LinkDel(link); err != nil {
			return err
		}
		link = nil
	}
	if link == nil || err != nil {
		if link, err = makeDevice(u, under, site, tempName(siteNS, n.Name), dev, n.VNI); err != nil {
			return err
		}
	}
	if err := site.nl.LinkSetMaster(link, br); err != nil {
		return err
	}
	if err := site.nl.LinkSetUp(link); err != nil {
		return err
	}
	return syncPeers(site.nl, link, peers)
}

// isDevice says whether l is a VXLAN device of vni on the underlay u.
func isDevice(l netlink.Link, u Underlay, vni uint32) bool {
	vx, ok := l.(*netlink.Vxlan)
	return ok && vx.VxlanId == int(vni) && vx.Port == u.port() && vx.Attrs().MTU == u.mtu() &&
		vx.SrcAddr != nil && vx.SrcAddr.Equal(net.IP(u.Local.AsSlice()))
}

// makeDevice makes a VXLAN device of vni named tmp in the underlay's
// namespace, moves it into the site's and names it name there.
func makeDevice(u Underlay, under, site handle, tmp, name string, vni uint32) (netlink.Link, error) {
	if err := delLink(under.nl, tmp); err != nil {
		return nil, err
	}
	vx := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: tmp, MTU: u.mtu()}, VxlanId: int(vni),
		SrcAddr: net.IP(u.Local.AsSlice()), Port: u.port(), Learning: true}
	if err := under.nl.LinkAdd(vx); err != nil {
		return nil, fmt.Errorf("add vxlan: %w", err)
	}
	l, err := under.nl.LinkByName(tmp)
	if err == nil {
		err = under.nl.LinkSetNsFd(l, int(site.ns))
	}
	if err != nil {
		under.nl.LinkDel(vx)
		return nil, fmt.Errorf("move vxlan into the site: %w", err)
	}
	if l, err = site.nl.LinkByName(tmp); err != nil {
		return nil, err
	}
	if err := site.nl.LinkSetName(l, name); err != nil {
		site.nl.LinkDel(l)
		return nil, err
	}
	return site.nl.LinkByName(name)
}

func delLink(nl *netlink.Handle, name string) error {
	l, err := nl.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil
	}
	if err != nil {
		return err
	}
	return nl.LinkDel(l)
}

var zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

// syncPeers makes the device's flood list (all-zero FDB entries) the
// peers, adding missing ones before removing stale ones.
func syncPeers(nl *netlink.Handle, l netlink.Link, peers []netip.Addr) error {
	have, err := Peers(nl, l)
	if err != nil {
		return err
	}
	for _, p := range peers {
		if slices.Contains(have, p) {
			continue
		}
		if err := nl.NeighAppend(floodEntry(l, p)); err != nil {
			return fmt.Errorf("fdb add %s: %w", p, err)
		}
	}
	for _, p := range have {
		if slices.Contains(peers, p) {
			continue
		}
		if err := nl.NeighDel(floodEntry(l, p)); err != nil {
			return fmt.Errorf("fdb del %s: %w", p, err)
		}
	}
	return nil
}

func floodEntry(l netlink.Link, p netip.Addr) *netlink.Neigh {
	return &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
		State: netlink.NUD_PERMANENT | netlink.NUD_NOARP, HardwareAddr: zeroMAC, IP: net.IP(p.AsSlice())}
}

// Peers lists the device's flood destinations.
func Peers(nl *netlink.Handle, l netlink.Link) ([]netip.Addr, error) {
	ents, err := nl.NeighList(l.Attrs().Index, unix.AF_BRIDGE)
	if err != nil {
		return nil, fmt.Errorf("fdb list: %w", err)
	}
	var out []netip.Addr
	for _, e := range ents {
		if e.IP == nil || !slices.Equal(e.HardwareAddr, zeroMAC) {
			continue
		}
		if a, ok := netip.AddrFromSlice(e.IP); ok {
			out = append(out, a.Unmap())
		}
	}
	return out, nil
}

// removeOthers deletes the VXLAN devices of networks no longer listed.
func removeOthers(nl *netlink.Handle, nets []Network) error {
	links, err := nl.LinkList()
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range links {
		name := l.Attrs().Name
		nw, ok := strings.CutPrefix(name, "vx-")
		if _, vx := l.(*netlink.Vxlan); !ok || !vx {
			continue
		}
		if !slices.ContainsFunc(nets, func(n Network) bool { return n.Name == nw }) {
			errs = append(errs, nl.LinkDel(l))
		}
	}
	return errors.Join(errs...)
}

// Devices lists the VXLAN devices in namespace ns with their VNI and
// flood peers (tests, `haven host` status).
func Devices(ns string) (map[string]Device, error) {
	h, err := openHandle(netns.GetFromName(ns))
	if err != nil {
		return nil, err
	}
	defer h.Close()
	links, err := h.nl.LinkList()
	if err != nil {
		return nil, err
	}
	out := map[string]Device{}
	for _, l := range links {
		vx, ok := l.(*netlink.Vxlan)
		if !ok {
			continue
		}
		peers, err := Peers(h.nl, l)
		if err != nil {
			return nil, err
		}
		out[l.Attrs().Name] = Device{VNI: uint32(vx.VxlanId), Peers: peers}
	}
	return out, nil
}

// Device is one VXLAN device as found.
type Device struct {
	VNI   uint32
	Peers []netip.Addr
}
