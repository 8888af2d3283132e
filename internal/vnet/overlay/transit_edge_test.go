package overlay

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/vnet/nat"
	"github.com/haven-dr/haven/internal/vnet/wg"
)

// edgeWorld gives the transit rig's edge what a host gives an edge site:
// r.out stands for A's host namespace (the uplink's other end), with a
// customer ("cl") on one side and the on-premises WireGuard gateway
// ("op", the office's networks 192.168.50.0/24) on another.
type edgeWorld struct {
	*transitRig
	client, onprem string
}

const (
	clientAddr = "192.0.2.2"
	onpremAddr = "192.168.50.1"
	// hostLink is the host's address the on-premises gateway dials.
	hostLink = "198.51.100.1"
)

func newEdgeWorld(t *testing.T) *edgeWorld {
	r := newTransitRig(t)
	w := &edgeWorld{transitRig: r, client: r.ns(t, "cl"), onprem: r.ns(t, "op")}
	p := netip.MustParsePrefix
	r.must(t, r.ops.SetForwarding(r.out, true),
		r.ops.AddVeth(r.out, "cl", w.client, "eth0", nil), r.ops.AddAddr(r.out, "cl", p("192.0.2.1/24")), r.ops.LinkUp(r.out, "cl"),
		r.ops.AddAddr(w.client, "eth0", p(clientAddr+"/24")), r.ops.LinkUp(w.client, "eth0"),
		r.ops.AddRoute(w.client, p("0.0.0.0/0"), netip.MustParseAddr("192.0.2.1")),
		r.ops.AddVeth(r.out, "op", w.onprem, "eth0", nil), r.ops.AddAddr(r.out, "op", p(hostLink+"/24")), r.ops.LinkUp(r.out, "op"),
		r.ops.AddAddr(w.onprem, "eth0", p("198.51.100.2/24")), r.ops.LinkUp(w.onprem, "eth0"))
	return w
}

// tunnel brings up the site-to-site tunnel as host.ensureTunnels does
// (wg.Start into A's site, its socket in A's host namespace) and its
// on-premises end.
func (w *edgeWorld) tunnel(t *testing.T) {
	dir := t.TempDir()
	key := func(name string) (string, string) {
		priv := wg.GenerateKey()
		pub, err := wg.PublicKey(priv)
		w.must(t, err, os.WriteFile(filepath.Join(dir, name+".key"), []byte(priv), 0o600))
		return filepath.Join(dir, name+".key"), pub
	}
	siteKey, sitePub := key("site")
	opKey, opPub := key("op")
	p := netip.MustParsePrefix
	site := wg.Config{Name: "office", PrivateKeyFile: siteKey, ListenPort: 51820, Userspace: true,
		Peers: []wg.Peer{{PublicKey: opPub, AllowedIPs: []netip.Prefix{p("192.168.50.0/24")}}}}
	op := wg.Config{Name: "dr", PrivateKeyFile: opKey, ListenPort: 51821, Address: p(onpremAddr + "/24"), Userspace: true,
		Peers: []wg.Peer{{PublicKey: sitePub, Endpoint: hostLink + ":51820", Keepalive: time.Second,
			AllowedIPs: []netip.Prefix{w.nets[0].subnet(), w.nets[1].subnet()}}}}
	for _, d := range []string{"site", "op"} {
		t.Cleanup(func() { wg.StopAll(filepath.Join(dir, d)) })
	}
	w.must(t, wg.Start(filepath.Join(dir, "site"), w.site["a"], w.out, site), wg.Start(filepath.Join(dir, "op"), w.onprem, w.onprem, op))
}

func (n Network) subnet() netip.Prefix { return netip.PrefixFrom(n.Gateway, 24).Masked() }

// TestTransitEdgeTunnelAndPublish: the way out of a non-edge host through
// the edge's site-to-site tunnel and its published address. A machine on
// B reaches the on-premises network through A's WireGuard tunnel and the
// on-premises side reaches it back, each seeing the other's own address;
// a customer reaches the machine on B at A's published address (DNAT in
// A's host namespace, as host.Publish installs it), the machine sees the
// customer's address, and the answer returns the way it came (B's
// gateway -> transit -> A -> uplink, where conntrack undoes the DNAT: the
// connection would not complete otherwise); the machine's own connection
// out leaves from the published address. Without the transit link none
// of it works: no other path exists.
func TestTransitEdgeTunnelAndPublish(t *testing.T) {
	w := newEdgeWorld(t)
	lan := w.nets[0]
	onB := w.machine(t, "b", "mb", lan, "10.50.0.12")
	ta, _ := TransitAddr(0)
	tb, _ := TransitAddr(1)
	trB := &Transit{VNI: 4200, Addr: tb, Via: ta.Addr()}
	w.must(t, w.ensure("a", &Transit{VNI: 4200, Addr: ta}, w.nets...), w.ensure("b", trB, w.nets...))
	w.tunnel(t)
	serveWho(t, w.onprem, onpremAddr)
	serveWho(t, w.client, clientAddr)

	reach(t, onB, onpremAddr, "10.50.0.12") // B -> transit -> A -> wg -> on-premises
	reach(t, w.onprem, "10.50.0.12", onpremAddr)

	pub := netip.MustParseAddrPort(outsideAddr + ":8443")
	tab := nat.Table{NS: w.out, Name: w.id + "pub", SiteLink: "eth0",
		Rules: []nat.Rule{{Proto: "tcp", On: pub, To: netip.MustParseAddrPort("10.50.0.12:7000")}}}
	w.must(t, nat.Apply(tab))
	t.Cleanup(func() { nat.Delete(w.out, tab.Name) })
	reachPort(t, w.client, pub, clientAddr)
	reach(t, onB, clientAddr, outsideAddr) // out from the published address

	w.must(t, w.ensure("b", nil, w.nets...))
	for _, c := range []struct{ from, to string }{{onB, onpremAddr}, {w.onprem, "10.50.0.12"}, {onB, clientAddr}} {
		if got, err := who(c.from, c.to); err == nil {
			t.Errorf("%s reaches %s (seen as %s) without the transit link", c.from, c.to, got)
		}
	}
	if got, err := whoAt(w.client, pub); err == nil {
		t.Errorf("the customer reaches %s (as %s) without the transit link", pub, got)
	}
}
