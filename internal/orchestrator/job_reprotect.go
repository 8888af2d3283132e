package orchestrator

import (
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
)

// A reprotect replicates the recovered machines back into the vault after
// commit.
var reprotectKind = &kind{
	precondition: func(st *store.PlanState) error {
		return need(st, st.Phase == PhaseCommitted, "reprotect follows a committed failover")
	},
	steps:           func(r *run, plan *protection.Plan) []step { return r.reprotectSteps(plan) },
	onFailoverDisks: true,
}
