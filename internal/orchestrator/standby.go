package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/haven-dr/haven/internal/placement"
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
)

// StandbyHost is what a host offers for standby images.
type StandbyHost interface {
	StandbyPoint(machine, disk string) string
}

// RefreshStandby brings every protected machine's standby disks up to its
// newest point; each refresh writes only the chunks that changed, so the
// recovery site always holds a near-current copy and a failover clones it
// instead of restoring whole disks.
func (o *Orchestrator) RefreshStandby(ctx context.Context) error {
	cfg, _, err := o.Config(ctx)
	if err != nil {
		return nil // nothing applied yet
	}
	standby := o.StandbyEnabled && len(o.hosts()) > 0
	var errs []error
	var where placement.Placement
	if standby {
		// A machine whose host does not answer is placed on another,
		// and its standby image is rebuilt there.
		var err error
		if where, err = o.placeAll(ctx, cfg, o.downHosts(ctx)); err != nil {
			errs = append(errs, fmt.Errorf("standby placement: %w", err))
		}
	}
	targets := o.rpoTargets(ctx)
	busy := o.machinesInJobs(ctx, cfg)
	for _, m := range cfg.Machines {
		ps, err := o.Vault.Points(ctx, m.Name)
		if err != nil || len(ps) == 0 {
			continue
		}
		ps = slices.DeleteFunc(ps, preserved)
		if len(ps) == 0 {
			continue
		}
		if err := o.recordPoints(ctx, m.Name, ps, targets[m.Name]); err != nil {
			errs = append(errs, fmt.Errorf("point history of %s: %w", m.Name, err))
		}
		sort.Slice(ps, func(i, j int) bool { return ps[i].Time.After(ps[j].Time) })
		newest := ps[0]
		o.metrics.rpo.set(m.Name, newest.Time)
		h, placed := o.hostNamed(where[m.Name])
		sh, _ := h.Host.(StandbyHost)
		for _, d := range m.Disks {
			if !standby || !placed || busy[m.Name] {
				break
			}
			if sh != nil && sh.StandbyPoint(m.Name, d.Name) == newest.ID {
				continue
			}
			if _, err := h.Host.UpdateStandby(ctx, m.Name, d.Name, newest.ID); err != nil {
				errs = append(errs, hostCall(h, fmt.Errorf("standby %s/%s: %w", m.Name, d.Name, err)))
				continue
			}
			o.log.Info("standby image updated", "machine", m.Name, "disk", d.Name, "point", newest.ID, "host", h.Name)
		}
	}
	return errors.Join(errs...)
}

// machinesInJobs are the machines of plans a job holds. Their standbys are
// left alone meanwhile: a failover clones them (and a planned one brings
// them to its own point first), and a refresh in between takes the
// standby's record away while it writes, so the failover would restore
// the disk whole instead of cloning it.
func (o *Orchestrator) machinesInJobs(ctx context.Context, cfg *protection.Config) map[string]bool {
	busy := map[string]bool{}
	jobs, err := o.Store.Jobs(ctx, store.JobFilter{Active: true})
	if err != nil {
		return busy
	}
	for _, j := range jobs {
		if p := cfg.Plan(j.Plan); p != nil {
			for _, m := range machinesOf(p) {
				busy[m] = true
			}
		}
	}
	return busy
}
