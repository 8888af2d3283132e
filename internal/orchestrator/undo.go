package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/haven-dr/haven/internal/dns"
	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
)

// removeResources undoes resources newest first. Each removal is
// idempotent; every failure is reported and the rest still tried, so a
// retry finishes what one pass could not.
func (r *run) removeResources(ctx context.Context, cfg *protection.Config, res []Resource, keep func(Resource) bool) error {
	if slices.ContainsFunc(res, func(x Resource) bool { return x.Kind == ResNoReturn }) {
		r.logf("warn", "the recovery copy was being removed: the failback cannot be undone, so it is finished")
		if err := r.removeRecoveryCopy(ctx); err != nil {
			return err
		}
		return r.endFailback(ctx, r.job.Plan)
	}
	var errs []error
	for _, x := range undoOrder(res) {
		if keep != nil && keep(x) {
			continue
		}
		var err error
		switch x.Kind {
		case ResMachine:
			err = r.onHost(ctx, x, func(h host.Host) error { return h.StopMachine(ctx, x.Site, x.Name) })
		case ResDisk:
			if err = r.onHost(ctx, x, func(h host.Host) error { return h.RemoveDisk(ctx, x.Path) }); err == nil {
				// The machine's and then the job's directory go once
				// empty (os.Remove refuses a directory that is not).
				os.Remove(filepath.Dir(x.Path))
				os.Remove(filepath.Dir(filepath.Dir(x.Path)))
			}
		case ResSite:
			var users []string
			if users, err = r.releaseSite(ctx, x.Site); err == nil && len(users) > 0 {
				r.logf("info", "site %s kept: %s still run there", x.Site, strings.Join(users, ", "))
				continue
			}
		case ResOverlay:
			var kept bool
			if kept, err = r.leaveOverlay(ctx, x); err == nil && kept {
				r.logf("info", "overlay of site %s kept on host %s: machines still run there", x.Site, x.Host)
				continue
			}
		case ResDNS:
			err = r.revertDNS(ctx, cfg, x)
		case ResDNSTTL:
			err = r.undoTTL(ctx, cfg, x)
		case ResPublish:
			err = r.onHost(ctx, x, func(h host.Host) error { return h.Unpublish(ctx, x.Site, x.Name) })
		case ResPrimaryStopped:
			err = r.startPrimary(ctx, x.Name)
		case ResPrimaryStarted:
			err = r.stopPrimaryMachine(ctx, x.Name)
		case ResRecoveryStopped:
			err = r.restartRecovery(ctx, x.Name)
		case ResReplicationStopped:
			err = r.restartReplication(ctx, x.Name)
		case ResReplicating:
			err = r.dropReplicationNamed(ctx, x.Name)
		case ResReplicationMoved:
			err = r.syncReplicationNamed(ctx, x.Name)
		case ResDiskPoint:
			err = r.diskBack(ctx, x)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s%s: %w", x.Kind, x.Site, x.Name+x.Path, err))
			continue
		}
		r.logf("info", "removed %s %s", x.Kind, strings.TrimPrefix(x.Site+" "+x.Name+x.Path, " "))
	}
	return errors.Join(errs...)
}

// undoOrder is newest first, except that recovery machines a failback
// stopped come back before anything else: production serves again before
// DNS is pointed back at it and before the primaries stop.
func undoOrder(res []Resource) []Resource {
	var disks, first, rest []Resource
	for _, x := range slices.Backward(res) {
		switch x.Kind {
		case ResDiskPoint:
			disks = append(disks, x) // the disks hold their old points before the machines start
		case ResRecoveryStopped:
			first = append(first, x)
		default:
			rest = append(rest, x)
		}
	}
	// Newest first is start order: they were stopped web before database.
	return append(append(disks, first...), rest...)
}

func (r *run) revertDNS(ctx context.Context, cfg *protection.Config, x Resource) error {
	if cfg.Traffic == nil {
		return nil
	}
	prof, ep, _ := strings.Cut(x.Name, "/")
	return r.o.traffic(cfg.Traffic).UpdateEndpoint(ctx, prof, ep, dns.EndpointPatch{Enabled: x.Enabled, Priority: x.Priority})
}

func (r *run) startPrimary(ctx context.Context, m string) error {
	c, _, err := r.agentFor(m)
	if err != nil {
		return err
	}
	return c.Start(ctx, m)
}

// undo is what a canceled job runs: remove what it created and put the
// plan back where it was.
func (o *Orchestrator) undo(ctx context.Context, r *run) {
	r.logf("info", "canceling: removing what the job created")
	if err := r.removeResources(ctx, r.cfg, r.out.Resources, nil); err != nil {
		if ctx.Err() != nil {
			return // shutting down: stays canceling, resumed at start
		}
		r.logf("error", "cancel incomplete: %v", err)
		o.finish(ctx, r.job, store.Failed, "cancel incomplete (retry with haven job cancel): "+err.Error())
		return
	}
	o.endCanceled(ctx, r.job)
}

// cleanupSteps remove a test failover's copy and record the drill.
func (r *run) cleanupSteps() []step {
	return []step{
		{"remove the test copy", func(ctx context.Context, r *run) error {
			tj, tout, err := r.jobOutputs(ctx, r.out.From.Test)
			if err != nil {
				return err
			}
			if tj.State == store.Running || tj.State == store.Waiting {
				return fmt.Errorf("%w: test failover %s is still %s", ErrPrecondition, tj.ID, tj.State)
			}
			tcfg, err := r.o.jobConfig(tj)
			if err != nil {
				return err
			}
			return r.removeResources(ctx, tcfg, tout.Resources, nil)
		}},
		{"record the drill", func(ctx context.Context, r *run) error {
			tj, tout, err := r.jobOutputs(ctx, r.out.From.Test)
			if err != nil {
				return err
			}
			d := store.Drill{JobID: tj.ID, Plan: tj.Plan, Started: tj.Created, CleanedUp: time.Now().UTC(),
				Passed: tj.State == store.Succeeded, Note: r.p.Note, Error: tj.Error}
			if !d.Passed && d.Error == "" {
				d.Error = "the drill did not finish (" + string(tj.State) + ")"
			}
			rep := buildReport(tj, tout)
			if rep.RTOSeconds != nil {
				d.RTOSeconds = *rep.RTOSeconds
			}
			drillFacts(&d, tj, rep)
			if err := r.o.Store.AddDrill(ctx, d); err != nil {
				return err
			}
			return r.setTest(ctx, "")
		}},
	}
}

func (o *Orchestrator) jobConfig(j *store.Job) (*protection.Config, error) {
	r, _, err := o.load(j)
	if err != nil {
		return nil, err
	}
	return r.cfg, nil
}

// undoJob removes what job id created (under the config it ran with),
// except what keep keeps.
func (r *run) undoJob(ctx context.Context, id string, keep func(Resource) bool) error {
	j, out, err := r.jobOutputs(ctx, id)
	if err != nil {
		return err
	}
	cfg, err := r.o.jobConfig(j)
	if err != nil {
		return err
	}
	return r.removeResources(ctx, cfg, out.Resources, keep)
}

// cancelFailoverSteps undo an uncommitted failover: recovery machines,
// disks, network and DNS changes go; primaries it stopped start again.
func (r *run) cancelFailoverSteps() []step {
	return []step{
		{"undo the failover", func(ctx context.Context, r *run) error {
			return r.undoJob(ctx, r.out.From.Failover, nil)
		}},
		{"finish", func(ctx context.Context, r *run) error { return r.setPhase(ctx, PhaseProtected, "") }},
	}
}

// changePointSteps bring the failed-over machines up again from other
// points; each disk gets only the chunks that differ.
func (r *run) changePointSteps(plan *protection.Plan) []step {
	all := machinesOf(plan)
	s := []step{
		{"stop recovery machines", func(ctx context.Context, r *run) error {
			for _, m := range slices.Backward(all) {
				if err := r.intend(ctx, Resource{Kind: ResRecoveryStopped, Site: SiteRecovery, Name: m}); err != nil {
					return err
				}
				if err := r.stopMachine(ctx, SiteRecovery, m); err != nil {
					return err
				}
			}
			return nil
		}},
		{"choose recovery points", func(ctx context.Context, r *run) error { return r.choosePoints(ctx, all) }},
	}
	for i, g := range plan.Groups {
		label := groupLabel(i, g)
		s = append(s,
			step{label + ": disks", func(ctx context.Context, r *run) error { return r.reuseDisks(ctx, g.Machines) }},
			step{label + ": start", func(ctx context.Context, r *run) error { return r.startMachines(ctx, SiteRecovery, g.Machines, false) }},
			step{label + ": health", func(ctx context.Context, r *run) error { return r.waitHealthy(ctx, SiteRecovery, g.Machines, false) }})
	}
	return s
}

// servingPoints are the points the failed-over machines run now: the
// failover's, or those of the newest change of point that succeeded.
func (r *run) servingPoints(ctx context.Context) (map[string]PointUse, error) {
	_, fout, err := r.jobOutputs(ctx, r.out.From.Failover)
	if err != nil {
		return nil, err
	}
	pts := fout.Points
	jobs, err := r.o.Store.Jobs(ctx, store.JobFilter{Plan: r.job.Plan})
	if err != nil {
		return nil, err
	}
	var newest *store.Job
	for _, j := range jobs {
		if j.Type == ChangePoint && j.State == store.Succeeded && j.ID != r.job.ID &&
			j.ID > r.out.From.Failover && (newest == nil || j.ID > newest.ID) {
			newest = j
		}
	}
	if newest != nil {
		_, cout, err := r.jobOutputs(ctx, newest.ID)
		if err != nil {
			return nil, err
		}
		pts = cout.Points
	}
	return pts, nil
}

// reuseDisks rewrites the failover's own disks in place to the new points.
func (r *run) reuseDisks(ctx context.Context, machines []string) error {
	prev, err := r.servingPoints(ctx)
	if err != nil {
		return err
	}
	for _, m := range machines {
		for _, d := range r.cfg.Machine(m).Disks {
			res := Resource{Kind: ResDiskPoint, Name: m, Disk: d.Name, Path: r.diskPath(m, d.Name), Point: prev[m].ID}
			if err := r.intend(ctx, res); err != nil {
				return err
			}
		}
	}
	return r.prepareDisks(ctx, machines)
}

// diskBack rewrites a disk a change of point rewrote to the point it held,
// its machine stopped first (the undo starts it again afterwards).
func (r *run) diskBack(ctx context.Context, x Resource) error {
	if x.Point == "" {
		return fmt.Errorf("no previous point recorded for %s", x.Path)
	}
	if err := r.stopMachine(ctx, SiteRecovery, x.Name); err != nil {
		return err
	}
	return r.onHost(ctx, x, func(h host.Host) error {
		_, err := h.PrepareDisk(ctx, host.DiskRequest{Machine: x.Name, Disk: x.Disk, Point: x.Point, Target: x.Path})
		return err
	})
}
