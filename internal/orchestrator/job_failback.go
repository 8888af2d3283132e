package orchestrator

import (
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
)

// A failback is a planned failover back to the primary: final points of the
// recovery copy, a delta restore onto the primary's disks, the primary
// started, DNS moved back, the recovery copy removed.
var failbackKind = &kind{
	noReturn: "remove the recovery copy",
	precondition: func(st *store.PlanState) error {
		return need(st, st.Phase == PhaseReprotected, "failback needs reprotect first")
	},
	steps:           func(r *run, plan *protection.Plan) []step { return r.failbackSteps(plan) },
	onFailoverDisks: true,
}
