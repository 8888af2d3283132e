// Package store is the server's state: the applied protection config, jobs
// with their steps, logs and created resources, each plan's state, agents'
// heartbeats and the drill history. One small interface; SQLite (pure Go,
// no cgo) is the embedded implementation, and the interface is kept narrow
// enough for PostgreSQL. Every method takes ctx first.
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
)

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

// Job is one operation on a plan, persisted step by step.
type Job struct {
	ID      string          `json:"id"`
	Plan    string          `json:"plan"`
	Type    string          `json:"type"`
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
	Phase string `json:"phase"`
	// Test is the ID of the test failover whose copy is up (cleanup
	// removes it), or "".
	Test string `json:"test,omitempty"`
	// Failover is the job whose machines serve at the recovery site.
	Failover string          `json:"failover,omitempty"`
	Data     json.RawMessage `json:"data,omitempty"`
	Updated  time.Time       `json:"updated"`
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
}

// JobFilter selects jobs; zero values select all.
type JobFilter struct {
	Plan   string
	Active bool
	Limit  int
}

// Store is the server's state.
type Store interface {
	// PutConfig stores a new protection config atomically and returns
	// its version.
	PutConfig(ctx context.Context, doc []byte) (int64, error)
	// Config returns the newest config (ErrNotFound before the first).
	Config(ctx context.Context) (int64, []byte, error)

	// CreateJob fails with a *ConflictError while another active job
	// holds the same plan.
	CreateJob(ctx context.Context, j *Job) error
	SaveJob(ctx context.Context, j *Job) error
	Job(ctx context.Context, id string) (*Job, error)
	Jobs(ctx context.Context, f JobFilter) ([]*Job, error)
	AppendLog(ctx context.Context, jobID string, l LogLine) error
	Logs(ctx context.Context, jobID string, afterSeq int64) ([]LogLine, error)

	PlanState(ctx context.Context, plan string) (*PlanState, error)
	PutPlanState(ctx context.Context, s *PlanState) error

	PutHeartbeat(ctx context.Context, h Heartbeat) error
	Heartbeats(ctx context.Context) ([]Heartbeat, error)

	AddDrill(ctx context.Context, d Drill) error
	Drills(ctx context.Context, plan string) ([]Drill, error)

	// AppendAudit records a state-changing request (audit.go).
	AppendAudit(ctx context.Context, e AuditEntry) error
	// Audit is the newest limit entries, newest first; limit <= 0 is all.
	Audit(ctx context.Context, limit int) ([]AuditEntry, error)

	Close() error
}
