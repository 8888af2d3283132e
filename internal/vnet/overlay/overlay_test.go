package overlay

import (
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/nftables"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
	"github.com/vishvananda/netns"
)

// TestEnsureConverges: in a namespace standing for a host's underlay and
// one for its site, Ensure makes the device with the peers but the host
// itself, follows peer and VNI changes, keeps the gateway filter, and
// removes the devices of networks no longer listed, leaving nothing in
// the underlay namespace.
func TestEnsureConverges(t *testing.T) {
	testenv.RequireRoot(t)
	b := make([]byte, 3)
	rand.Read(b)
	under, site := "hv"+hex.EncodeToString(b)+"-ul", "hv"+hex.EncodeToString(b)+"-site"
	ops := vnet.Netlink{}
	for _, ns := range []string{under, site} {
		if err := ops.AddNS(ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ops.DelNS(ns) })
	}
	for _, err := range []error{ops.AddBridge(site, "br-lan"), ops.AddBridge(site, "br-two")} {
		if err != nil {
			t.Fatal(err)
		}
	}
	a := netip.MustParseAddr
	u := Underlay{Local: a("10.9.0.1")}
	gw := a("10.50.0.1")
	ensure := func(nets []Network, peers ...netip.Addr) {
		t.Helper()
		if err := vnet.Do(under, func() error { return Ensure(u, site, nets, peers, nil) }); err != nil {
			t.Fatal(err)
		}
	}
	check := func(want map[string]Device) {
		t.Helper()
		got, err := Devices(site)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("devices %+v, want %+v", got, want)
		}
		for name, w := range want {
			g := got[name]
			slices.SortFunc(g.Peers, netip.Addr.Compare)
			if g.VNI != w.VNI || !slices.Equal(g.Peers, w.Peers) {
				t.Fatalf("%s: %+v, want %+v", name, g, w)
			}
		}
		if left, _ := Devices(under); len(left) > 0 {
			t.Fatalf("devices left in the underlay namespace: %v", left)
		}
	}
	lan := Network{Name: "lan", VNI: 100, Gateway: gw}
	ensure([]Network{lan}, a("10.9.0.2"), a("10.9.0.1"), a("10.9.0.3"))
	check(map[string]Device{"vx-lan": {VNI: 100, Peers: []netip.Addr{a("10.9.0.2"), a("10.9.0.3")}}})
	ensure([]Network{lan}, a("10.9.0.2"), a("10.9.0.1"), a("10.9.0.3")) // again: nothing changes
	check(map[string]Device{"vx-lan": {VNI: 100, Peers: []netip.Addr{a("10.9.0.2"), a("10.9.0.3")}}})
	ensure([]Network{lan}, a("10.9.0.3"), a("10.9.0.4"))
	check(map[string]Device{"vx-lan": {VNI: 100, Peers: []netip.Addr{a("10.9.0.3"), a("10.9.0.4")}}})
	lan.VNI = 200
	two := Network{Name: "two", VNI: 300, Gateway: a("10.60.0.1")}
	ensure([]Network{lan, two}, a("10.9.0.3"))
	check(map[string]Device{"vx-lan": {VNI: 200, Peers: []netip.Addr{a("10.9.0.3")}}, "vx-two": {VNI: 300, Peers: []netip.Addr{a("10.9.0.3")}}})
	if n := filterRules(t, site); n != 14 {
		t.Fatalf("gateway filter has %d rules, want 7 per network", n)
	}
	ensure([]Network{two}, a("10.9.0.3"))
	check(map[string]Device{"vx-two": {VNI: 300, Peers: []netip.Addr{a("10.9.0.3")}}})
	ensure(nil)
	check(map[string]Device{})
	if n := filterRules(t, site); n != -1 {
		t.Fatalf("gateway filter left with %d rules", n)
	}
	if err := vnet.Do(under, func() error { return Ensure(u, site, []Network{{Name: "none", VNI: 5}}, nil, nil) }); err == nil {
		t.Fatal("an overlay for a network without a bridge")
	}
}

// filterRules counts the rules of the site's gateway filter (-1: no table).
func filterRules(t *testing.T, ns string) int {
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		t.Fatal(err)
	}
	tab := &nftables.Table{Name: filterTable, Family: nftables.TableFamilyBridge}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyBridge)
	if err != nil {
		t.Fatal(err)
	}
	n := -1
	for _, ch := range chains {
		if ch.Table.Name != filterTable {
			continue
		}
		if n < 0 {
			n = 0
		}
		rules, err := c.GetRules(tab, ch)
		if err != nil {
			t.Fatal(err)
		}
		n += len(rules)
	}
	return n
}

func TestDefaultVNI(t *testing.T) {
	v := DefaultVNI("rec", "lan")
	if v != DefaultVNI("rec", "lan") || v < 4096 || v > MaxVNI {
		t.Fatalf("vni %d", v)
	}
	if v == DefaultVNI("tst", "lan") || v == DefaultVNI("rec", "lan2") {
		t.Fatal("different networks, same vni")
	}
}
