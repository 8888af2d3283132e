package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/server/client"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
	"github.com/haven-dr/haven/internal/vnet/overlay"
)

// overlayShop is hostsShop's shop plan and a second plan, extra, whose
// cache machine only ever runs at the recovery site: a test machine that
// reaches 10.2.0.30 has reached production. 2 CPUs each on hosts of 4,
// so the three machines go on three hosts.
const overlayShop = `sites: {primary: onprem, recovery: cloud}
networks:
  primary: [{name: prod, subnet: 10.1.0.0/24, gateway: 10.1.0.1}]
  recovery: [{name: rec, subnet: 10.2.0.0/24, gateway: 10.2.0.1}]
  test: [{name: drill, subnet: 10.2.0.0/24, gateway: 10.2.0.1}]
mapping: {recovery: {prod: rec}, test: {prod: drill}}
machines:
  - {name: db, cpus: 2, disks: [{name: root}], health: {tcp_port: 80}, health_timeout: 2m,
     nics: [{name: eth0, network: prod, address: 10.1.0.10/24, recovery: static, static: 10.2.0.10}]}
  - {name: web, cpus: 2, disks: [{name: root}], health: {http_port: 80, http_path: /}, health_timeout: 2m,
     nics: [{name: eth0, network: prod, address: 10.1.0.20/24, recovery: static, static: 10.2.0.20}]}
  - {name: cache, cpus: 2, disks: [{name: root}], health: {http_port: 80, http_path: /}, health_timeout: 2m,
     nics: [{name: eth0, network: prod, address: 10.1.0.30/24, recovery: static, static: 10.2.0.30}]}
plans:
  - name: shop
    groups:
      - {name: database, machines: [db]}
      - {name: web, machines: [web]}
  - name: extra
    groups: [{name: cache, machines: [cache]}]
`

// TestHostsFailoverOverlay: the real server (in process, its API over
// HTTP) drives three `haven host` processes, each in its own namespace
// on a veth underlay (newHostRig), through hostapi. Its failovers place
// db, web and cache on three hosts and join the recovery site on every
// host by a VXLAN overlay the server made (same VNI everywhere, the two
// other hosts as peers); db on one host reaches web and cache on the
// others over the recovery network, and a machine on a host without the
// edge reaches a server beyond host a's uplink (through the site's
// transit link). A test failover of shop beside it gets its own VNI on
// every host: its db reaches its web across hosts but not production's
// cache, and the test copy on the host without the edge does not reach
// the outside (no transit link in the test site). Cleanup and cancels
// leave no site namespace or VXLAN link on any host.
func TestHostsFailoverOverlay(t *testing.T) {
	r := newHostRig(t)
	ctx := context.Background()
	r.snapshotAll(t, "db", "web", "cache")
	c := rigServer(t, r, false, true)
	res, err := c.Apply(ctx, []byte(overlayShop))
	hostsMust(t, err)
	on := map[string]*recoveryHost{}
	for _, m := range []string{"db", "web", "cache"} {
		i := slices.IndexFunc(r.Hosts, func(h *recoveryHost) bool { return h.Name == res.Placement[m] })
		if i < 0 || slices.Contains(slices.Collect(maps.Values(on)), r.Hosts[i]) {
			t.Fatalf("placement %v: want the three machines on the three hosts", res.Placement)
		}
		on[m] = r.Hosts[i]
	}

	fo := runJob(t, c, "shop", orchestrator.UnplannedFailover)
	runJob(t, c, "extra", orchestrator.UnplannedFailover)
	vni := sameOverlay(t, r, orchestrator.SiteRecovery, "rec")
	if out := outputsOfAPI(t, fo); out.Overlay == nil || out.Overlay.VNIs["rec"] != vni || len(out.Overlay.Hosts) != 3 {
		t.Fatalf("the failover records overlay %+v, want vni %d on 3 hosts", out.Overlay, vni)
	}
	db, web := recSpec("db", "10.2.0.10"), recSpec("web", "10.2.0.20")
	reaches(t, on["db"], orchestrator.SiteRecovery, db, "10.2.0.20", "web")
	reaches(t, on["web"], orchestrator.SiteRecovery, web, "10.2.0.30", "cache")
	reaches(t, on["db"], orchestrator.SiteRecovery, db, "10.2.0.30", "cache")
	out := outsideOf(t, r)
	away, awayOn := db, on["db"] // a machine of shop on a host without the edge
	if awayOn == r.Hosts[0] {
		away, awayOn = web, on["web"]
	}
	reaches(t, awayOn, orchestrator.SiteRecovery, away, out, "outside") // through the transit link and a's uplink

	runJob(t, c, "shop", orchestrator.TestFailover)
	if tvni := sameOverlay(t, r, orchestrator.SiteTest, "drill"); tvni == vni {
		t.Fatalf("the test network has the recovery network's VNI %d", vni)
	}
	reaches(t, on["db"], orchestrator.SiteTest, db, "10.2.0.20", "web") // test db to test web
	if body, err := fetchVia(on["db"].C.SiteNS(orchestrator.SiteTest), db, "10.2.0.30"); err == nil || strings.HasPrefix(err.Error(), "reaching") {
		t.Fatalf("test db -> production cache: %q, %v; want test db to answer that it cannot reach it", body, err)
	}
	reaches(t, on["db"], orchestrator.SiteRecovery, db, "10.2.0.30", "cache") // production still reaches it
	if body, err := fetchVia(awayOn.C.SiteNS(orchestrator.SiteTest), away, out); err == nil || strings.HasPrefix(err.Error(), "reaching") {
		t.Fatalf("test %s on host %s -> the outside: %q, %v; want it to answer that it cannot reach it", away.Name, awayOn.Name, body, err)
	}
	for _, h := range r.Hosts {
		if _, _, ok, err := overlay.TransitOf(h.C.SiteNS(orchestrator.SiteTest)); ok || err != nil {
			t.Fatalf("host %s: the test site has a transit link (%v)", h.Name, err)
		}
	}

	runJob(t, c, "shop", orchestrator.TestCleanup)
	runJob(t, c, "shop", orchestrator.CancelFailover)
	runJob(t, c, "extra", orchestrator.CancelFailover)
	testenv.Eventually(t, 30*time.Second, "no site namespace or link left on the hosts", func() bool {
		nss, links, _ := r.Leftovers()
		return len(nss)+len(links) == 0
	})
}

// outsideOf is a server beyond host a's uplink: a namespace on the
// underlay that routes the recovery subnet to host a, as the network
// behind a real edge would; it answers "hello from outside".
func outsideOf(t *testing.T, r *hostRig) string {
	const addr = "10.77.0.200"
	ns := r.MachineNS(t, "out", netip.MustParsePrefix(addr+"/24"))
	if err := (vnet.Netlink{}).AddRoute(ns, netip.MustParsePrefix("10.2.0.0/24"), r.Hosts[0].Addr); err != nil {
		t.Fatal(err)
	}
	l, err := vnet.Listen(ns, "tcp", addr+":80")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "hello from outside") })}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return addr
}

// runJob submits a job of plan and waits for it to succeed.
func runJob(t *testing.T, c *client.Client, plan string, typ orchestrator.JobType) *api.Job {
	t.Helper()
	j, err := c.Submit(context.Background(), plan, string(typ), api.Params{})
	hostsMust(t, err)
	if j = waitHostsJob(t, c, j.ID); j.State != "succeeded" {
		t.Fatalf("%s of %s: %s: %s", typ, plan, j.State, j.Error)
	}
	return j
}

// sameOverlay checks that every host has site's device for net with one
// VNI, flooding to the two other hosts, and returns the VNI.
func sameOverlay(t *testing.T, r *hostRig, site, net string) uint32 {
	t.Helper()
	var vni uint32
	for _, h := range r.Hosts {
		devs, err := overlay.Devices(h.C.SiteNS(site))
		hostsMust(t, err)
		d, ok := devs[overlay.DeviceName(net)]
		var want []netip.Addr
		for _, o := range r.Hosts {
			if o != h {
				want = append(want, o.Addr)
			}
		}
		if !ok || (vni != 0 && d.VNI != vni) || !sameAddrs(d.Peers, want) {
			t.Fatalf("host %s, site %s: devices %+v, want %s with vni %d (or any first) to %v", h.Name, site, devs, overlay.DeviceName(net), vni, want)
		}
		vni = d.VNI
	}
	return vni
}

// recSpec is as much of a recovered machine as fetchVia needs.
func recSpec(name, addr string) machine.Spec {
	return machine.Spec{Name: name, NICs: []vnet.NIC{{Name: "eth0", Addr: netip.PrefixFrom(netip.MustParseAddr(addr), 24)}}}
}

// reaches waits until machine from (on h's site) fetches to's page, from
// the machine named want.
func reaches(t *testing.T, h *recoveryHost, site string, from machine.Spec, to, want string) {
	t.Helper()
	var body string
	var err error
	ok := func() bool {
		body, err = fetchVia(h.C.SiteNS(site), from, to)
		return err == nil && strings.Contains(body, "hello from "+want)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s on host %s (site %s) -> %s: %q, %v; want %s's page", from.Name, h.Name, site, to, body, err, want)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
