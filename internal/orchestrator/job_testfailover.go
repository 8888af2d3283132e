package orchestrator

import (
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
)

// A test failover boots the plan into the isolated test network; customers
// and replication are untouched. Its copy stays up until test-cleanup.
var testFailoverKind = &kind{
	takes: takesPoint | takesNoStandby,
	precondition: func(st *store.PlanState) error {
		return need(st, st.Test == "", "a test copy is still up (haven failover cleanup)")
	},
	steps: func(r *run, plan *protection.Plan) []step {
		return r.withDrillChecks(plan, r.failoverSteps(plan, "test", SiteTest))
	},
	// The plan has a test copy from now on, even if the drill fails:
	// cleanup removes it and records the failed drill.
	submitted: func(st *store.PlanState, j *store.Job) { st.Test = j.ID },
}
