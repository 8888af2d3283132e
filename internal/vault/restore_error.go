package vault

import "fmt"

// States a failed restore leaves its target in (RestoreError.State).
const (
	TargetUntouched  = "untouched"   // an existing target was not changed at all
	TargetNotCreated = "not-created" // a new target was never created; no temporary file is left
	TargetPartial    = "partial"     // an existing target was partly written: neither old nor restored
)

// RestoreError is how Restore fails once it has opened its target: it says
// exactly what state the target is in. From every state, running the same
// restore again completes it: a rerun compares again and writes only what
// still differs.
type RestoreError struct {
	Target    string
	State     string // TargetUntouched, TargetNotCreated or TargetPartial
	Written   int64  // chunks written before the failure (TargetPartial)
	Differing int64  // chunks the target needed
	Err       error
}

func (e *RestoreError) Error() string {
	switch e.State {
	case TargetPartial:
		return fmt.Sprintf("%v; target %s is PARTIALLY WRITTEN (%d of %d differing chunks): it matches neither its "+
			"old content nor the point; run the same restore again to complete it", e.Err, e.Target, e.Written, e.Differing)
	case TargetNotCreated:
		return fmt.Sprintf("%v; target %s was not created", e.Err, e.Target)
	}
	return fmt.Sprintf("%v; target %s is untouched", e.Err, e.Target)
}

func (e *RestoreError) Unwrap() error { return e.Err }
