package orchtest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"

	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/vault"
	"github.com/haven-dr/haven/internal/vnet"
)

// Host is an in-memory recovery host (host.Host) that behaves as
// host.Local does where the orchestrator can tell: EnsureSite adds new
// networks in place and remakes a site whose networks or edge changed
// only when nothing runs on it (else host.ErrSiteBusy),
// RemoveSite stops the site's machines, StartMachine needs the site and
// the disks, PrepareDisk restores the point from the vault for real into
// the target file (so replication back reads real disks). Machines are
// entries in a map: nothing boots.
type Host struct {
	Faults
	v *vault.Vault

	mu      sync.Mutex
	sites   map[string]Site
	running map[string]machine.Spec // site/name
	disks   map[string]string       // path -> point written there
	made    map[string]int          // "site:x", "machine:site/name", "disk:path" -> creations
	// published: site/name -> rules, as host.Local keeps them.
	published map[string][]host.PublishRule
	// overlays: site -> its overlay; underlay: this host's address
	// (overlay.go).
	overlays map[string]host.Overlay
	underlay netip.Addr
	// standby: machine/disk -> the point its standby image holds.
	standby map[string]string
}

// Site is a site as the fake host holds it.
type Site struct {
	Networks []vnet.Network
	Edge     string
}

var _ host.Host = (*Host)(nil)

// NewHost restores disks from v.
func NewHost(v *vault.Vault) *Host {
	return &Host{v: v, sites: map[string]Site{}, running: map[string]machine.Spec{},
		disks: map[string]string{}, made: map[string]int{}, published: map[string][]host.PublishRule{},
		overlays: map[string]host.Overlay{}, standby: map[string]string{}}
}

func mkey(site, name string) string { return site + "/" + name }

func (h *Host) EnsureSite(ctx context.Context, site string, nets []vnet.Network, edge string) error {
	done, err := h.enter(ctx, Call{Method: "EnsureSite", Site: site})
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if s, ok := h.sites[site]; ok {
		// As host.Local: new networks are added in place, a changed one
		// or another edge remakes the site only when nothing runs on it.
		added, changed := netDiff(s.Networks, nets)
		if len(changed) == 0 && s.Edge == edge {
			s.Networks = append(s.Networks, added...)
			h.sites[site] = s
			return done(nil)
		}
		if busy := h.onSiteLocked(site); len(busy) > 0 {
			return done(fmt.Errorf("%w: fake host: site %s: networks %v or edge changed, but %v run on it", host.ErrSiteBusy, site, changed, busy))
		}
		h.removeSiteLocked(site)
	}
	h.sites[site] = Site{Networks: slices.Clone(nets), Edge: edge}
	h.made["site:"+site]++
	return done(nil)
}

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

func (h *Host) onSiteLocked(site string) []string {
	var out []string
	for k := range h.running {
		if s, n, _ := cutKey(k); s == site {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func (h *Host) RemoveSite(ctx context.Context, site string) error {
	done, err := h.enter(ctx, Call{Method: "RemoveSite", Site: site})
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removeSiteLocked(site)
	return done(nil)
}

func (h *Host) removeSiteLocked(site string) {
	for k := range h.running {
		if s, _, _ := cutKey(k); s == site {
			delete(h.running, k)
		}
	}
	for k := range h.published {
		if s, _, _ := cutKey(k); s == site {
			delete(h.published, k)
		}
	}
	delete(h.sites, site)
	delete(h.overlays, site) // the namespace took its devices
}

func cutKey(k string) (string, string, bool) {
	for i := 0; i < len(k); i++ {
		if k[i] == '/' {
			return k[:i], k[i+1:], true
		}
	}
	return k, "", false
}

func (h *Host) SiteNS(site string) string { return "fake-" + site }

// PrepareDisk restores the point into req.Target (in place when the file
// exists, as a change of point does); a target already holding the point
// is left as it is ("existing").
func (h *Host) PrepareDisk(ctx context.Context, req host.DiskRequest) (*host.DiskResult, error) {
	done, err := h.enter(ctx, Call{Method: "PrepareDisk", Machine: req.Machine, Disk: req.Disk, Path: req.Target, Point: req.Point})
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	had := h.disks[req.Target]
	h.mu.Unlock()
	fi, serr := os.Stat(req.Target)
	if had == req.Point && serr == nil {
		return &host.DiskResult{Method: "existing", Size: fi.Size()}, done(nil)
	}
	if err := os.MkdirAll(filepath.Dir(req.Target), 0o700); err != nil {
		return nil, done(err)
	}
	st, err := h.v.Restore(ctx, vault.RestoreOptions{Machine: req.Machine, Point: req.Point, Disk: req.Disk, Target: req.Target})
	if err != nil {
		return nil, done(fmt.Errorf("fake host: disk %s/%s of point %s: %w", req.Machine, req.Disk, req.Point, err))
	}
	method := "restore"
	h.mu.Lock()
	if serr == nil {
		method = "in-place"
	} else {
		h.made["disk:"+req.Target]++
	}
	h.disks[req.Target] = req.Point
	h.mu.Unlock()
	return &host.DiskResult{Method: method, Size: st.Size, BytesWritten: st.BytesWritten, BytesFetched: st.BytesFetched}, done(nil)
}

func (h *Host) RemoveDisk(ctx context.Context, path string) error {
	done, err := h.enter(ctx, Call{Method: "RemoveDisk", Path: path})
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return done(err)
	}
	h.mu.Lock()
	delete(h.disks, path)
	h.mu.Unlock()
	return done(nil)
}

// UpdateStandby records the point a standby image holds; nothing is
// written (failovers restore whole from the fake's point of view).
func (h *Host) UpdateStandby(ctx context.Context, machineName, disk, point string) (*host.DiskResult, error) {
	done, err := h.enter(ctx, Call{Method: "UpdateStandby", Machine: machineName, Disk: disk, Point: point})
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.standby[mkey(machineName, disk)] = point
	h.mu.Unlock()
	return &host.DiskResult{Method: "existing"}, done(nil)
}

var _ host.StandbyKeeper = (*Host)(nil)

func (h *Host) Standbys(ctx context.Context) ([]host.StandbyImage, error) {
	done, err := h.enter(ctx, Call{Method: "Standbys"})
	if err != nil {
		return nil, err
	}
	return h.StandbyImages(), done(nil)
}

func (h *Host) RemoveStandby(ctx context.Context, machineName, disk string) error {
	done, err := h.enter(ctx, Call{Method: "RemoveStandby", Machine: machineName, Disk: disk})
	if err != nil {
		return err
	}
	h.mu.Lock()
	delete(h.standby, mkey(machineName, disk))
	h.mu.Unlock()
	return done(nil)
}

// StandbyImages are the standby images the fake keeps, sorted.
func (h *Host) StandbyImages() []host.StandbyImage {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []host.StandbyImage
	for k, p := range h.standby {
		m, d, _ := cutKey(k)
		out = append(out, host.StandbyImage{Machine: m, Disk: d, Point: p})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Machine+"/"+out[i].Disk < out[j].Machine+"/"+out[j].Disk })
	return out
}

// StartMachine "boots" spec on site: the site must exist and every disk
// file must be there, as for a real driver.
func (h *Host) StartMachine(ctx context.Context, site, driver string, spec machine.Spec) error {
	done, err := h.enter(ctx, Call{Method: "StartMachine", Site: site, Machine: spec.Name})
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.sites[site]; !ok {
		return done(fmt.Errorf("fake host: start %s: no site %s", spec.Name, site))
	}
	if _, ok := h.running[mkey(site, spec.Name)]; ok {
		return done(nil)
	}
	for _, d := range spec.Disks {
		if _, err := os.Stat(d.Path); err != nil {
			return done(fmt.Errorf("fake host: start %s: disk %s: %w", spec.Name, d.Name, err))
		}
	}
	h.running[mkey(site, spec.Name)] = spec
	h.made["machine:"+mkey(site, spec.Name)]++
	return done(nil)
}

func (h *Host) StopMachine(ctx context.Context, site, name string) error {
	done, err := h.enter(ctx, Call{Method: "StopMachine", Site: site, Machine: name})
	if err != nil {
		return err
	}
	h.mu.Lock()
	delete(h.running, mkey(site, name))
	h.mu.Unlock()
	return done(nil)
}

// Running is not recorded: the engine polls it. Nothing runs on a lost
// host.
func (h *Host) Running(site, name string) bool {
	if h.Ping(context.Background()) != nil {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.running[mkey(site, name)]
	return ok
}

// WaitHealthy passes at once for a running machine and fails otherwise.
func (h *Host) WaitHealthy(ctx context.Context, site string, spec machine.Spec) error {
	done, err := h.enter(ctx, Call{Method: "WaitHealthy", Site: site, Machine: spec.Name})
	if err != nil {
		return err
	}
	if !h.Running(site, spec.Name) {
		return done(fmt.Errorf("fake host: %s is not running on %s", spec.Name, site))
	}
	return done(nil)
}

// Publish records rules as the machine's published services; like
// host.Local it refuses a site without an uplink.
func (h *Host) Publish(ctx context.Context, site, name string, rules []host.PublishRule) error {
	done, err := h.enter(ctx, Call{Method: "Publish", Site: site, Machine: name})
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.sites[site]
	switch {
	case !ok:
		return done(fmt.Errorf("fake host: publish %s: no site %s", name, site))
	case s.Edge == "":
		return done(fmt.Errorf("fake host: publish %s: site %s has no uplink", name, site))
	case len(rules) == 0:
		delete(h.published, mkey(site, name))
	default:
		h.published[mkey(site, name)] = slices.Clone(rules)
	}
	return done(nil)
}

func (h *Host) Unpublish(ctx context.Context, site, name string) error {
	done, err := h.enter(ctx, Call{Method: "Unpublish", Site: site, Machine: name})
	if err != nil {
		return err
	}
	h.mu.Lock()
	delete(h.published, mkey(site, name))
	h.mu.Unlock()
	return done(nil)
}

// Kill makes a machine die (as a crash of the recovery host would).
func (h *Host) Kill(site, name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.running, mkey(site, name))
}

// Boots is how many times StartMachine booted name on site (calls for
// a machine already running do not count).
func (h *Host) Boots(site, name string) int { return h.madeN("machine:" + mkey(site, name)) }

// SiteCreations is how many times site was made (a remake counts).
func (h *Host) SiteCreations(site string) int { return h.madeN("site:" + site) }

// DiskCreations is how many times a disk file was made at path from
// nothing (in-place rewrites do not count).
func (h *Host) DiskCreations(path string) int { return h.madeN("disk:" + path) }

// Creations returns every creation count, keyed "site:<site>",
// "machine:<site>/<name>" and "disk:<path>".
func (h *Host) Creations() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]int{}
	for k, v := range h.made {
		out[k] = v
	}
	return out
}

func (h *Host) madeN(k string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.made[k]
}

// Site returns a site and whether it exists.
func (h *Host) Site(site string) (Site, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.sites[site]
	return s, ok
}

// World is what exists on the host, sorted, comparable with
// reflect.DeepEqual: a cancel must bring it back.
type World struct {
	Sites   []string // site names
	Running []string // site/name
	Disks   []string // disks the host prepared that still exist: "path@point it holds"
	// Published: "site/name proto on->to" of every published service.
	Published []string
	// Overlays: "site network/vni -> peers" of every overlay network.
	Overlays []string
}

// World returns what exists now.
func (h *Host) World() World {
	h.mu.Lock()
	defer h.mu.Unlock()
	var w World
	for s := range h.sites {
		w.Sites = append(w.Sites, s)
	}
	for k := range h.running {
		w.Running = append(w.Running, k)
	}
	for p, pt := range h.disks {
		if _, err := os.Stat(p); err == nil {
			w.Disks = append(w.Disks, p+"@"+pt)
		}
	}
	for k, rules := range h.published {
		for _, r := range rules {
			w.Published = append(w.Published, fmt.Sprintf("%s %s %s->%s", k, r.Proto, r.On, r.To))
		}
	}
	w.Overlays = h.overlayWorld()
	sort.Strings(w.Published)
	sort.Strings(w.Sites)
	sort.Strings(w.Running)
	sort.Strings(w.Disks)
	return w
}
