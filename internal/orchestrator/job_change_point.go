package orchestrator

import (
	"github.com/haven-dr/haven/internal/protection"
)

// A change of point brings the failed-over machines up again from other
// points before commit.
var changePointKind = &kind{
	takes:           takesPoint | takesNoStandby,
	precondition:    failedOver,
	steps:           func(r *run, plan *protection.Plan) []step { return r.changePointSteps(plan) },
	onFailoverDisks: true,
}
