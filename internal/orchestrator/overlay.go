package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/vnet"
	"github.com/haven-dr/haven/internal/vnet/overlay"
)

// A site on several hosts is one LAN per network: the hosts' bridges are
// joined by a VXLAN overlay (package overlay), which the job makes right
// after the site on every host that answers (the network step, and again
// before each group starts: a host back from the dead, or a site another
// plan's undo removed and this job made again, has none). Each host gets
// the other hosts' underlay addresses, which each host reports itself
// (host.OverlayHost.UnderlayAddr: `overlay: local:` of its host.yaml),
// so there is one place to configure them. Each (site, network) has its
// own VNI (overlayVNIs), so a test site never joins the recovery site's
// LAN on any host. A server with one host makes no overlay; with several,
// every host needs an underlay unless server.yaml says the sites are
// islands (Options.Islands).

// ErrNoUnderlay: a site spans several hosts and one has no underlay.
var ErrNoUnderlay = errors.New("no overlay underlay")

// OverlayUse is the overlay a job joined its site's hosts by.
type OverlayUse struct {
	// VNIs: network -> VNI.
	VNIs map[string]uint32 `json:"vnis"`
	// Hosts: host -> its underlay address (the others' peer).
	Hosts map[string]netip.Addr `json:"hosts"`
	// Edge is the host whose uplink the others' transit link routes
	// to, TransitVNI that link's VNI (none for a test site, or when no
	// edge host answers).
	Edge       string `json:"edge,omitempty"`
	TransitVNI uint32 `json:"transit_vni,omitempty"`
}

func (o *Orchestrator) overlayOn() bool { return !o.Islands && len(o.hosts()) > 1 }

// overlayVNIs gives each network of the recovery and of the test site its
// VNI: overlay.DefaultVNI(site, network), or the next free one when two
// collide, taken in a fixed order (recovery site first, names sorted).
// The same document gives the same VNIs on every host and server, and
// no test network ever shares one with a recovery network.
func overlayVNIs(cfg *protection.Config) map[string]map[string]uint32 {
	out := map[string]map[string]uint32{}
	used := map[uint32]bool{}
	for _, s := range []struct {
		site string
		nets []vnet.Network
	}{{SiteRecovery, cfg.Networks.Recovery}, {SiteTest, cfg.Networks.Test}} {
		out[s.site] = map[string]uint32{}
		var names []string
		for _, n := range s.nets {
			names = append(names, n.Name)
		}
		slices.Sort(names)
		for _, n := range names {
			v := overlay.DefaultVNI(s.site, n)
			for used[v] {
				if v++; v > overlay.MaxVNI {
					v = 4096
				}
			}
			used[v] = true
			out[s.site][n] = v
		}
	}
	return out
}

// transitVNI is the recovery site's transit link's VNI: DefaultVNI of a
// name no network can have, the next free one past every network's.
func transitVNI(vnis map[string]map[string]uint32) uint32 {
	used := map[uint32]bool{}
	for _, nets := range vnis {
		for _, v := range nets {
			used[v] = true
		}
	}
	v := overlay.DefaultVNI(SiteRecovery, "\x00transit")
	for used[v] {
		if v++; v > overlay.MaxVNI {
			v = 4096
		}
	}
	return v
}

// transits gives each host of up its end of the site's transit link
// (overlay.Transit): the way out of a site whose uplink is on one host.
// The first edge host that answers, in server.yaml's order, is where the
// others route out; other edge hosts use their own uplink. A host's
// address is its place in server.yaml's hosts, so it does not move when
// another host is lost. None for a test site (no uplink anywhere: a
// drill gets no way out it would not have on one host), nor when no edge
// host answers (the links go, with the routes through them). The edge
// host lost, the next job that makes the site routes to the next one.
func (r *run) transits(test bool, up []SiteHost, vni uint32) (map[string]*overlay.Transit, string, error) {
	i := slices.IndexFunc(up, func(h SiteHost) bool { return r.uplinkOn(h, test) })
	if i < 0 {
		return nil, "", nil
	}
	all := r.o.hosts()
	addr := func(h SiteHost) (netip.Prefix, error) {
		return overlay.TransitAddr(slices.IndexFunc(all, func(x SiteHost) bool { return x.Name == h.Name }))
	}
	via, err := addr(up[i])
	if err != nil {
		return nil, "", err
	}
	out := map[string]*overlay.Transit{}
	for _, h := range up {
		a, err := addr(h)
		if err != nil {
			return nil, "", err
		}
		t := &overlay.Transit{VNI: vni, Addr: a}
		if !r.uplinkOn(h, test) {
			t.Via = via.Addr()
		}
		out[h.Name] = t
	}
	return out, up[i].Name, nil
}

// joinOverlay joins the site on hosts up (those that have it) into one
// overlay: each host gets every network of the site with its VNI, the
// other hosts' underlay addresses as peers, and its end of the transit
// link (transits). Recorded per host before it is made; idempotent. The
// caller holds siteMu.
func (r *run) joinOverlay(ctx context.Context, site string, test bool, up []SiteHost) error {
	if !r.o.overlayOn() {
		return nil
	}
	addrs, err := underlays(ctx, up)
	if err != nil {
		return err
	}
	all := overlayVNIs(r.cfg)
	vnis := all[site]
	var nets []overlay.Network
	for _, n := range r.networks(test) {
		nets = append(nets, overlay.Network{Name: n.Name, VNI: vnis[n.Name]})
	}
	tvni := transitVNI(all)
	trs, edge, err := r.transits(test, up, tvni)
	if err != nil {
		return err
	}
	for _, h := range up {
		var peers []netip.Addr
		for _, p := range up {
			if p.Name != h.Name {
				peers = append(peers, addrs[p.Name])
			}
		}
		slices.SortFunc(peers, netip.Addr.Compare)
		if err := r.intend(ctx, Resource{Kind: ResOverlay, Site: site, Host: h.Name}); err != nil {
			return err
		}
		oh := h.Host.(host.OverlayHost) // underlays checked it
		if err := oh.EnsureOverlay(ctx, site, host.Overlay{Networks: nets, Peers: peers, Transit: trs[h.Name]}); err != nil {
			return hostCall(h, fmt.Errorf("overlay of site %s: %w", site, err))
		}
	}
	u := &OverlayUse{VNIs: vnis, Hosts: addrs, Edge: edge}
	if edge != "" {
		u.TransitVNI = tvni
	}
	return r.noteOverlay(ctx, site, u)
}

// underlays asks each host for its underlay address, refusing a host
// without one and two hosts with the same.
func underlays(ctx context.Context, hs []SiteHost) (map[string]netip.Addr, error) {
	out := map[string]netip.Addr{}
	for _, h := range hs {
		oh, ok := h.Host.(host.OverlayHost)
		var a netip.Addr
		var err error
		if ok {
			a, err = oh.UnderlayAddr(ctx)
		}
		switch {
		case err != nil:
			return nil, hostCall(h, fmt.Errorf("its underlay address: %w", err))
		case !a.IsValid():
			return nil, &HostError{Host: h.Name, Err: fmt.Errorf("%w: the recovery site spans %d hosts, whose machines reach each other over a VXLAN overlay: "+
				"give this host one (overlay: {local: ADDRESS} in its host.yaml, or in its hosts: entry when it is the server's local host), "+
				"or set islands: true in server.yaml (machines on different hosts then do not reach each other)", ErrNoUnderlay, len(hs))}
		}
		for other, b := range out {
			if b == a {
				return nil, fmt.Errorf("hosts %s and %s both say their underlay address is %s: each needs its own", other, h.Name, a)
			}
		}
		out[h.Name] = a
	}
	return out, nil
}

// noteOverlay records the overlay in the job's outputs and logs it when
// it changed.
func (r *run) noteOverlay(ctx context.Context, site string, u *OverlayUse) error {
	if old := r.out.Overlay; old != nil && maps.Equal(old.VNIs, u.VNIs) && maps.Equal(old.Hosts, u.Hosts) &&
		old.Edge == u.Edge && old.TransitVNI == u.TransitVNI {
		return nil
	}
	r.out.Overlay = u
	var nets, hosts []string
	for _, n := range slices.Sorted(maps.Keys(u.VNIs)) {
		nets = append(nets, fmt.Sprintf("%s (vni %d)", n, u.VNIs[n]))
	}
	for _, h := range slices.Sorted(maps.Keys(u.Hosts)) {
		hosts = append(hosts, fmt.Sprintf("%s (%s)", h, u.Hosts[h]))
	}
	out := "no way out through another host"
	if u.Edge != "" {
		out = fmt.Sprintf("the other hosts route out through %s's uplink (transit vni %d)", u.Edge, u.TransitVNI)
	}
	r.logf("info", "site %s joined over hosts %s by overlay networks %s; %s", site, strings.Join(hosts, ", "), strings.Join(nets, ", "), out)
	return r.save(ctx)
}

// leaveOverlay removes the site's overlay from the resource's host when
// no machine runs on the site there any more (the site itself goes with
// its own undo); where machines still run it stays, for them.
func (r *run) leaveOverlay(ctx context.Context, x Resource) (kept bool, err error) {
	r.o.siteMu.Lock()
	defer r.o.siteMu.Unlock()
	known := r.knownMachines(ctx)
	err = r.onHost(ctx, x, func(h host.Host) error {
		if slices.ContainsFunc(known, func(m string) bool { return h.Running(x.Site, m) }) {
			kept = true
			return nil
		}
		if oh, ok := h.(host.OverlayHost); ok {
			return oh.EnsureOverlay(ctx, x.Site, host.Overlay{})
		}
		return nil
	})
	return kept, err
}
