package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/machine"
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
	var down map[string]error
	placed := false
	if standby {
		// A machine whose host does not answer is placed on another,
		// and its standby image is rebuilt there.
		var err error
		down = o.downHosts(ctx)
		if where, err = o.placeAll(ctx, cfg, down); err != nil {
			errs = append(errs, fmt.Errorf("standby placement: %w", err))
		} else {
			placed = true
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
	if placed {
		errs = append(errs, o.dropStrayStandbys(ctx, cfg, where, down, busy))
	}
	o.dropAllLeftReplication(ctx, cfg)
	return errors.Join(errs...)
}

// dropStrayStandbys removes the standby images a host keeps for a machine
// placed elsewhere (it moved off a host that was lost, and the host came
// back) or no longer protected: they are disk space a failover never
// clones. Hosts that do not answer are left for a later refresh, and so
// are the machines of plans a job holds (a failover may be cloning).
func (o *Orchestrator) dropStrayStandbys(ctx context.Context, cfg *protection.Config, where placement.Placement, down map[string]error, busy map[string]bool) error {
	var errs []error
	for _, h := range o.hosts() {
		sk, ok := h.Host.(host.StandbyKeeper)
		if !ok || down[h.Name] != nil {
			continue
		}
		imgs, err := sk.Standbys(ctx)
		if err != nil {
			errs = append(errs, hostCall(h, fmt.Errorf("standby images: %w", err)))
			continue
		}
		for _, img := range imgs {
			if busy[img.Machine] || where[img.Machine] == h.Name && hasDisk(cfg.Machine(img.Machine), img.Disk) {
				continue
			}
			if err := sk.RemoveStandby(ctx, img.Machine, img.Disk); err != nil {
				errs = append(errs, hostCall(h, fmt.Errorf("remove stray standby %s/%s: %w", img.Machine, img.Disk, err)))
				continue
			}
			o.log.Info("stray standby image removed", "machine", img.Machine, "disk", img.Disk, "host", h.Name, "placed_on", where[img.Machine])
		}
	}
	return errors.Join(errs...)
}

func hasDisk(m *protection.Machine, disk string) bool {
	return m != nil && slices.ContainsFunc(m.Disks, func(d machine.Disk) bool { return d.Name == disk })
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
