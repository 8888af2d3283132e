package orchestrator

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/haven-dr/haven/internal/agent"
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
)

func groupsOf(cfg *protection.Config, plan *protection.Plan) []string {
	var out []string
	for _, m := range machinesOf(plan) {
		if g := cfg.Machine(m).GroupOf(); !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out
}

func (r *run) reprotectSteps(plan *protection.Plan) []step {
	return []step{
		{"first point back", func(ctx context.Context, r *run) error {
			if err := r.canReplicateBack(ctx, plan); err != nil {
				return err
			}
			if err := r.intend(ctx, Resource{Kind: ResReplicating, Name: plan.Name}); err != nil {
				return err
			}
			rep, err := r.ensureReplicator(ctx, plan)
			if err != nil {
				return err
			}
			for _, g := range groupsOf(r.cfg, plan) {
				if err := rep.cycle(ctx, g); err != nil {
					return fmt.Errorf("replicating group %s back: %w", g, err)
				}
			}
			r.logf("info", "the recovered machines' disks are in the vault; replication back runs every %s", agent.MinFrequency)
			return nil
		}},
		{"finish", func(ctx context.Context, r *run) error {
			rep, err := r.ensureReplicator(ctx, plan)
			if err != nil {
				return err
			}
			if err := rep.start(ctx); err != nil {
				return err
			}
			return r.setPhase(ctx, PhaseReprotected, r.out.From.Failover)
		}},
	}
}

// failbackStoppedReplication: an unfinished failback of plan took
// replication back's final pass; it (or its cancel) decides when
// replication back runs again, not the server's start.
func (o *Orchestrator) failbackStoppedReplication(ctx context.Context, plan string) bool {
	jobs, err := o.Store.Jobs(ctx, store.JobFilter{Plan: plan, Active: true})
	if err != nil {
		return false
	}
	for _, j := range jobs {
		if j.Type != Failback {
			continue
		}
		var out Outputs
		if json.Unmarshal(j.Outputs, &out) == nil && slices.ContainsFunc(out.Resources, func(x Resource) bool {
			return x.Kind == ResReplicationStopped
		}) {
			return true
		}
	}
	return false
}

// resumeReplication restarts replication back for reprotected plans after
// a server restart.
func (o *Orchestrator) resumeReplication(ctx context.Context) {
	cfg, _, err := o.Config(ctx)
	if err != nil {
		return
	}
	for _, p := range cfg.Plans {
		st, err := o.Store.PlanState(ctx, p.Name)
		if err != nil || st.Phase != PhaseReprotected || o.failbackStoppedReplication(ctx, p.Name) {
			continue
		}
		fj, err := o.Store.Job(ctx, st.Failover)
		if err != nil {
			continue
		}
		r, _, err := o.load(fj)
		if err != nil {
			continue
		}
		r.out.DiskJob = fj.ID
		rep, err := r.ensureReplicator(ctx, r.cfg.Plan(p.Name))
		if err == nil {
			err = rep.start(ctx)
		}
		if err != nil {
			o.log.Warn("replication back not resumed", "plan", p.Name, "err", err)
			continue
		}
		o.log.Info("replicating back again", "plan", p.Name)
	}
}
