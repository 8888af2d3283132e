package orchestrator

import (
	"context"

	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
)

// A planned failover stops the primary machines, takes final points after
// the stop and fails over with no data loss.
var plannedFailoverKind = &kind{
	takes:        takesNoStandby,
	precondition: atPrimary,
	steps:        func(r *run, plan *protection.Plan) []step { return r.failoverSteps(plan, "planned", SiteRecovery) },
}

func atPrimary(st *store.PlanState) error {
	return need(st, st.Phase == PhaseProtected, "it is not running at the primary site")
}

// standbyNow takes a point of every machine while it still runs and brings
// its standby disks to it, before the stop: the final point then differs
// from the standby only by what was written in the last seconds, so the
// disks prepared after the stop (clone + the two manifests' difference)
// cost the customers almost nothing. It is only a head start: a machine
// whose agent or standby cannot do it now is warned about and fails over
// as it would have.
func (r *run) standbyNow(ctx context.Context, machines []string) error {
	if r.p.NoStandby || !r.o.StandbyEnabled {
		return errSkipped
	}
	fresh := map[string]string{}
	for _, m := range machines {
		if fresh[m] != "" {
			continue // in the answer for an earlier machine of its group
		}
		c, _, err := r.agentFor(m)
		if err == nil {
			var ids map[string]string
			if ids, err = c.Snapshot(ctx, m); err == nil {
				for x, id := range ids {
					if x == m || r.sameAgent(m, x) {
						fresh[x] = id
					}
				}
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.warn("%s: no point before the stop (%v): its standby stays at the point it holds", m, err)
		}
	}
	for _, m := range machines {
		if fresh[m] == "" {
			continue
		}
		h, err := r.hostOf(ctx, m)
		if err != nil {
			r.warn("%s: standby not brought to %s before the stop: %v", m, fresh[m], err)
			continue
		}
		for _, d := range r.cfg.Machine(m).Disks {
			if _, err := h.Host.UpdateStandby(ctx, m, d.Name, fresh[m]); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				r.warn("%s/%s: standby not brought to %s before the stop: %v", m, d.Name, fresh[m], err)
				continue
			}
		}
		r.logf("info", "%s: standby at %s, taken before the stop", m, fresh[m])
	}
	return nil
}
