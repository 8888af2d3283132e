package orchestrator

import (
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
