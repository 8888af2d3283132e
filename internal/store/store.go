// Package store is the server's state: the applied protection config, jobs
// with their steps, logs and created resources, each plan's state, agents'
// heartbeats and the drill history. One small interface; SQLite (pure Go,
// no cgo) is the embedded implementation, and the interface is kept narrow
// enough for PostgreSQL. Every method takes ctx first.
//
// # Compare-and-set
//
// A Job and a PlanState carry the Version they were read at. SaveJob and
// PutPlanState write only if the stored version is still that one, then
// set the caller's Version to the new one, so one struct saved again and
// again keeps working; a copy read before someone else's save fails with
// ErrStale and changes nothing (reload, re-apply the change, save again).
// CreateJob sets Version 1. A plan state never stored reads as phase
// protected at Version 0, and PutPlanState at Version 0 means "create":
// it fails with ErrStale if the state exists by then. The version lives
// in its own column, not in the JSON (json:"-"): it is the store's, not
// the API's, and a plan state recovered from the vault's catalog is
// created, not compared.
//
// # Transactions
//
// InTx runs fn in one database transaction: a check and the write it
// guards (the plan's phase and the job that changes it) commit together
// or not at all. fn must
//   - use only the Tx it is given. The SQLite store has one connection,
//     held by the transaction until it ends: a call on the Store from
//     inside fn waits for it forever. On PostgreSQL such a call runs
//     outside the transaction, blind to its writes, and waits forever
//     for a row the transaction has written.
//   - have no effect other than through tx, and return tx's errors
//     (wrapped with %w or unchanged): the PostgreSQL store runs fn again
//     when the database reports a serialization failure or a deadlock,
//     up to a bound, then fails with ErrStale.
//
// When fn returns an error the transaction is rolled back and InTx
// returns that error unchanged (errors.Is and errors.As work on it). On a
// rollback, the Versions that tx set on the caller's structs are put
// back, so a struct can be saved again after a failed transaction.
// SQLite begins IMMEDIATE (the write lock is taken first, so no
// transaction fails on upgrading a read lock); PostgreSQL runs
// SERIALIZABLE. A fenced PostgreSQL store (Fenced) checks the leader's
// epoch once at the start of the transaction and holds a share lock on
// the leader row until it ends, as it does for every single write.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors.
var (
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: another active job holds the plan.
	ErrConflict = errors.New("store: conflict")
	// ErrStale: a compare-and-set write found the record changed since
	// the caller read it (or already created).
	ErrStale = errors.New("store: changed by another writer since it was read")
)

func staleError(what string, want, got int64) error {
	return fmt.Errorf("%w: %s: expected version %d, stored version %d", ErrStale, what, want, got)
}

// versions remembers the Versions a transaction set on its caller's
// structs, so a rollback can put them back.
type versions []func()

func (v *versions) set(p *int64, n int64) {
	old := *p
	*p = n
	*v = append(*v, func() { *p = old })
}

// restore puts back the versions newest first (a struct saved twice
// returns to what it had before the first save).
func (v versions) restore() {
	for i := len(v) - 1; i >= 0; i-- {
		v[i]()
	}
}

// ConflictError names the job that holds the plan.
type ConflictError struct {
	Plan  string
	JobID string
	Type  string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("plan %s is busy: job %s (%s) is still active; wait for it, or cancel it", e.Plan, e.JobID, e.Type)
}

func (e *ConflictError) Unwrap() error { return ErrConflict }

// JobState is where a job is in its life.
type JobState string

// Job states.
const (
	Running   JobState = "running"
	Waiting   JobState = "waiting" // a manual step waits for approve
	Failed    JobState = "failed"  // stopped at a failed step: retry or cancel
	Succeeded JobState = "succeeded"
	Canceling JobState = "canceling"
	Canceled  JobState = "canceled"
)

// Active reports whether a job in state s still holds its plan.
func Active(s JobState) bool { return s == Running || s == Waiting || s == Failed || s == Canceling }

// StepState is where one step of a job is.
type StepState string

// Step states.
const (
	StepPending StepState = "pending"
	StepRunning StepState = "running"
	StepDone    StepState = "done"
	StepFailed  StepState = "failed"
	StepSkipped StepState = "skipped"
)

// JobType names a kind of job (the orchestrator's registry gives the
// values); it is stored with the job, so a value never changes.
type JobType string

// Phase is where a plan's machines run (the orchestrator's values).
type Phase string

// Job is one operation on a plan, persisted step by step.
type Job struct {
	ID      string          `json:"id"`
	Plan    string          `json:"plan"`
	Type    JobType         `json:"type"`
	State   JobState        `json:"state"`
	Params  json.RawMessage `json:"params,omitempty"`
	Config  json.RawMessage `json:"-"` // the protection config the job runs against
	Steps   []Step          `json:"steps"`
	Outputs json.RawMessage `json:"outputs,omitempty"` // what steps recorded (points, paths, timings)
	Report  json.RawMessage `json:"report,omitempty"`
	Error   string          `json:"error,omitempty"`
	Created time.Time       `json:"created"`
	Updated time.Time       `json:"updated"`
	Ended   *time.Time      `json:"ended,omitempty"`
	// Version is the stored version this copy was read at (see the
	// package doc: compare-and-set).
	Version int64 `json:"-"`
}

// Step is one reconcile step of a job.
type Step struct {
	Name    string     `json:"name"`
	State   StepState  `json:"state"`
	Started *time.Time `json:"started,omitempty"`
	Ended   *time.Time `json:"ended,omitempty"`
	Error   string     `json:"error,omitempty"`
	Tries   int        `json:"tries,omitempty"`
}

// LogLine is one line of a job's log.
type LogLine struct {
	Seq   int64     `json:"seq"`
	Time  time.Time `json:"time"`
	Level string    `json:"level"`
	Msg   string    `json:"msg"`
}

// PlanState is where a plan's machines run now and what is in flight.
type PlanState struct {
	Plan string `json:"plan"`
	// Phase: protected (primary runs, replicated), failed-over (the
	// recovery site runs, not committed), committed, reprotected
	// (recovery runs and is replicated back).
	Phase Phase `json:"phase"`
	// Test is the ID of the test failover whose copy is up (cleanup
	// removes it), or "".
	Test string `json:"test,omitempty"`
	// Failover is the job whose machines serve at the recovery site.
	Failover string          `json:"failover,omitempty"`
	Data     json.RawMessage `json:"data,omitempty"`
	Updated  time.Time       `json:"updated"`
	// Version is the stored version this copy was read at; 0 for a plan
	// state never stored (see the package doc: compare-and-set).
	Version int64 `json:"-"`
}

// Heartbeat is the last report of an agent.
type Heartbeat struct {
	Agent  string          `json:"agent"`
	Time   time.Time       `json:"time"`
	Report json.RawMessage `json:"report"`
}

// Drill is one test failover's record.
type Drill struct {
	JobID      string    `json:"job_id"`
	Plan       string    `json:"plan"`
	Started    time.Time `json:"started"`
	CleanedUp  time.Time `json:"cleaned_up"`
	Passed     bool      `json:"passed"`
	RTOSeconds float64   `json:"rto_seconds"`
	Note       string    `json:"note,omitempty"`
	Error      string    `json:"error,omitempty"`
	// Scheduled is the schedule instant of a drill the server ran by
	// itself (drill_schedules); nil for one an operator ran.
	Scheduled *time.Time `json:"scheduled,omitempty"`
	// Skipped says why a scheduled drill did not run (JobID is then
	// "scheduled:<plan>:<instant>"); Missed marks one the server did not
	// start in time (it was down, or the previous drill still ran).
	Skipped string `json:"skipped,omitempty"`
	Missed  bool   `json:"missed,omitempty"`
	// PointAges is each machine's point age at the drill's start: the
	// RPO a real failover then would have had.
	PointAges map[string]float64 `json:"point_ages,omitempty"`
}

// JobFilter selects jobs; zero values select all.
type JobFilter struct {
	Plan   string
	Active bool
	Limit  int
}

// Tx is what a transaction (InTx) can read and write: the same methods,
// with the same semantics, as the Store's. The Store is a Tx too, each
// call its own transaction.
type Tx interface {
	// Config returns the newest config (ErrNotFound before the first).
	Config(ctx context.Context) (int64, []byte, error)
	// PutConfig stores a new protection config and returns its version.
	PutConfig(ctx context.Context, doc []byte) (int64, error)

	// CreateJob fails with a *ConflictError while another active job
	// holds the same plan; it sets j.Version to 1.
	CreateJob(ctx context.Context, j *Job) error
	// SaveJob writes j if the stored job is still at j.Version and sets
	// j.Version to the new version; ErrStale if it is not, ErrNotFound
	// if there is no such job.
	SaveJob(ctx context.Context, j *Job) error
	Job(ctx context.Context, id string) (*Job, error)
	Jobs(ctx context.Context, f JobFilter) ([]*Job, error)
	AppendLog(ctx context.Context, jobID string, l LogLine) error

	// PlanState returns the plan's state, phase protected at Version 0
	// if none was stored.
	PlanState(ctx context.Context, plan string) (*PlanState, error)
	// PutPlanState writes s if the stored state is still at s.Version
	// (0: there is none yet) and sets s.Version to the new version;
	// ErrStale otherwise.
	PutPlanState(ctx context.Context, s *PlanState) error

	// DrillSchedule returns where the plan's scheduled drills are, an
	// empty one at Version 0 if none was stored (history.go).
	DrillSchedule(ctx context.Context, plan string) (*DrillSchedule, error)
	// PutDrillSchedule is compare-and-set like PutPlanState.
	PutDrillSchedule(ctx context.Context, s *DrillSchedule) error
	// AddDrill records a drill; a drill recorded again (same JobID)
	// replaces the first record in place.
	AddDrill(ctx context.Context, d Drill) error

	// Placements returns which recovery host each machine is placed on,
	// empty at Version 0 if none was stored (placements.go).
	Placements(ctx context.Context) (*Placements, error)
	// PutPlacements is compare-and-set like PutPlanState.
	PutPlacements(ctx context.Context, p *Placements) error
}

// Store is the server's state.
type Store interface {
	Tx
	// InTx runs fn in one transaction, committed if fn returns nil,
	// rolled back otherwise (fn's error is returned unchanged). fn must
	// use only tx and have no other effect: it may run more than once
	// (package doc).
	InTx(ctx context.Context, fn func(tx Tx) error) error

	Logs(ctx context.Context, jobID string, afterSeq int64) ([]LogLine, error)

	PutHeartbeat(ctx context.Context, h Heartbeat) error
	Heartbeats(ctx context.Context) ([]Heartbeat, error)

	Drills(ctx context.Context, plan string) ([]Drill, error)

	// AddPoints records recovery points seen in the vault; a point
	// already recorded keeps its first record (history.go).
	AddPoints(ctx context.Context, ps []PointRecord) error
	// PointHistory is machine's recorded points captured in [from, to)
	// and the newest one captured before from, oldest first.
	PointHistory(ctx context.Context, machine string, from, to time.Time) ([]PointRecord, error)

	// AppendAudit records a state-changing request (audit.go).
	AppendAudit(ctx context.Context, e AuditEntry) error
	// Audit is the newest limit entries, newest first; limit <= 0 is all.
	Audit(ctx context.Context, limit int) ([]AuditEntry, error)

	Close() error
}
