package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/haven-dr/haven/internal/vnet"
	"github.com/haven-dr/haven/internal/vnet/overlay"
)

var siteRE = regexp.MustCompile(`^[a-z0-9]{1,8}$`)

// siteRecord is written once a site is complete; a namespace without it
// is a half-made site from a crash, removed and made again.
type siteRecord struct {
	Site     string         `json:"site"`
	NS       string         `json:"ns"`
	Networks []vnet.Network `json:"networks"`
	Edge     string         `json:"edge,omitempty"`
}

func (h *Local) siteFile(site string) string {
	return filepath.Join(h.dir, "sites", site+".json")
}

// SiteNS is "<host id>-<site>".
func (h *Local) SiteNS(site string) string { return h.id + "-" + site }

func nsExists(name string) bool {
	_, err := os.Stat(filepath.Join("/run/netns", name))
	return err == nil
}

// ErrSiteBusy: a site's networks would have to be remade while machines
// run on it.
var ErrSiteBusy = errors.New("site in use")

func (h *Local) EnsureSite(ctx context.Context, site string, nets []vnet.Network, edge string) error {
	if err := h.epoch.Check(ctx); err != nil {
		return err
	}
	if !siteRE.MatchString(site) {
		return fmt.Errorf("host: site %q: 1-8 of a-z0-9", site)
	}
	ns := h.SiteNS(site)
	var rec siteRecord
	if readJSON(h.siteFile(site), &rec) == nil && nsExists(ns) {
		added, changed := netDiff(rec.Networks, nets)
		if len(changed) == 0 && rec.Edge == edge {
			if err := h.addNets(site, rec, added); err != nil {
				return err
			}
			return errors.Join(h.ensureTunnels(site, edge), h.reapplyOverlay(site))
		}
		if busy := h.siteMachines(site); len(busy) > 0 {
			why := "networks " + strings.Join(changed, ", ") + " changed (subnet or gateway)"
			if rec.Edge != edge {
				why = fmt.Sprintf("uplink changed from %q to %q", rec.Edge, edge)
			}
			return fmt.Errorf("%w: host: site %s: %s, but machines %s run on it: the site is not remade under them; "+
				"fail back, cancel or clean up what runs there first, or put the networks back as they were (new networks are added in place)",
				ErrSiteBusy, site, why, strings.Join(busy, ", "))
		}
	}
	if nsExists(ns) {
		// Half-made (crash), or made for another config with nothing
		// running on it: start over.
		if err := h.RemoveSite(ctx, site); err != nil {
			return err
		}
	}
	if err := h.makeSite(ns, nets, edge); err != nil {
		err = fmt.Errorf("host: site %s: %w", site, err)
		if rerr := h.ops.DelNS(ns); rerr != nil && nsExists(ns) {
			err = errors.Join(err, rerr)
		}
		return err
	}
	if err := writeJSON(h.siteFile(site), siteRecord{Site: site, NS: ns, Networks: nets, Edge: edge}); err != nil {
		return err
	}
	return errors.Join(h.ensureTunnels(site, edge), h.reapplyOverlay(site))
}

// netDiff compares a site's networks with the ones asked for: networks
// to add, and names of networks whose subnet or gateway differ. Networks
// the site has but the request lacks stay (another plan's machines may
// be plugged into them).
func netDiff(have, want []vnet.Network) (added []vnet.Network, changed []string) {
	for _, w := range want {
		i := slices.IndexFunc(have, func(h vnet.Network) bool { return h.Name == w.Name })
		switch {
		case i < 0:
			added = append(added, w)
		case have[i].Subnet != w.Subnet || have[i].Gateway != w.Gateway:
			changed = append(changed, w.Name)
		}
	}
	return added, changed
}

// addNets plugs new networks into a live site without touching the ones
// it has, so machines running there keep their links. The record is
// written after the links exist; a crash in between finds them on the
// next call and goes on (an existing link, address or route is fine).
func (h *Local) addNets(site string, rec siteRecord, nets []vnet.Network) error {
	if len(nets) == 0 {
		return nil
	}
	for _, n := range nets {
		if err := h.addNet(rec.NS, n); err != nil {
			return fmt.Errorf("host: site %s: add network %s: %w", site, n.Name, err)
		}
		if rec.Edge != "" {
			_, siteIP := transit(rec.NS)
			if err := existOK(h.ops.AddRoute(ParseEdge(rec.Edge).opsNS(), n.Subnet, siteIP.Addr())); err != nil {
				return fmt.Errorf("host: site %s: route network %s from the uplink: %w", site, n.Name, err)
			}
		}
		rec.Networks = append(rec.Networks, n)
	}
	return writeJSON(h.siteFile(site), rec)
}

func (h *Local) addNet(ns string, n vnet.Network) error {
	if err := n.Validate(); err != nil {
		return err
	}
	br := "br-" + n.Name
	if err := existOK(h.ops.AddBridge(ns, br)); err != nil {
		return err
	}
	if err := existOK(h.ops.AddAddr(ns, br, n.GatewayPrefix())); err != nil {
		return err
	}
	return h.ops.LinkUp(ns, br)
}

func existOK(err error) error {
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	return err
}

func (h *Local) makeSite(ns string, nets []vnet.Network, edge string) error {
	if err := h.ops.AddNS(ns); err != nil {
		return err
	}
	if err := h.ops.SetForwarding(ns, true); err != nil {
		return err
	}
	for _, n := range nets {
		if err := h.addNet(ns, n); err != nil {
			return err
		}
	}
	if edge == "" {
		return nil
	}
	return h.joinEdge(ns, nets, edge)
}

// joinEdge links the site to its uplink namespace with a link-local /30
// (chosen from the site's name, so a restarted host picks the same), routes
// the site's subnets from the edge, and routes everything else from the
// site to the edge, so replies reach customers behind it. An edge with an
// interface forwards between it and the site.
func (h *Local) joinEdge(ns string, nets []vnet.Network, edge string) error {
	e := ParseEdge(edge)
	if err := e.check(); err != nil {
		return err
	}
	en := e.opsNS()
	edgeIP, siteIP := transit(ns)
	link := uplinkName(ns)
	steps := []func() error{
		// The edge end of a previous uplink of this site can outlive
		// its namespace for a moment (the kernel deletes namespaces
		// asynchronously): remove it first (a missing link is fine).
		func() error { return h.ops.DelLink(en, link) },
		func() error { return h.ops.AddVeth(en, link, ns, "uplink", nil) },
		func() error { return h.ops.AddAddr(en, link, edgeIP) },
		func() error { return h.ops.LinkUp(en, link) },
		func() error { return h.ops.AddAddr(ns, "uplink", siteIP) },
		func() error { return h.ops.LinkUp(ns, "uplink") },
		func() error {
			return h.ops.AddRoute(ns, netip.MustParsePrefix("0.0.0.0/0"), edgeIP.Addr())
		},
	}
	if e.Interface != "" {
		steps = append(steps, func() error { return h.ops.SetForwarding(en, true) })
	}
	for _, n := range nets {
		steps = append(steps, func() error { return h.ops.AddRoute(en, n.Subnet, siteIP.Addr()) })
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}

// uplinkName is the edge's end of a site's uplink.
func uplinkName(ns string) string { return "hv" + hex.EncodeToString(sum(ns)[:6]) }

func sum(s string) []byte {
	b := sha256.Sum256([]byte(s))
	return b[:]
}

// transit picks a /30 in 169.254.0.0/16 from the namespace name, outside
// the overlay's transit link (overlay.TransitPrefix, a /24): the edge
// host's site holds both.
func transit(ns string) (edge, site netip.Prefix) {
	s := sum(ns)
	n := (uint32(s[0])<<8 | uint32(s[1])) & 0x3fff
	base := netip.AddrFrom4([4]byte{169, 254, byte(n >> 6), byte(n<<2) & 0xff})
	if overlay.TransitPrefix.Contains(base) {
		base = netip.AddrFrom4([4]byte{169, 254, byte(n>>6) ^ 1, byte(n<<2) & 0xff})
	}
	return netip.PrefixFrom(base.Next(), 30), netip.PrefixFrom(base.Next().Next(), 30)
}

func (h *Local) RemoveSite(ctx context.Context, site string) error {
	if err := h.epoch.Check(ctx); err != nil {
		return err
	}
	if err := h.stopSiteMachines(ctx, site); err != nil {
		// A domain runs on in libvirtd: its network stays with it.
		return fmt.Errorf("host: remove site %s: %w", site, err)
	}
	// What the site put on the host outside its namespace goes first:
	// the namespace's deletion takes only what is inside it.
	if err := h.unpublishSite(site); err != nil {
		return fmt.Errorf("host: remove site %s: %w", site, err)
	}
	if err := h.stopTunnels(site); err != nil {
		return fmt.Errorf("host: remove site %s: %w", site, err)
	}
	if err := h.removeOverlay(site); err != nil {
		return fmt.Errorf("host: remove site %s: %w", site, err)
	}
	ns := h.SiteNS(site)
	if nsExists(ns) {
		if err := h.ops.DelNS(ns); err != nil && nsExists(ns) {
			return fmt.Errorf("host: remove site %s: %w", site, err)
		}
	}
	if err := os.Remove(h.siteFile(site)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Attachment implements machine.Networks from the site records, so it
// answers the same after a restart.
func (h *Local) Attachment(network string) (vnet.Attachment, error) {
	files, _ := filepath.Glob(filepath.Join(h.dir, "sites", "*.json"))
	for _, f := range files {
		var rec siteRecord
		if readJSON(f, &rec) != nil {
			continue
		}
		for _, n := range rec.Networks {
			if n.Name == network {
				return vnet.Attachment{NS: rec.NS, Bridge: "br-" + n.Name, Network: n}, nil
			}
		}
	}
	return vnet.Attachment{}, fmt.Errorf("%w: network %q is on no site of this host", vnet.ErrUnknown, network)
}

// adopt records this process as the owner of the sites a previous server
// process made, so `haven site cleanup` spares them while this one runs.
func (h *Local) adopt() {
	files, _ := filepath.Glob(filepath.Join(h.dir, "sites", "*.json"))
	for _, f := range files {
		var rec siteRecord
		if readJSON(f, &rec) == nil && nsExists(rec.NS) {
			vnet.WriteOwner(filepath.Join(vnet.NSOwnerDir, rec.NS), vnet.Self())
		}
	}
}
