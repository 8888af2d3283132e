package orchestrator

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/haven-dr/haven/internal/agent"
	"github.com/haven-dr/haven/internal/dns/health"
	"github.com/haven-dr/haven/internal/protection"
)

// Failback, in order: the old primary is fenced first (its agent may be
// back and its machines up, writing stale state); the groups' before
// actions run (a manual gate waits here, with production untouched); the
// recovery machines stop and replication back takes its final pass, whose
// point IDs are the ones restored (never a point chosen by time, which an
// old primary's agent or clock could win); the primary's disks get them,
// its previous state preserved under a key of this job; the primaries
// start, the after actions run (DNS back), and the recovery copy goes
// only once the primaries are healthy.
//
// Every side effect on production is recorded before it is made, so a
// cancel puts back the state before the failback: recovery machines
// running, replication back on, DNS on the recovery site, primaries
// stopped. The fence is not undone: an old primary holds stale state and
// must not serve. Once the recovery copy is being removed there is no way
// back, and a cancel finishes the failback instead (ResNoReturn).
func (r *run) failbackSteps(plan *protection.Plan) []step {
	all := machinesOf(plan)
	s := []step{{"fence the old primary", func(ctx context.Context, r *run) error { return r.fenceOldPrimary(ctx, all) }}}
	for i, g := range plan.Groups {
		s = append(s, r.actionSteps(groupLabel(i, g)+": before", g.Before, "planned", "failback", g.Machines, SiteRecovery)...)
	}
	// Customers move back by DNS as they moved over: resolvers get TTL 0
	// and drop the recovery site's answers while it still serves.
	s = append(s,
		step{"lower DNS TTL", func(ctx context.Context, r *run) error { return r.lowerTTL(ctx, plan, "failback") }},
		step{"resolvers drop answers of the old TTL", func(ctx context.Context, r *run) error { return r.drainTTL(ctx) }},
		step{"stop recovery machines", func(ctx context.Context, r *run) error { return r.stopRecovery(ctx, all) }},
		step{"final recovery points", func(ctx context.Context, r *run) error { return r.finalPointsBack(ctx, plan) }},
		step{"restore primary disks", func(ctx context.Context, r *run) error { return r.restorePrimary(ctx, all) }},
		step{"start primary machines", func(ctx context.Context, r *run) error { return r.startPrimaries(ctx, all) }})
	for i, g := range plan.Groups {
		s = append(s, r.actionSteps(groupLabel(i, g)+": after", g.After, "planned", "failback", g.Machines, "")...)
	}
	return append(s,
		step{"primaries healthy", func(ctx context.Context, r *run) error { return r.primariesHealthy(ctx, plan) }},
		step{"remove the recovery copy", func(ctx context.Context, r *run) error {
			if err := ctx.Err(); err != nil {
				return err // canceled: do not cross the point of no return
			}
			if err := r.intend(ctx, Resource{Kind: ResNoReturn}); err != nil {
				return err
			}
			return r.removeRecoveryCopy(ctx)
		}},
		step{"finish", func(ctx context.Context, r *run) error { return r.endFailback(ctx, plan.Name) }})
}

// fenceOldPrimary stops the primary's machines through their agents
// before anything else: whatever the old primary runs now is stale, and
// its agent must not write points while the failback picks its own.
func (r *run) fenceOldPrimary(ctx context.Context, machines []string) error {
	for _, m := range slices.Backward(machines) {
		c, _, err := r.agentFor(m)
		if err != nil {
			return err
		}
		if err := c.Stop(ctx, m); err != nil {
			return fmt.Errorf("fence old primary %s: %w (failback needs its agent: nothing else was done)", m, err)
		}
		r.logf("info", "old primary %s fenced by its agent", m)
	}
	return nil
}

func (r *run) stopRecovery(ctx context.Context, machines []string) error {
	for _, m := range slices.Backward(machines) {
		if err := r.intend(ctx, Resource{Kind: ResRecoveryStopped, Site: SiteRecovery, Name: m}); err != nil {
			return err
		}
		if err := r.stopMachine(ctx, SiteRecovery, m); err != nil {
			return fmt.Errorf("stop recovery %s: %w", m, err)
		}
	}
	return nil
}

// finalPointsBack takes the last pass of replication back after the
// recovery machines stopped and keeps the IDs it wrote: these, and no
// point found by time, are what the primary gets.
func (r *run) finalPointsBack(ctx context.Context, plan *protection.Plan) error {
	// A host its machines left must not write points after the final
	// pass; one that does not answer is warned about, and waited for by
	// nothing (replication_move.go).
	if err := r.o.dropLeftReplication(ctx, plan.Name, r.out.From.Failover); err != nil {
		r.warn("%v", err)
	}
	rep, err := r.replicatorWhereMachinesRun(ctx, plan)
	if err != nil {
		return err
	}
	if err := r.intend(ctx, Resource{Kind: ResReplicationStopped, Name: plan.Name}); err != nil {
		return err
	}
	if err := rep.stop(ctx); err != nil {
		return fmt.Errorf("stop replication back before its final pass: %w", err)
	}
	if r.out.Points == nil {
		r.out.Points = map[string]PointUse{}
	}
	for _, m := range machinesOf(plan) {
		if _, ok := r.out.Points[m]; ok {
			continue // its group's pass was recorded before a crash
		}
		ids, err := rep.snapshot(ctx, m)
		if err != nil {
			return fmt.Errorf("final pass of replication back for %s: %w (nothing was written to the primary; retry)", m, err)
		}
		for gm, id := range ids {
			p, err := r.o.Vault.FindPoint(ctx, gm, id)
			if err != nil {
				return fmt.Errorf("final point %s of %s from the recovery copy: %w", id, gm, err)
			}
			r.out.Points[gm] = use(p)
			r.logf("info", "final point of %s at the recovery site: %s", gm, id)
		}
		if err := r.save(ctx); err != nil {
			return err
		}
	}
	for _, m := range machinesOf(plan) {
		if _, ok := r.out.Points[m]; !ok {
			return fmt.Errorf("%w: the final pass of replication back wrote no point of %s; refusing to restore anything else onto the primary", ErrPrecondition, m)
		}
	}
	return nil
}

// restorePrimary writes the final points onto the primary's disks. Each
// machine's previous state is preserved under a key of this job, so a
// retry uses the point the first try kept instead of keeping the half
// restored disks; the point is recorded even when the restore fails.
func (r *run) restorePrimary(ctx context.Context, machines []string) error {
	if r.out.Failback == nil {
		r.out.Failback = map[string]*FailbackDisk{}
	}
	if r.out.Preserved == nil {
		r.out.Preserved = map[string]string{}
	}
	for _, m := range machines {
		c, _, err := r.agentFor(m)
		if err != nil {
			return err
		}
		res, err := c.Restore(ctx, m, agent.RestoreRequest{Point: r.out.Points[m].ID, Preserve: true, PreserveKey: r.job.ID + "/" + m})
		if res != nil && res.Preserved != "" && r.out.Preserved[m] == "" {
			r.out.Preserved[m] = res.Preserved
			r.logf("info", "%s: the old primary's disks are kept as point %s", m, res.Preserved)
			if serr := r.save(ctx); serr != nil {
				return serr
			}
		}
		if err != nil {
			return fmt.Errorf("restore %s onto the primary's disks: %w (the disks may be partly written; retry the job to finish)", m, err)
		}
		for _, d := range res.Disks {
			r.out.Failback[m+"/"+d.Disk] = &FailbackDisk{Machine: m, Disk: d.Disk, Size: d.Size, Differed: d.Differing, BytesWritten: d.BytesWritten}
			r.logf("info", "%s/%s: wrote %d of %d bytes onto the primary's disk", m, d.Disk, d.BytesWritten, d.Size)
		}
		if err := r.save(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) startPrimaries(ctx context.Context, machines []string) error {
	for _, m := range machines {
		if err := r.intend(ctx, Resource{Kind: ResPrimaryStarted, Name: m}); err != nil {
			return err
		}
		if err := r.startPrimary(ctx, m); err != nil {
			return fmt.Errorf("start primary %s: %w", m, err)
		}
		r.logf("info", "primary %s started by its agent", m)
	}
	return nil
}

func (r *run) stopPrimaryMachine(ctx context.Context, m string) error {
	c, _, err := r.agentFor(m)
	if err != nil {
		return err
	}
	return c.Stop(ctx, m)
}

// restartRecovery starts a recovery machine a failback stopped and waits
// for its health, so DNS put back to the recovery site finds it serving.
func (r *run) restartRecovery(ctx context.Context, m string) error {
	if err := r.startMachines(ctx, SiteRecovery, []string{m}, false); err != nil {
		return err
	}
	return r.waitHealthy(ctx, SiteRecovery, []string{m}, false)
}

// restartReplication resumes replication back, as a failback found it.
func (r *run) restartReplication(ctx context.Context, planName string) error {
	plan := r.cfg.Plan(planName)
	if plan == nil {
		return fmt.Errorf("no plan %q in the job's config", planName)
	}
	rep, err := r.ensureReplicator(ctx, plan)
	if err != nil {
		return err
	}
	return rep.start(ctx)
}

// removeRecoveryCopy removes what the failover made, but the DNS changes
// (moved back by the failback's own actions) and the primaries it stopped
// (started by the failback).
func (r *run) removeRecoveryCopy(ctx context.Context) error {
	return r.undoJob(ctx, r.out.From.Failover, func(x Resource) bool {
		return x.Kind == ResDNS || x.Kind == ResPrimaryStopped
	})
}

func (r *run) endFailback(ctx context.Context, plan string) error {
	if err := r.dropReplicationNamed(ctx, plan); err != nil {
		return fmt.Errorf("drop replication back: %w", err)
	}
	if err := r.o.dropLeftReplication(ctx, plan, r.out.From.Failover); err != nil {
		r.warn("%v (remove state_dir/replication/%s.json on it before it comes back)", err, plan)
	}
	return r.setPhase(ctx, PhaseProtected, "")
}

// primariesHealthy refuses to let the recovery copy go while a primary is
// not serving: its agent must answer and report it started (not paused),
// and a DNS endpoint the failback moved traffic to must be online at the
// traffic manager's prober. It polls up to the machines' health timeout.
func (r *run) primariesHealthy(ctx context.Context, plan *protection.Plan) error {
	var limit time.Duration
	for _, m := range machinesOf(plan) {
		limit = max(limit, r.cfg.Machine(m).HealthTimeout)
	}
	deadline := time.Now().Add(limit)
	for {
		err := r.primariesServing(ctx, plan)
		if err == nil {
			r.logf("info", "primaries healthy: removing the recovery copy")
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w (after %s); the recovery copy is kept: retry once the primary is healthy, or cancel the failback to go back to it", err, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (r *run) primariesServing(ctx context.Context, plan *protection.Plan) error {
	for _, m := range machinesOf(plan) {
		c, a, err := r.agentFor(m)
		if err != nil {
			return err
		}
		rep, err := c.Status(ctx)
		if err != nil {
			return fmt.Errorf("primary %s: agent %s: %w", m, a.Name, err)
		}
		i := slices.IndexFunc(rep.Machines, func(s agent.MachineStatus) bool { return s.Name == m })
		if i < 0 || rep.Machines[i].Paused {
			return fmt.Errorf("primary %s is not running (agent %s reports it stopped)", m, a.Name)
		}
	}
	for _, g := range plan.Groups {
		for _, a := range g.After {
			if a.Type != protection.ActionDNS || !a.Applies("planned", "failback") {
				continue
			}
			if err := r.endpointOnline(ctx, a); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *run) endpointOnline(ctx context.Context, a protection.Action) error {
	prof, err := r.o.traffic(r.cfg.Traffic).Profile(ctx, a.Profile)
	if err != nil {
		return fmt.Errorf("traffic manager: profile %s: %w", a.Profile, err)
	}
	for _, e := range prof.Endpoints {
		if e.Name == a.Endpoint {
			if e.State == health.Online.String() || e.State == health.Unmonitored.String() {
				return nil
			}
			return fmt.Errorf("primary endpoint %s/%s is %s at the traffic manager (%s)", a.Profile, a.Endpoint, e.State, e.LastError)
		}
	}
	return fmt.Errorf("traffic manager: profile %s has no endpoint %q", a.Profile, a.Endpoint)
}
