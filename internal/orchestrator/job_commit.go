package orchestrator

import (
	"context"

	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
)

// A commit makes an uncommitted failover final.
var commitKind = &kind{
	precondition: failedOver,
	steps: func(r *run, _ *protection.Plan) []step {
		return []step{{"commit", func(ctx context.Context, r *run) error {
			return r.setPhase(ctx, PhaseCommitted, r.out.From.Failover)
		}}}
	},
}

func failedOver(st *store.PlanState) error {
	return need(st, st.Phase == PhaseFailedOver, "only an uncommitted failover can change point, commit or be canceled")
}
