package store

import "time"

// DrillSchedule is where a plan's scheduled drills are: the newest
// schedule instant handled (run, skipped or missed) and the drill in
// flight. The server that holds the leader lease advances it, each step
// a compare-and-set, so two servers never both start one instant's drill.
type DrillSchedule struct {
	Plan string `json:"plan"`
	// Last is the newest schedule instant handled; zero before the first
	// look at the plan's schedule (which starts counting then).
	Last time.Time `json:"last"`
	// Run is the drill in flight, nil when none.
	Run *DrillRun `json:"run,omitempty"`
	// Version is as for PlanState (compare-and-set).
	Version int64 `json:"-"`
}

// DrillRun is a scheduled drill in flight: its test failover, when that
// ended, and its cleanup.
type DrillRun struct {
	Slot       time.Time  `json:"slot"`
	TestJob    string     `json:"test_job"`
	TestEnded  *time.Time `json:"test_ended,omitempty"`
	CleanupJob string     `json:"cleanup_job,omitempty"`
}

// PointRecord is a recovery point the server saw in the vault: the
// history a report measures RPO from, kept after retention prunes the
// point itself.
type PointRecord struct {
	Machine     string    `json:"machine"`
	Point       string    `json:"point"`
	Captured    time.Time `json:"captured"`
	Seen        time.Time `json:"seen"`
	Consistency string    `json:"consistency,omitempty"`
	// TargetSeconds is the machine's RPO target (its agent's rpo_alert)
	// when the point was seen; 0: unknown.
	TargetSeconds float64 `json:"target_seconds,omitempty"`
}
