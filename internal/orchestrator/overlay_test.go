package orchestrator

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/orchestrator/orchtest"
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/vnet"
	"github.com/haven-dr/haven/internal/vnet/overlay"
)

var fakeUnderlay = map[string]netip.Addr{
	"a": netip.MustParseAddr("192.0.2.1"), "b": netip.MustParseAddr("192.0.2.2"), "c": netip.MustParseAddr("192.0.2.3"),
}

// wantOverlay fails unless every host in on has site's overlay of net
// with vni, flooding to the other two hosts, and no other host has one.
func wantOverlay(t *testing.T, fakes map[string]*orchtest.Host, site, net string, vni uint32, on ...string) {
	t.Helper()
	for n, h := range fakes {
		o, ok := h.Overlay(site)
		if !slices.Contains(on, n) {
			if ok {
				t.Fatalf("host %s still has site %s's overlay %+v", n, site, o)
			}
			continue
		}
		var peers []netip.Addr
		for m, a := range fakeUnderlay {
			if m != n {
				peers = append(peers, a)
			}
		}
		slices.SortFunc(peers, netip.Addr.Compare)
		if !ok || !slices.Equal(o.Networks, []overlay.Network{{Name: net, VNI: vni}}) || !slices.Equal(o.Peers, peers) {
			t.Fatalf("host %s: overlay of %s = %+v (%v), want %s/%d to %v", n, site, o, ok, net, vni, peers)
		}
	}
}

func overlayRecords(out *Outputs, site string) []string {
	var hs []string
	for _, x := range out.Resources {
		if x.Kind == ResOverlay && x.Site == site {
			hs = append(hs, x.Host)
		}
	}
	slices.Sort(hs)
	return hs
}

// TestOverlayAcrossHosts: a failover on three hosts joins its site on
// every host by an overlay of the recovery network's VNI, each host
// flooding to the two others; an EnsureOverlay that fails on one host
// fails the network step naming it, and the retry makes the overlay once
// per host; a test failover beside it gets its own VNI on every host;
// undo removes each overlay where nothing of its site runs any more and
// keeps it where another plan's machines still run.
func TestOverlayAcrossHosts(t *testing.T) {
	w, fakes := hostsWorld(t)
	vnis := overlayVNIs(w.cfg)
	rec, drill := vnis[SiteRecovery]["rec"], vnis[SiteTest]["drill"]
	if rec < 4096 || drill < 4096 || rec == drill {
		t.Fatalf("vnis %v: want two distinct, outside the reserved range", vnis)
	}
	all := []string{"a", "b", "c"}

	fakes["b"].FailNext("EnsureOverlay", errors.New("connection reset"))
	j := w.wait(w.submit(PlannedFailover, "alpha", Params{}).ID)
	if j.State != store.Failed || !strings.Contains(j.Error, "host b: overlay of site rec: connection reset") {
		t.Fatalf("job %s: %q, want failed naming host b's overlay", j.State, j.Error)
	}
	if _, err := w.o.Retry(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	if j = w.wait(j.ID); j.State != store.Succeeded {
		t.Fatalf("retry: %s: %s", j.State, j.Error)
	}
	wantOverlay(t, fakes, SiteRecovery, "rec", rec, all...)
	out := outputsOf(t, j)
	if hs := overlayRecords(out, SiteRecovery); !slices.Equal(hs, all) {
		t.Fatalf("overlay recorded on %v, want once on each of %v", hs, all)
	}
	if out.Overlay == nil || out.Overlay.VNIs["rec"] != rec || len(out.Overlay.Hosts) != 3 || out.Overlay.Hosts["c"] != fakeUnderlay["c"] {
		t.Fatalf("outputs' overlay %+v", out.Overlay)
	}

	// A drill of beta while alpha runs at the recovery site.
	w.run(TestFailover, "beta", Params{})
	wantOverlay(t, fakes, SiteTest, "drill", drill, all...)
	wantOverlay(t, fakes, SiteRecovery, "rec", rec, all...)
	w.run(TestCleanup, "beta", Params{})
	wantOverlay(t, fakes, SiteTest, "drill", drill)
	wantOverlay(t, fakes, SiteRecovery, "rec", rec, all...)

	// beta fails over too; canceling alpha keeps the overlay where
	// beta's machines run and removes it where none runs.
	w.run(PlannedFailover, "beta", Params{})
	p := w.placed()
	w.run(CancelFailover, "alpha", Params{})
	keep := []string{p["beta-db"], p["beta-web"]}
	slices.Sort(keep)
	keep = slices.Compact(keep)
	wantOverlay(t, fakes, SiteRecovery, "rec", rec, keep...)
	w.run(CancelFailover, "beta", Params{})
	for n, h := range fakes {
		if wd := h.World(); len(wd.Overlays)+len(wd.Sites)+len(wd.Running) > 0 {
			t.Fatalf("host %s after both cancels: %+v", n, wd)
		}
	}
}

// TestOverlayNeedsUnderlay: a host without an underlay in a site of
// several hosts fails the network step with an error that names the host
// and both ways out, before any disk or machine; with islands the same
// job runs without an overlay.
func TestOverlayNeedsUnderlay(t *testing.T) {
	w, fakes := hostsWorld(t)
	fakes["c"].SetUnderlay(netip.Addr{})
	j := w.wait(w.submit(PlannedFailover, "alpha", Params{}).ID)
	for _, s := range []string{"host c: ", ErrNoUnderlay.Error(), "overlay: {local: ADDRESS}", "islands: true"} {
		if j.State != store.Failed || !strings.Contains(j.Error, s) {
			t.Fatalf("job %s: %q, want failed with %q", j.State, j.Error, s)
		}
	}
	for n, h := range fakes {
		if h.Count("PrepareDisk")+h.Count("StartMachine") > 0 {
			t.Fatalf("host %s got disks or machines before the network was whole", n)
		}
	}
	w.o.Islands = true
	if _, err := w.o.Retry(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	if j = w.wait(j.ID); j.State != store.Succeeded {
		t.Fatalf("retry with islands: %s: %s", j.State, j.Error)
	}
	for n, h := range fakes {
		if o, ok := h.Overlay(SiteRecovery); ok {
			t.Fatalf("host %s has an overlay with islands: %+v", n, o)
		}
	}
	if !fakes["a"].Running(SiteRecovery, "alpha-web") {
		t.Fatal("alpha-web does not run on a with islands")
	}
}

// TestOverlayOneHost: a site on one host needs no overlay and asks for
// none, so a host without an underlay serves as before.
func TestOverlayOneHost(t *testing.T) {
	w := newWorld(t)
	w.run(PlannedFailover, "alpha", Params{})
	if n := w.host.Count("EnsureOverlay"); n != 0 {
		t.Fatalf("%d overlay calls on a one-host site", n)
	}
}

// TestOverlayVNIs: the VNIs are a function of the document; a test
// network never gets a recovery network's VNI, even of the same name.
func TestOverlayVNIs(t *testing.T) {
	n := func(names ...string) []vnet.Network {
		var out []vnet.Network
		for _, s := range names {
			out = append(out, vnet.Network{Name: s})
		}
		return out
	}
	cfg := &protection.Config{Networks: protection.Networks{Recovery: n("lan", "dmz"), Test: n("lan", "dmz")}}
	got := overlayVNIs(cfg)
	seen := map[uint32]string{}
	for site, nets := range got {
		for name, v := range nets {
			if v < 4096 || v > overlay.MaxVNI {
				t.Fatalf("%s/%s: vni %d out of range", site, name, v)
			}
			if o, dup := seen[v]; dup {
				t.Fatalf("vni %d given to %s and %s/%s", v, o, site, name)
			}
			seen[v] = site + "/" + name
		}
	}
	if len(seen) != 4 {
		t.Fatalf("vnis %v", got)
	}
	cfg.Networks.Recovery = n("dmz", "lan") // order in the document does not matter
	if again := overlayVNIs(cfg); again[SiteRecovery]["lan"] != got[SiteRecovery]["lan"] || again[SiteTest]["dmz"] != got[SiteTest]["dmz"] {
		t.Fatalf("vnis changed with the order: %v, then %v", got, again)
	}
}

var _ host.OverlayHost = (*orchtest.Host)(nil)

// TestOverlayCrashAnywhereResumes: a server that dies right after any
// step of a failover on three hosts, restarted on the same store,
// finishes it with the overlay on every host recorded once per host and
// each machine booted once; then a host is lost and recover-machines
// leaves it out of the others' peers.
func TestOverlayCrashAnywhereResumes(t *testing.T) {
	w, fakes := hostsWorld(t)
	j := w.crashThrough(PlannedFailover, "alpha")
	rec := overlayVNIs(w.cfg)[SiteRecovery]["rec"]
	wantOverlay(t, fakes, SiteRecovery, "rec", rec, "a", "b", "c")
	if hs := overlayRecords(outputsOf(t, j), SiteRecovery); !slices.Equal(hs, []string{"a", "b", "c"}) {
		t.Fatalf("overlay recorded on %v, want once per host", hs)
	}
	for _, m := range []string{"alpha-db", "alpha-web"} {
		if b := boots(fakes, m); len(b) != 1 || b[w.placed()[m]] != 1 {
			t.Fatalf("%s boots per host %v: want once", m, b)
		}
	}

	x := w.placed()["alpha-db"]
	fakes[x].Lose(nil)
	w.run(RecoverMachines, "alpha", Params{})
	to := w.placed()["alpha-db"]
	o, _ := fakes[to].Overlay(SiteRecovery)
	if slices.Contains(o.Peers, fakeUnderlay[x]) || len(o.Peers) != 1 {
		t.Fatalf("host %s floods to %v after host %s was lost", to, o.Peers, x)
	}
}

// wantTransit fails unless each host's overlay of site has the transit
// link want names (host -> "addr via", "addr" on an edge host, "" none).
func wantTransit(t *testing.T, fakes map[string]*orchtest.Host, site string, vni uint32, want map[string]string) {
	t.Helper()
	for n, w := range want {
		o, _ := fakes[n].Overlay(site)
		got := ""
		if tr := o.Transit; tr != nil {
			if got = tr.Addr.String(); tr.Via.IsValid() {
				got += " via " + tr.Via.String()
			}
			if tr.VNI != vni {
				t.Fatalf("host %s: transit vni %d, want %d", n, tr.VNI, vni)
			}
		}
		if got != w {
			t.Fatalf("host %s: site %s's transit link %q, want %q", n, site, got, w)
		}
	}
}

// TestOverlayTransit: with a and b edge hosts and c not, a failover
// gives every host its end of the recovery site's transit link (its own
// VNI, addresses by place in the hosts list): c routes out through a,
// the first edge host, while a and b use their own uplinks; a drill's
// test site gets no transit link on any host. With a lost, the next job
// that makes the site routes c out through b.
func TestOverlayTransit(t *testing.T) {
	w, fakes := hostsWorld(t)
	w.hosts[1].Edge = true
	w.o.Close()
	w.start()
	vnis := overlayVNIs(w.cfg)
	tv := transitVNI(vnis)
	if tv == vnis[SiteRecovery]["rec"] || tv == vnis[SiteTest]["drill"] || tv < 4096 {
		t.Fatalf("transit vni %d beside %v", tv, vnis)
	}
	j := w.run(PlannedFailover, "alpha", Params{})
	wantTransit(t, fakes, SiteRecovery, tv, map[string]string{"a": "169.254.254.1/24", "b": "169.254.254.2/24", "c": "169.254.254.3/24 via 169.254.254.1"})
	if out := outputsOf(t, j); out.Overlay == nil || out.Overlay.Edge != "a" || out.Overlay.TransitVNI != tv {
		t.Fatalf("outputs' overlay %+v, want edge a, transit vni %d", out.Overlay, tv)
	}
	w.run(TestFailover, "beta", Params{})
	wantTransit(t, fakes, SiteTest, 0, map[string]string{"a": "", "b": "", "c": ""})
	w.run(TestCleanup, "beta", Params{})

	fakes["a"].Lose(nil)
	j = w.run(RecoverMachines, "alpha", Params{})
	wantTransit(t, fakes, SiteRecovery, tv, map[string]string{"b": "169.254.254.2/24", "c": "169.254.254.3/24 via 169.254.254.2"})
	if out := outputsOf(t, j); out.Overlay == nil || out.Overlay.Edge != "b" {
		t.Fatalf("recover-machines' overlay %+v, want edge b", out.Overlay)
	}
}
