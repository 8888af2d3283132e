package host

import (
	"context"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/machinetest"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
	"github.com/haven-dr/haven/internal/vnet/nat"
	"github.com/haven-dr/haven/internal/vnet/vnettest"
	"github.com/haven-dr/haven/internal/vnet/wg"
)

// netWorld is a recovery host in the small: "hostns" stands for the
// host (its eth0, a veth, is the host interface the edge names, with
// the public address 203.0.113.7), "inet" for the internet beyond it and
// "office" for the office, which reaches the host at 198.51.100.1.
type netWorld struct {
	h                    *Local
	id                   string
	hostNS, inet, office string
	edge                 string
	officeDir            string
	officeCfg            wg.Config
}

func newNetWorld(t *testing.T) *netWorld {
	testenv.RequireRoot(t)
	testenv.LookPath(t, "nft")
	testenv.LookPath(t, "ip")
	ops := vnet.Netlink{}
	dir := t.TempDir()
	h, err := NewLocal(filepath.Join(dir, "host"), nil, ops)
	if err != nil {
		t.Fatal(err)
	}
	w := &netWorld{h: h, id: h.ID(), hostNS: h.ID() + "-hostns", inet: h.ID() + "-inet", office: h.ID() + "-office",
		officeDir: filepath.Join(dir, "office")}
	for _, ns := range []string{w.hostNS, w.inet, w.office} {
		if err := ops.AddNS(ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ops.DelNS(ns) })
	}
	t.Cleanup(func() {
		ctx := context.Background()
		h.RemoveSite(ctx, "rec")
		h.RemoveSite(ctx, "test")
		wg.StopAll(w.officeDir)
	})
	p := netip.MustParsePrefix
	for i, err := range []error{
		ops.AddVeth(w.inet, "eth0", w.hostNS, "eth0", nil),
		ops.AddAddr(w.inet, "eth0", p("203.0.113.100/24")),
		ops.LinkUp(w.inet, "eth0"),
		ops.AddAddr(w.hostNS, "eth0", p("203.0.113.7/24")),
		ops.LinkUp(w.hostNS, "eth0"),
		ops.AddVeth(w.office, "eth0", w.hostNS, "hvoff", nil),
		ops.AddAddr(w.office, "eth0", p("198.51.100.2/24")),
		ops.LinkUp(w.office, "eth0"),
		ops.AddAddr(w.hostNS, "hvoff", p("198.51.100.1/24")),
		ops.LinkUp(w.hostNS, "hvoff"),
	} {
		if err != nil {
			t.Fatalf("topology step %d: %v", i, err)
		}
	}
	w.edge = Edge{NS: w.hostNS, Interface: "eth0"}.String()

	key := func(name string) (string, string) {
		priv := wg.GenerateKey()
		pub, _ := wg.PublicKey(priv)
		f := filepath.Join(dir, name+".key")
		if err := os.WriteFile(f, []byte(priv), 0o600); err != nil {
			t.Fatal(err)
		}
		return f, pub
	}
	siteKey, sitePub := key("site")
	officeKey, officePub := key("office")
	// Userspace on both ends, so the leftover count (processes) is the
	// same on a host with kernel WireGuard; vnet/wg tests the choice.
	h.Tunnels = []wg.Config{{Name: "office", PrivateKeyFile: siteKey, ListenPort: 51820, Userspace: true,
		Peers: []wg.Peer{{PublicKey: officePub, AllowedIPs: []netip.Prefix{p("192.168.50.0/24")}}}}}
	w.officeCfg = wg.Config{Name: "dr", PrivateKeyFile: officeKey, ListenPort: 51821, Address: p("192.168.50.1/24"), Userspace: true,
		Peers: []wg.Peer{{PublicKey: sitePub, Endpoint: "198.51.100.1:51820", AllowedIPs: []netip.Prefix{p("10.1.0.0/24")}, Keepalive: time.Second}}}
	return w
}

func (w *netWorld) start(t *testing.T, site, network, name, addr string) machine.Spec {
	t.Helper()
	spec := machine.Spec{Name: name, Disks: []machine.Disk{{Name: "root", Path: machinetest.Image(t)}},
		NICs:   []vnet.NIC{{Name: "eth0", Network: network, Addr: netip.MustParsePrefix(addr)}},
		Health: machine.HealthCheck{HTTPPort: 80, HTTPPath: "/"}, StopTimeout: 5 * time.Second,
		ConsoleLog: filepath.Join(t.TempDir(), name+".console.log")}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.h.StartMachine(ctx, site, "ns", spec); err != nil {
		t.Fatal(err)
	}
	if err := w.h.WaitHealthy(ctx, site, spec); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, testenv.TailFile(spec.ConsoleLog))
	}
	return spec
}

func httpGet(ns, url string) (string, error) {
	c := machine.HTTPClient(ns)
	c.Timeout = 2 * time.Second
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func eventually(ns, url string) (string, error) {
	var body string
	var err error
	for i := 0; i < 20; i++ {
		if body, err = httpGet(ns, url); err == nil {
			return body, nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return body, err
}

// leftovers counts what the recovery network puts outside its sites:
// hv… nft tables in the host's namespace, this host's tunnel processes,
// and namespaces of this host.
func (w *netWorld) leftovers(t *testing.T) (tables []string, tunnels int, nss []string) {
	t.Helper()
	tables, err := nat.List(w.hostNS, vnet.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, f := range procs {
		if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), "HAVEN_WG_CHILD="+w.h.dir) {
			tunnels++
		}
	}
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		if n := e.Name(); strings.HasPrefix(n, w.id+"-") && n != w.hostNS && n != w.inet && n != w.office {
			nss = append(nss, n)
		}
	}
	return tables, tunnels, nss
}

// TestRecoveryNetworkReal: at "failover" the recovery site is joined to
// a host interface (forwarding on), its web server is published on the
// host's public address and reached by a customer on the internet with
// real HTTP, and the office reaches the database at its original address
// through the WireGuard tunnel that came up with the site. The test
// site, up at the same time with a copy at the same address, publishes
// nothing, gets no tunnel and is never reached from the office.
// Removing the sites leaves no table, tunnel or namespace.
func TestRecoveryNetworkReal(t *testing.T) {
	w := newNetWorld(t)
	h, ctx := w.h, context.Background()
	_, tunnelsBefore, _ := w.leftovers(t)
	if err := wg.Start(w.officeDir, w.office, w.office, w.officeCfg); err != nil {
		t.Fatal(err)
	}

	// A drill first: isolated, same subnet and address as production.
	if err := h.EnsureSite(ctx, "test", []vnet.Network{vnettest.Net("drill", "10.1.0.0/24")}, ""); err != nil {
		t.Fatal(err)
	}
	w.start(t, "test", "drill", "dbdrill", "10.1.0.10/24")
	rule := PublishRule{Proto: "tcp", On: netip.MustParseAddrPort("203.0.113.7:443"), To: netip.MustParseAddrPort("10.1.0.20:80")}
	if err := h.Publish(ctx, "test", "web", []PublishRule{rule}); err == nil {
		t.Error("the test site published a service")
	}
	if h.TunnelUp("test", "office") {
		t.Error("the test site got a tunnel")
	}
	if body, err := httpGet(w.office, "http://10.1.0.10/"); err == nil {
		t.Errorf("the office reached the drill's copy: %q", body)
	}

	// The failover.
	if err := h.EnsureSite(ctx, "rec", []vnet.Network{vnettest.Net("app", "10.1.0.0/24")}, w.edge); err != nil {
		t.Fatal(err)
	}
	var fwd []byte
	if err := vnet.Do(w.hostNS, func() (err error) {
		fwd, err = os.ReadFile("/proc/sys/net/ipv4/ip_forward")
		return err
	}); err != nil || strings.TrimSpace(string(fwd)) != "1" {
		t.Errorf("forwarding in the host's namespace is %q (%v), want 1", fwd, err)
	}
	w.start(t, "rec", "app", "db", "10.1.0.10/24")
	w.start(t, "rec", "app", "web", "10.1.0.20/24")
	for i := 0; i < 2; i++ { // the second is a no-op
		if err := h.Publish(ctx, "rec", "web", []PublishRule{rule}); err != nil {
			t.Fatal(err)
		}
	}
	clash := PublishRule{Proto: "tcp", On: rule.On, To: netip.MustParseAddrPort("10.1.0.10:80")}
	if err := h.Publish(ctx, "rec", "db", []PublishRule{clash}); err == nil || !strings.Contains(err.Error(), "published for web already") {
		t.Errorf("a second machine on the same public address and port: %v", err)
	}
	body, err := eventually(w.inet, "http://203.0.113.7:443/")
	if err != nil || !strings.Contains(body, "hello from web") {
		t.Fatalf("customer -> 203.0.113.7:443: %q, %v", body, err)
	}
	table := ip(t, "netns", "exec", w.hostNS, "nft", "list", "table", "ip", h.SiteNS("rec"))
	if n := strings.Count(table, "dnat to 10.1.0.20:80"); n != 2 {
		t.Errorf("table after two Publish calls has %d dnat rules, want 2:\n%s", n, table)
	}
	body, err = eventually(w.office, "http://10.1.0.10/")
	if err != nil || !strings.Contains(body, "hello from db\n") {
		t.Fatalf("office -> 10.1.0.10 through the tunnel: %q, %v", body, err)
	}
	if _, err := httpGet(w.inet, "http://10.1.0.10/"); err == nil {
		t.Error("the internet reaches the unpublished database")
	}
	if tables, tunnels, _ := w.leftovers(t); len(tables) != 1 || tunnels != 1 {
		t.Errorf("while failed over: tables %v, %d tunnel processes; want one of each", tables, tunnels)
	}

	// Cancel/failback: unpublish, then the site goes.
	if err := h.Unpublish(ctx, "rec", "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := httpGet(w.inet, "http://203.0.113.7:443/"); err == nil {
		t.Error("the published address still answers after Unpublish")
	}
	if err := h.Unpublish(ctx, "rec", "web"); err != nil {
		t.Errorf("second Unpublish: %v", err)
	}
	if err := h.Publish(ctx, "rec", "web", []PublishRule{rule}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"rec", "test"} {
		if err := h.RemoveSite(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := httpGet(w.office, "http://10.1.0.10/"); err == nil {
		t.Error("the office reaches the site after it was removed")
	}
	if err := wg.StopAll(w.officeDir); err != nil {
		t.Fatal(err)
	}
	tables, tunnels, nss := w.leftovers(t)
	if len(tables) != 0 || tunnels != tunnelsBefore || len(nss) != 0 {
		t.Errorf("left behind: tables %v, %d tunnel processes (%d before), namespaces %v", tables, tunnels, tunnelsBefore, nss)
	}
}

// TestRestartRemovesWhatRemovedSiteLeft: a server that crashed with a
// site published and its tunnel up, whose namespace `haven site cleanup`
// then removed, starts again: the table and the tunnel's records go.
func TestRestartRemovesWhatRemovedSiteLeft(t *testing.T) {
	w := newNetWorld(t)
	ctx := context.Background()
	_, tunnelsBefore, _ := w.leftovers(t)
	if err := w.h.EnsureSite(ctx, "rec", []vnet.Network{vnettest.Net("app", "10.1.0.0/24")}, w.edge); err != nil {
		t.Fatal(err)
	}
	rule := PublishRule{Proto: "tcp", On: netip.MustParseAddrPort("203.0.113.7:443"), To: netip.MustParseAddrPort("10.1.0.20:80")}
	if err := w.h.Publish(ctx, "rec", "web", []PublishRule{rule}); err != nil {
		t.Fatal(err)
	}
	if !w.h.TunnelUp("rec", "office") {
		t.Fatal("no tunnel on the recovery site")
	}
	// The crash: nothing of the server runs; cleanup removes the namespace.
	if err := w.h.ops.DelNS(w.h.SiteNS("rec")); err != nil {
		t.Fatal(err)
	}
	if tables, _, _ := w.leftovers(t); len(tables) != 1 {
		t.Fatalf("want the removed site's table still there before the restart, got %v", tables)
	}
	h2, err := NewLocal(w.h.dir, nil, vnet.Netlink{})
	if err != nil {
		t.Fatal(err)
	}
	tables, tunnels, nss := w.leftovers(t)
	if len(tables) != 0 || tunnels != tunnelsBefore || len(nss) != 0 {
		t.Errorf("after the restart: tables %v, %d tunnel processes (%d before), namespaces %v", tables, tunnels, tunnelsBefore, nss)
	}
	if h2.Published("rec") != nil || h2.TunnelUp("rec", "office") {
		t.Error("records of the removed site survived the restart")
	}
	if _, err := os.Stat(h2.tunnelDir("rec")); !os.IsNotExist(err) {
		t.Errorf("tunnel directory of the removed site: %v", err)
	}
}

// TestEdgeInterfaceMustExist: a host interface that is not there is a
// clear error, and nothing is left of the site.
func TestEdgeInterfaceMustExist(t *testing.T) {
	w := newNetWorld(t)
	edge := Edge{NS: w.hostNS, Interface: "nosuch0"}.String()
	err := w.h.EnsureSite(context.Background(), "rec", []vnet.Network{vnettest.Net("app", "10.1.0.0/24")}, edge)
	if err == nil || !strings.Contains(err.Error(), `"nosuch0"`) {
		t.Fatalf("EnsureSite with a missing interface = %v", err)
	}
	if nsExists(w.h.SiteNS("rec")) {
		t.Error("a half-made site was left")
	}

}
