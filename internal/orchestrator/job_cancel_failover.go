package orchestrator

import (
	"github.com/haven-dr/haven/internal/protection"
)

// A cancel of a failover undoes it before commit: recovery machines, disks,
// networks and DNS changes go; primaries it stopped start again.
var cancelFailoverKind = &kind{
	noReturn:     "undo the failover",
	precondition: failedOver,
	steps:        func(r *run, _ *protection.Plan) []step { return r.cancelFailoverSteps() },
}
