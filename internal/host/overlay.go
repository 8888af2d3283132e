package host

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"github.com/haven-dr/haven/internal/vnet"
	"github.com/haven-dr/haven/internal/vnet/overlay"
)

var _ OverlayHost = (*Local)(nil)

func (h *Local) overlayFile(site string) string {
	return filepath.Join(h.dir, "overlay", site+".json")
}

// EnsureOverlay records the overlay before it makes it, so a crash in
// between leaves a record the next EnsureSite or RemoveSite acts on.
func (h *Local) EnsureOverlay(ctx context.Context, site string, o Overlay) error {
	if err := h.epoch.Check(ctx); err != nil {
		return err
	}
	if len(o.Networks) == 0 && (h.Underlay == nil || !h.siteExists(site)) {
		return h.removeOverlay(site) // removing what is gone succeeds
	}
	if h.Underlay == nil {
		return fmt.Errorf("host: site %s: this host has no overlay underlay configured (overlay: local:)", site)
	}
	var rec siteRecord
	if readJSON(h.siteFile(site), &rec) != nil || !nsExists(rec.NS) {
		return fmt.Errorf("host: overlay of site %s: no such site here (EnsureSite first)", site)
	}
	if err := h.checkOverlay(site, rec, o); err != nil {
		return err
	}
	if len(o.Networks) == 0 {
		if err := overlay.Ensure(*h.Underlay, rec.NS, nil, nil, nil); err != nil {
			return err
		}
		return removeIfExists(h.overlayFile(site))
	}
	if err := writeJSON(h.overlayFile(site), o); err != nil {
		return err
	}
	return overlay.Ensure(*h.Underlay, rec.NS, withGateways(rec, o.Networks), o.Peers, o.Transit)
}

// UnderlayAddr is the configured underlay's address (none without one).
func (h *Local) UnderlayAddr(context.Context) (netip.Addr, error) {
	if h.Underlay == nil {
		return netip.Addr{}, nil
	}
	return h.Underlay.Local, nil
}

func (h *Local) siteExists(site string) bool {
	var rec siteRecord
	return readJSON(h.siteFile(site), &rec) == nil && nsExists(rec.NS)
}

// withGateways gives the overlay the gateways of the site's networks,
// which it keeps local to this host.
func withGateways(rec siteRecord, nets []overlay.Network) []overlay.Network {
	out := slices.Clone(nets)
	for i, n := range out {
		if j := slices.IndexFunc(rec.Networks, func(w vnet.Network) bool { return w.Name == n.Name }); j >= 0 {
			out[i].Gateway = rec.Networks[j].Gateway
		}
	}
	return out
}

// checkOverlay refuses networks the site lacks and a VNI given to two
// networks of this host: either would bridge what must stay apart.
func (h *Local) checkOverlay(site string, rec siteRecord, o Overlay) error {
	used := map[uint32]string{}
	files, _ := filepath.Glob(filepath.Join(h.dir, "overlay", "*.json"))
	for _, f := range files {
		other := filepath.Base(f[:len(f)-len(".json")])
		var orec Overlay
		if other == site || readJSON(f, &orec) != nil {
			continue
		}
		for _, n := range orec.Networks {
			used[n.VNI] = other + "/" + n.Name
		}
		if orec.Transit != nil {
			used[orec.Transit.VNI] = other + "'s transit link"
		}
	}
	for _, n := range o.Networks {
		if !slices.ContainsFunc(rec.Networks, func(w vnet.Network) bool { return w.Name == n.Name }) {
			return fmt.Errorf("host: overlay of site %s: network %s is not on the site", site, n.Name)
		}
		if n.VNI == 0 || n.VNI > overlay.MaxVNI {
			return fmt.Errorf("host: overlay of site %s: network %s: vni %d: want 1-%d", site, n.Name, n.VNI, overlay.MaxVNI)
		}
		if u, ok := used[n.VNI]; ok {
			return fmt.Errorf("host: overlay of site %s: network %s: vni %d is already %s's", site, n.Name, n.VNI, u)
		}
		used[n.VNI] = site + "/" + n.Name
	}
	return h.checkTransit(site, rec, o.Transit, used)
}

// checkTransit refuses a transit link that would share a VNI, and a
// route out through another host for a site that has this host's uplink.
func (h *Local) checkTransit(site string, rec siteRecord, t *overlay.Transit, used map[uint32]string) error {
	if t == nil {
		return nil
	}
	if err := t.Check(); err != nil {
		return fmt.Errorf("host: overlay of site %s: %w", site, err)
	}
	if u, ok := used[t.VNI]; ok {
		return fmt.Errorf("host: overlay of site %s: transit vni %d is already %s's", site, t.VNI, u)
	}
	if t.Via.IsValid() && rec.Edge != "" {
		return fmt.Errorf("host: overlay of site %s: the site has this host's uplink, so it is not routed out through %v on another host's", site, t.Via)
	}
	return nil
}

// reapplyOverlay gives a site made again (or kept) the overlay it was last
// given: a namespace made again has lost its devices.
func (h *Local) reapplyOverlay(site string) error {
	var o Overlay
	if err := readJSON(h.overlayFile(site), &o); errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	if h.Underlay == nil {
		return fmt.Errorf("host: site %s has an overlay but this host no longer has an underlay configured", site)
	}
	var rec siteRecord
	if err := readJSON(h.siteFile(site), &rec); err != nil {
		return err
	}
	if err := overlay.Ensure(*h.Underlay, rec.NS, withGateways(rec, o.Networks), o.Peers, o.Transit); err != nil {
		return fmt.Errorf("host: site %s: %w", site, err)
	}
	return nil
}

// removeOverlay deletes what the site's overlay may have left outside its
// namespace (a device made but not yet moved) and its record.
func (h *Local) removeOverlay(site string) error {
	var o Overlay
	if readJSON(h.overlayFile(site), &o) != nil {
		return removeIfExists(h.overlayFile(site))
	}
	var names []string
	for _, n := range o.Networks {
		names = append(names, n.Name)
	}
	if err := overlay.Remove(h.SiteNS(site), names); err != nil {
		return err
	}
	return removeIfExists(h.overlayFile(site))
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// CheckRunning is Running: a Local always knows.
func (h *Local) CheckRunning(_ context.Context, site, name string) (bool, error) {
	return h.Running(site, name), nil
}
