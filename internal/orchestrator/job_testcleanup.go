package orchestrator

import (
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
)

// A test cleanup removes a test failover's copy and records the drill.
var testCleanupKind = &kind{
	takes:    takesNote,
	noReturn: "remove the test copy",
	precondition: func(st *store.PlanState) error {
		return need(st, st.Test != "", "no test failover to clean up")
	},
	steps: func(r *run, _ *protection.Plan) []step { return r.cleanupSteps() },
}
