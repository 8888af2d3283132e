package overlay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func TestTransitAddr(t *testing.T) {
	for i, want := range map[int]string{0: "169.254.254.1/24", 1: "169.254.254.2/24", 253: "169.254.254.254/24"} {
		if got, err := TransitAddr(i); err != nil || got.String() != want {
			t.Errorf("TransitAddr(%d) = %v, %v; want %s", i, got, err, want)
		}
	}
	for _, i := range []int{-1, 254} {
		if got, err := TransitAddr(i); err == nil {
			t.Errorf("TransitAddr(%d) = %v, want an error", i, got)
		}
	}
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	for _, tc := range []struct {
		tr Transit
		ok bool
	}{
		{Transit{VNI: 7, Addr: p("169.254.254.2/24"), Via: a("169.254.254.1")}, true},
		{Transit{VNI: 7, Addr: p("169.254.254.1/24")}, true},
		{Transit{VNI: 0, Addr: p("169.254.254.1/24")}, false},
		{Transit{VNI: MaxVNI + 1, Addr: p("169.254.254.1/24")}, false},
		{Transit{VNI: 7}, false},
		{Transit{VNI: 7, Addr: p("169.254.254.1/32")}, false},
		{Transit{VNI: 7, Addr: p("fe80::1/64")}, false},
		{Transit{VNI: 7, Addr: p("169.254.254.2/24"), Via: a("169.254.254.2")}, false},
		{Transit{VNI: 7, Addr: p("169.254.254.2/24"), Via: a("169.254.253.1")}, false},
	} {
		if err := tc.tr.Check(); (err == nil) != tc.ok {
			t.Errorf("%+v: %v, want ok %v", tc.tr, err, tc.ok)
		}
	}
}

// transitRig is two hosts on an underlay, a site of two networks on
// each, an "outside" behind A's site's uplink, and machines plugged into
// the sites: namespaces and veths only, as the host and drivers make them.
type transitRig struct {
	id       string
	under    map[string]string // host -> its own namespace
	site     map[string]string // host -> its site namespace
	addr     map[string]netip.Addr
	out      string
	nets     []Network
	ops      vnet.Netlink
	underlay map[string]Underlay
}

// outsideAddr is the outside's public address.
const outsideAddr = "203.0.113.10"

func newTransitRig(t *testing.T) *transitRig {
	testenv.RequireRoot(t)
	b := make([]byte, 3)
	rand.Read(b)
	r := &transitRig{id: "hv" + hex.EncodeToString(b), under: map[string]string{}, site: map[string]string{},
		addr: map[string]netip.Addr{}, underlay: map[string]Underlay{}}
	a, p := netip.MustParseAddr, netip.MustParsePrefix
	r.nets = []Network{{Name: "lan", VNI: 4100, Gateway: a("10.50.0.1")}, {Name: "two", VNI: 4101, Gateway: a("10.60.0.1")}}
	ul := r.ns(t, "ul")
	r.must(t, r.ops.AddBridge(ul, "hvbr"), r.ops.LinkUp(ul, "hvbr"))
	for i, h := range []string{"a", "b"} {
		r.under[h], r.site[h] = r.ns(t, "h"+h), r.ns(t, "s"+h)
		r.addr[h] = netip.AddrFrom4([4]byte{10, 9, 0, byte(i + 1)})
		r.underlay[h] = Underlay{Local: r.addr[h]}
		r.must(t, r.ops.AddVeth(ul, "hv"+h, r.under[h], "eth0", nil), r.ops.SetMaster(ul, "hv"+h, "hvbr"), r.ops.LinkUp(ul, "hv"+h),
			r.ops.AddAddr(r.under[h], "eth0", netip.PrefixFrom(r.addr[h], 24)), r.ops.LinkUp(r.under[h], "eth0"),
			r.ops.SetForwarding(r.site[h], true))
		for _, n := range r.nets {
			br := "br-" + n.Name
			r.must(t, r.ops.AddBridge(r.site[h], br), r.ops.AddAddr(r.site[h], br, netip.PrefixFrom(n.Gateway, 24)), r.ops.LinkUp(r.site[h], br))
		}
	}
	// A's uplink, as host.joinEdge makes it: a link-local /30 to the
	// outside, the site's default there, the outside's routes back.
	r.out = r.ns(t, "out")
	r.must(t, r.ops.AddVeth(r.out, "eth0", r.site["a"], "uplink", nil), r.ops.AddAddr(r.out, "eth0", p("169.254.9.1/30")),
		r.ops.AddAddr(r.out, "eth0", p(outsideAddr+"/32")), r.ops.LinkUp(r.out, "eth0"),
		r.ops.AddAddr(r.site["a"], "uplink", p("169.254.9.2/30")), r.ops.LinkUp(r.site["a"], "uplink"),
		r.ops.AddRoute(r.site["a"], p("0.0.0.0/0"), a("169.254.9.1")),
		r.ops.AddRoute(r.out, p("10.50.0.0/24"), a("169.254.9.2")), r.ops.AddRoute(r.out, p("10.60.0.0/24"), a("169.254.9.2")))
	return r
}

func (r *transitRig) must(t *testing.T, errs ...error) {
	t.Helper()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func (r *transitRig) ns(t *testing.T, name string) string {
	t.Helper()
	ns := r.id + "-" + name
	if err := r.ops.AddNS(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.ops.DelNS(ns) })
	return ns
}

// machine plugs a namespace into host h's bridge of network n at addr,
// its default route via the gateway, and serves its address's peer.
func (r *transitRig) machine(t *testing.T, h, name string, n Network, addr string) string {
	t.Helper()
	ns := r.ns(t, name)
	r.must(t, r.ops.AddVeth(r.site[h], "hv"+name, ns, "eth0", nil), r.ops.SetMaster(r.site[h], "hv"+name, "br-"+n.Name),
		r.ops.LinkUp(r.site[h], "hv"+name), r.ops.AddAddr(ns, "eth0", netip.MustParsePrefix(addr+"/24")), r.ops.LinkUp(ns, "eth0"),
		r.ops.AddRoute(ns, netip.MustParsePrefix("0.0.0.0/0"), n.Gateway))
	serveWho(t, ns, addr)
	return ns
}

// serveWho answers every connection to addr:7000 with the address it
// came from.
func serveWho(t *testing.T, ns, addr string) {
	l, err := vnet.Listen(ns, "tcp", net.JoinHostPort(addr, "7000"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprint(c, c.RemoteAddr().(*net.TCPAddr).IP)
			c.Close()
		}
	}()
}

// who connects from namespace ns to addr:7000 and says whom it reached
// as: the source address the other end saw. The outside connects from
// its public address (its link's own is the uplink's link-local one).
func who(ns, addr string) (string, error) {
	return whoAt(ns, netip.AddrPortFrom(netip.MustParseAddr(addr), 7000))
}

// whoAt is who at another port (a published one).
func whoAt(ns string, to netip.AddrPort) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var c net.Conn
	err := vnet.Do(ns, func() error {
		var d net.Dialer
		if strings.HasSuffix(ns, "-out") {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(outsideAddr)}
		}
		var err error
		c, err = d.DialContext(ctx, "tcp", to.String())
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

// reach waits until ns reaches addr and is seen there as from.
func reach(t *testing.T, ns, addr, from string) {
	t.Helper()
	reachPort(t, ns, netip.AddrPortFrom(netip.MustParseAddr(addr), 7000), from)
}

func reachPort(t *testing.T, ns string, to netip.AddrPort, from string) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, ns+" reaches "+to.String()+" as "+from, func() bool {
		got, err := whoAt(ns, to)
		return err == nil && got == from
	})
}

func (r *transitRig) ensure(h string, tr *Transit, nets ...Network) error {
	peers := []netip.Addr{r.addr["a"], r.addr["b"]}
	return vnet.Do(r.under[h], func() error { return Ensure(r.underlay[h], r.site[h], nets, peers, tr) })
}

// gatewayMAC is the MAC namespace ns has for gw.
func gatewayMAC(t *testing.T, ns string, gw netip.Addr) string {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	ns4, err := nl.NeighList(0, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns4 {
		if n.IP.Equal(net.IP(gw.AsSlice())) {
			return n.HardwareAddr.String()
		}
	}
	return ""
}

func linkMAC(t *testing.T, ns, link string) string {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	l, err := nl.LinkByName(link)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().HardwareAddr.String()
}

// TestTransitRoutesToEdge: sites of two networks on hosts A and B,
// joined by the overlay, A's with an uplink to an outside namespace. With
// the transit link (B's site routing its default to A's transit
// address), a machine on B reaches the outside, which sees the machine's
// own address both ways (no NAT between), and a machine of the other
// subnet on A, and back; each machine's ARP entry for its gateway stays
// its own host's bridge (the edge resolved B's machine by an ARP probe).
// An Ensure again changes nothing; the way out follows Via; a route out
// through B is refused on A, which has its own; a transit subnet that
// overlaps a network is refused; without the transit link (nil) B's
// machine reaches the outside no more, and the device is gone.
func TestTransitRoutesToEdge(t *testing.T) {
	r := newTransitRig(t)
	lan, two := r.nets[0], r.nets[1]
	onB := r.machine(t, "b", "mb", lan, "10.50.0.12")
	onA := r.machine(t, "a", "ma", two, "10.60.0.21")
	serveWho(t, r.out, outsideAddr)
	ta, _ := TransitAddr(0)
	tb, _ := TransitAddr(1)
	trA, trB := &Transit{VNI: 4200, Addr: ta}, &Transit{VNI: 4200, Addr: tb, Via: ta.Addr()}
	for range 2 {
		r.must(t, r.ensure("a", trA, r.nets...), r.ensure("b", trB, r.nets...))
	}
	got, peers, ok, err := TransitOf(r.site["b"])
	if err != nil || !ok || got != *trB || len(peers) != 1 || peers[0] != r.addr["a"] {
		t.Fatalf("B's transit link: %+v peers %v (%v %v), want %+v to %v", got, peers, ok, err, *trB, r.addr["a"])
	}
	reach(t, onB, outsideAddr, "10.50.0.12") // B -> transit -> A -> uplink, back over lan's overlay
	reach(t, r.out, "10.50.0.12", outsideAddr)
	reach(t, onB, "10.60.0.21", "10.50.0.12") // across subnets and hosts, both ways
	reach(t, onA, "10.50.0.12", "10.60.0.21")
	for _, m := range []struct {
		ns, host string
		n        Network
	}{{onB, "b", lan}, {onA, "a", two}} {
		if got, want := gatewayMAC(t, m.ns, m.n.Gateway), linkMAC(t, r.site[m.host], "br-"+m.n.Name); got != want {
			t.Fatalf("%s's gateway %s is at %s, want its own host's bridge %s", m.ns, m.n.Gateway, got, want)
		}
	}

	moved := &Transit{VNI: 4200, Addr: tb, Via: netip.MustParseAddr("169.254.254.9")}
	r.must(t, r.ensure("b", moved, r.nets...))
	if got, _, _, _ := TransitOf(r.site["b"]); got.Via != moved.Via {
		t.Fatalf("route out via %v, want %v", got.Via, moved.Via)
	}
	if _, err := who(onB, outsideAddr); err == nil {
		t.Fatal("B's machine reaches the outside through an edge that is not there")
	}
	if err := r.ensure("a", &Transit{VNI: 4200, Addr: ta, Via: tb.Addr()}, r.nets...); err == nil || !strings.Contains(err.Error(), "own way out") {
		t.Fatalf("a route out through B on A, which has an uplink: %v", err)
	}
	if err := r.ensure("b", &Transit{VNI: 4200, Addr: netip.MustParsePrefix("10.50.0.200/24"), Via: netip.MustParseAddr("10.50.0.201")}, r.nets...); err == nil || !strings.Contains(err.Error(), "overlaps 10.50.0.1/24 on br-lan") {
		t.Fatalf("a transit subnet over a network: %v", err)
	}
	r.must(t, r.ensure("a", trA, r.nets...), r.ensure("b", trB, r.nets...))
	reach(t, onB, outsideAddr, "10.50.0.12")

	r.must(t, r.ensure("b", nil, r.nets...))
	if _, _, ok, err := TransitOf(r.site["b"]); ok || err != nil {
		t.Fatalf("transit link left after Ensure without one: %v %v", ok, err)
	}
	if _, err := who(onB, outsideAddr); err == nil {
		t.Fatal("B's machine reaches the outside without the transit link")
	}
	reach(t, onB, "10.60.0.21", "10.50.0.12") // the subnets' own overlay stays
	r.must(t, r.ensure("a", trA), r.ensure("b", trB))
	r.must(t, r.ensure("a", nil), r.ensure("b", nil))
	for _, h := range []string{"a", "b"} {
		if devs, err := Devices(r.site[h]); err != nil || len(devs) > 0 {
			t.Fatalf("site %s: devices %v left (%v)", h, devs, err)
		}
		if left, _ := Devices(r.under[h]); len(left) > 0 {
			t.Fatalf("devices left in host %s's namespace: %v", h, left)
		}
	}
}
