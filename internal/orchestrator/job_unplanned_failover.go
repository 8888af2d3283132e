package orchestrator

import (
	"github.com/haven-dr/haven/internal/protection"
)

// An unplanned failover brings the plan up from the chosen points while the
// primary is down; a primary whose agent still answers is fenced first.
var unplannedFailoverKind = &kind{
	takes:        takesPoint | takesNoStandby | takesForce | takesDisasterTime,
	precondition: atPrimary,
	steps:        func(r *run, plan *protection.Plan) []step { return r.failoverSteps(plan, "unplanned", SiteRecovery) },
}
