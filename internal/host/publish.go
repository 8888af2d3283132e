package host

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/haven-dr/haven/internal/vnet/nat"
)

// PublishRule publishes a machine's port on an address of the recovery
// host (protection: machines[].publish).
type PublishRule = nat.Rule

// publishRecord is a site's published services, written before the
// table so a crash leaves a record of whatever may exist; the table is
// rendered whole from it, so re-applying converges.
type publishRecord struct {
	Site string `json:"site"`
	// NS is the namespace of the table ("" = the server's own).
	NS       string                `json:"ns"`
	Table    string                `json:"table"`
	SiteLink string                `json:"site_link"`
	Machines map[string][]nat.Rule `json:"machines"`
}

func (h *Local) publishFile(site string) string {
	return filepath.Join(h.dir, "publish", site+".json")
}

// Publish makes rules the machine's published services on site (an
// empty list removes them, as Unpublish). Only a site with an uplink
// publishes.
func (h *Local) Publish(ctx context.Context, site, name string, rules []PublishRule) error {
	if len(rules) == 0 {
		return h.Unpublish(ctx, site, name)
	}
	if err := h.epoch.Check(ctx); err != nil {
		return err
	}
	for _, r := range rules {
		if err := r.Check(); err != nil {
			return err
		}
	}
	var srec siteRecord
	if err := readJSON(h.siteFile(site), &srec); err != nil {
		return fmt.Errorf("host: publish on site %s: no such site: %w", site, err)
	}
	if srec.Edge == "" {
		return fmt.Errorf("host: publish on site %s: the site has no uplink (an isolated test site never publishes)", site)
	}
	h.pubMu.Lock()
	defer h.pubMu.Unlock()
	rec := publishRecord{Site: site, NS: ParseEdge(srec.Edge).NS, Table: h.SiteNS(site),
		SiteLink: uplinkName(srec.NS), Machines: map[string][]nat.Rule{}}
	var old publishRecord
	if readJSON(h.publishFile(site), &old) == nil && old.Machines != nil {
		rec.Machines = old.Machines
	}
	rec.Machines[name] = rules
	if err := checkClash(rec, name); err != nil {
		return err
	}
	if err := writeJSON(h.publishFile(site), rec); err != nil {
		return err
	}
	if err := nat.Apply(rec.table()); err != nil {
		return fmt.Errorf("host: publish on site %s: %w", site, err)
	}
	return nil
}

// Unpublish removes what the machine published on site. It needs only
// the publish record, so it works whatever became of the site.
func (h *Local) Unpublish(ctx context.Context, site, name string) error {
	if err := h.epoch.Check(ctx); err != nil {
		return err
	}
	h.pubMu.Lock()
	defer h.pubMu.Unlock()
	var rec publishRecord
	if err := readJSON(h.publishFile(site), &rec); errors.Is(err, os.ErrNotExist) {
		return nil // nothing published
	} else if err != nil {
		return err
	}
	delete(rec.Machines, name)
	if len(rec.Machines) > 0 {
		if err := writeJSON(h.publishFile(site), rec); err != nil {
			return err
		}
	}
	if err := nat.Apply(rec.table()); err != nil {
		return fmt.Errorf("host: unpublish %s on site %s: %w", name, site, err)
	}
	if len(rec.Machines) == 0 {
		return rmFile(h.publishFile(site))
	}
	return nil
}

// checkClash refuses one public address and port for two machines.
func checkClash(rec publishRecord, name string) error {
	for _, r := range rec.Machines[name] {
		for _, other := range slices.Sorted(maps.Keys(rec.Machines)) {
			if other == name {
				continue
			}
			for _, o := range rec.Machines[other] {
				if o.Proto == r.Proto && o.On == r.On {
					return fmt.Errorf("host: %s %s is published for %s already, not for %s too", r.Proto, r.On, other, name)
				}
			}
		}
	}
	return nil
}

func (rec publishRecord) table() nat.Table {
	t := nat.Table{NS: rec.NS, Name: rec.Table, SiteLink: rec.SiteLink}
	for _, m := range slices.Sorted(maps.Keys(rec.Machines)) {
		t.Rules = append(t.Rules, rec.Machines[m]...)
	}
	return t
}

// Published lists what site publishes, by machine (for status and tests).
func (h *Local) Published(site string) map[string][]PublishRule {
	var rec publishRecord
	if readJSON(h.publishFile(site), &rec) != nil {
		return nil
	}
	return rec.Machines
}

// unpublishSite deletes the site's table and its record.
func (h *Local) unpublishSite(site string) error {
	h.pubMu.Lock()
	defer h.pubMu.Unlock()
	var rec publishRecord
	if err := readJSON(h.publishFile(site), &rec); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	if err := nat.Delete(rec.NS, rec.Table); err != nil {
		return err
	}
	return rmFile(h.publishFile(site))
}

func rmFile(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// sweepPublished removes the tables of sites that no longer exist: a
// server that crashed while removing a site, or a site whose namespace
// `haven site cleanup` removed, leaves a record and maybe a table.
func (h *Local) sweepPublished() error {
	files, _ := filepath.Glob(filepath.Join(h.dir, "publish", "*.json"))
	var errs []error
	for _, f := range files {
		site := strings.TrimSuffix(filepath.Base(f), ".json")
		var srec siteRecord
		if readJSON(h.siteFile(site), &srec) == nil && nsExists(srec.NS) {
			continue
		}
		errs = append(errs, h.unpublishSite(site))
	}
	return errors.Join(errs...)
}
