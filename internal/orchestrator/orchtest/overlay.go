package orchtest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"

	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/vnet"
	"github.com/haven-dr/haven/internal/vnet/overlay"
)

var _ host.OverlayHost = (*Host)(nil)

// SetUnderlay gives the host an underlay address (none: its
// EnsureOverlay refuses, as host.Local without one).
func (h *Host) SetUnderlay(a netip.Addr) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.underlay = a
}

// UnderlayAddr fails on a lost host, as a remote host's Info would.
func (h *Host) UnderlayAddr(ctx context.Context) (netip.Addr, error) {
	if err := h.Ping(ctx); err != nil {
		return netip.Addr{}, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.underlay, nil
}

// EnsureOverlay keeps the site's overlay as host.Local does where the
// orchestrator can tell: it needs an underlay and the site with every
// network it names, refuses one VNI for two networks of the host, and
// removes the overlay when o is empty (also of a site already gone).
func (h *Host) EnsureOverlay(ctx context.Context, site string, o host.Overlay) error {
	done, err := h.enter(ctx, Call{Method: "EnsureOverlay", Site: site})
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(o.Networks) == 0 {
		delete(h.overlays, site)
		return done(nil)
	}
	if !h.underlay.IsValid() {
		return done(errors.New("fake host: no overlay underlay configured"))
	}
	s, ok := h.sites[site]
	if !ok {
		return done(fmt.Errorf("fake host: overlay of site %s: no such site", site))
	}
	for _, n := range o.Networks {
		if !slices.ContainsFunc(s.Networks, func(w vnet.Network) bool { return w.Name == n.Name }) {
			return done(fmt.Errorf("fake host: overlay of site %s: network %s is not on the site", site, n.Name))
		}
		for other, oo := range h.overlays {
			if other != site && slices.ContainsFunc(oo.Networks, func(x overlay.Network) bool { return x.VNI == n.VNI }) {
				return done(fmt.Errorf("fake host: overlay of site %s: vni %d is already %s's", site, n.VNI, other))
			}
		}
	}
	if t := o.Transit; t != nil && t.Via.IsValid() && s.Edge != "" {
		return done(fmt.Errorf("fake host: overlay of site %s: the site has this host's uplink, not routed out through %v", site, t.Via))
	}
	c := host.Overlay{Networks: slices.Clone(o.Networks), Peers: slices.Clone(o.Peers)}
	if o.Transit != nil {
		t := *o.Transit
		c.Transit = &t
	}
	h.overlays[site] = c
	return done(nil)
}

// Overlay is the site's overlay on this host, if it has one.
func (h *Host) Overlay(site string) (host.Overlay, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	o, ok := h.overlays[site]
	return o, ok
}

// overlayWorld lists the overlays as "site net/vni -> peers", sorted.
func (h *Host) overlayWorld() []string {
	var out []string
	for site, o := range h.overlays {
		for _, n := range o.Networks {
			out = append(out, fmt.Sprintf("%s %s/%d -> %v", site, n.Name, n.VNI, o.Peers))
		}
	}
	sort.Strings(out)
	return out
}
