package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
)

// Replication back follows the machines a recover-machines moved: the
// host a machine runs on now replicates it back from its disks there,
// and the lost host's order of the plan is dropped when it answers
// again (its loop would otherwise write points of disks nobody runs).

// followReplication is recover-machines' last step: a plan that
// replicates back (reprotected) gets its replication back where its
// machines run now.
func (r *run) followReplication(ctx context.Context, plan *protection.Plan) error {
	on, err := r.replicatesBack(ctx, plan.Name)
	if err != nil {
		return err
	}
	if !on {
		return errSkipped
	}
	if err := r.intend(ctx, Resource{Kind: ResReplicationMoved, Name: plan.Name}); err != nil {
		return err
	}
	return r.syncReplication(ctx, plan)
}

// replicatesBack: the plan is reprotected, or this process replicates
// it back.
func (r *run) replicatesBack(ctx context.Context, plan string) (bool, error) {
	st, err := r.o.Store.PlanState(ctx, plan)
	if err != nil {
		return false, err
	}
	return st.Phase == PhaseReprotected || r.o.replicatorFor(plan) != nil, nil
}

func (r *run) syncReplicationNamed(ctx context.Context, name string) error {
	p := r.cfg.Plan(name)
	if p == nil {
		return fmt.Errorf("no plan %q in the job's config", name)
	}
	if on, err := r.replicatesBack(ctx, name); err != nil || !on {
		return err
	}
	return r.syncReplication(ctx, p)
}

// syncReplication makes the plan's replication back replicate each
// machine on the host it runs on for this job, and run (unless a
// failback stopped it for its final pass). Idempotent: a host that holds
// the same order keeps it; a host's new order replaces its old one.
func (r *run) syncReplication(ctx context.Context, plan *protection.Plan) error {
	rep, err := r.replicatorWhereMachinesRun(ctx, plan)
	if err != nil {
		return err
	}
	o := r.o
	if !o.failbackStoppedReplication(ctx, plan.Name) {
		if err := rep.start(ctx); err != nil {
			return err
		}
	}
	for _, k := range rep.keys() {
		r.logf("info", "replication back of %s on %s: %s", plan.Name, hostLabel(k), machinesIn(rep, k))
	}
	if r.out.DiskJob != "" {
		if err := o.dropLeftReplication(ctx, plan.Name, r.out.DiskJob); err != nil {
			r.warn("%v", err)
		}
	}
	return nil
}

// replicatorWhereMachinesRun is ensureReplicator, built again when the
// one this process holds replicates a machine where it no longer runs
// for this job.
func (r *run) replicatorWhereMachinesRun(ctx context.Context, plan *protection.Plan) (*planReplication, error) {
	specs, _, err := r.replicationOf(ctx, plan)
	if err != nil {
		return nil, err
	}
	o := r.o
	if old := o.replicatorFor(plan.Name); old != nil && !sameParts(old, specs) {
		o.reps.mu.Lock()
		if o.reps.m[plan.Name] == old {
			delete(o.reps.m, plan.Name)
		}
		o.reps.mu.Unlock()
		// This process's loop ends; a remote host that still holds
		// machines gets its new order from ensureReplicator, one that
		// lost them all is in ReplicationLeft.
		_ = old.each(func(x replicator) error { x.release(); return nil })
	}
	return r.ensureReplicator(ctx, plan)
}

func hostLabel(k string) string {
	if k == "" {
		return "this server"
	}
	return "host " + k
}

func machinesIn(rep *planReplication, k string) []string {
	var ms []string
	for m, part := range rep.of {
		if part == k {
			ms = append(ms, m)
		}
	}
	slices.Sort(ms)
	return ms
}

// sameParts: rep replicates every machine of specs by the same part.
func sameParts(rep *planReplication, specs map[string]host.Replication) bool {
	n := 0
	for k, s := range specs {
		for _, m := range s.Machines {
			if part, ok := rep.of[m.Name]; !ok || part != k {
				return false
			}
			n++
		}
		if rep.parts[k] == nil {
			return false
		}
	}
	return n == len(rep.of) && len(rep.parts) == len(specs)
}

// dropLeftReplication drops plan's replication back on the hosts its
// failover job lists as left (a recover-machines moved their machines
// off) and that answer now; a host that does not answer stays listed,
// for a later try (the standby loop's, a failback's), and blocks
// nothing. A host that runs machines of the plan again holds the plan's
// own order (replaced when they moved there).
func (o *Orchestrator) dropLeftReplication(ctx context.Context, plan, failover string) error {
	_, fo, err := o.outputsOf(ctx, failover)
	if err != nil || len(fo.ReplicationLeft) == 0 {
		return err
	}
	var done []string
	var keep []string
	for _, name := range fo.ReplicationLeft {
		h, ok := o.hostNamed(name)
		if !ok || !h.Remote || slices.Contains(slices.Collect(maps.Values(fo.Placement)), name) {
			done = append(done, name)
			continue
		}
		if err := dropOn(ctx, h, plan); err != nil {
			keep = append(keep, fmt.Sprintf("%s (%v)", name, err))
			continue
		}
		o.log.Info("replication back dropped on a host the plan's machines left", "plan", plan, "host", name)
		done = append(done, name)
	}
	if len(done) > 0 {
		if err := o.updateJob(ctx, failover, func(fr *run) {
			fr.out.ReplicationLeft = slices.DeleteFunc(fr.out.ReplicationLeft, func(n string) bool { return slices.Contains(done, n) })
		}); err != nil {
			return err
		}
	}
	if len(keep) > 0 {
		return fmt.Errorf("replication back of %s left on hosts that do not answer, dropped when they do: %v", plan, keep)
	}
	return nil
}

// dropAllLeftReplication is the standby loop's try for every plan at
// the recovery site.
func (o *Orchestrator) dropAllLeftReplication(ctx context.Context, cfg *protection.Config) {
	for _, p := range cfg.Plans {
		st, err := o.Store.PlanState(ctx, p.Name)
		if err != nil || st.Failover == "" {
			continue
		}
		if err := o.dropLeftReplication(ctx, p.Name, st.Failover); err != nil {
			o.log.Warn("replication back not dropped", "plan", p.Name, "err", err)
		}
	}
}

// outputsOf is a job's outputs.
func (o *Orchestrator) outputsOf(ctx context.Context, id string) (*store.Job, *Outputs, error) {
	j, err := o.Store.Job(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	r, _, err := o.load(j)
	if err != nil {
		return nil, nil, err
	}
	return j, r.out, nil
}

// updateJob changes another job's outputs, reading it again when it was
// saved in between.
func (o *Orchestrator) updateJob(ctx context.Context, id string, fn func(fr *run)) error {
	for try := 0; ; try++ {
		j, err := o.Store.Job(ctx, id)
		if err != nil {
			return err
		}
		fr, _, err := o.load(j)
		if err != nil {
			return err
		}
		fn(fr)
		err = fr.save(ctx)
		if !errors.Is(err, store.ErrStale) || try == 4 {
			if err != nil {
				return fmt.Errorf("update job %s: %w", j.ID, err)
			}
			return nil
		}
	}
}
