// Package api holds the wire types of `haven server`'s HTTP API: what a
// request carries and an answer holds, as JSON. The server converts its
// store and orchestrator types into these; the typed client
// (internal/server/client) and the OpenAPI test use them. The package
// imports only the standard library, so a client of the API does not pull
// in the server's storage, networking or vault code.
package api

import (
	"encoding/json"
	"time"
)

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"` // see the Code* constants
}

// Error codes, one per HTTP status the API answers with an error.
const (
	CodeInvalid      = "invalid"      // 400
	CodeUnauthorized = "unauthorized" // 401
	CodeForbidden    = "forbidden"    // 403
	CodeNotFound     = "not_found"    // 404
	CodeConflict     = "conflict"     // 409
	CodePrecondition = "precondition" // 412
	CodeTooLarge     = "too_large"    // 413
	// CodeUnavailable: no server leads right now (the lease is changing
	// hands); nothing was written, and the answer carries Retry-After.
	CodeUnavailable = "unavailable" // 503
)

// ApplyResult answers POST /v1/apply.
type ApplyResult struct {
	Version  int64 `json:"version"`
	Machines int   `json:"machines"`
	Plans    int   `json:"plans"`
	// Placement: machine -> the recovery host it is placed on.
	Placement map[string]string `json:"placement,omitempty"`
	// Warnings: N+1 (one per host whose loss leaves machines nowhere).
	Warnings []string `json:"warnings,omitempty"`
}

// ConfigResult answers GET /v1/config. Config is the applied protection
// document as JSON (schema ProtectionConfig in openapi.yaml); a Go caller
// decodes it into protection.Config when it needs more than the JSON.
type ConfigResult struct {
	Version int64           `json:"version"`
	Config  json.RawMessage `json:"config"`
}

// SubmitRequest is the body of POST /v1/plans/{plan}/jobs.
type SubmitRequest struct {
	Type   string `json:"type"`
	Params Params `json:"params"`
}

// Params are a job's parameters; each job type reads those it needs.
type Params struct {
	// Point: latest, latest-app, latest-consistent, an RFC 3339 time
	// (newest at or before it) or a point ID.
	Point     string `json:"point,omitempty"`
	NoStandby bool   `json:"no_standby,omitempty"`
	// Force: unplanned failover without fencing a primary that answers.
	Force bool `json:"force,omitempty"`
	// DisasterTime overrides the agent's last heartbeat as the moment of
	// the disaster in the data-loss report.
	DisasterTime *time.Time `json:"disaster_time,omitempty"`
	Note         string     `json:"note,omitempty"`
	// Drill is the schedule instant of a drill the server started by
	// itself (set by the server, not by a client).
	Drill *time.Time `json:"drill,omitempty"`
}

// Job states, as a job's State reads.
const (
	JobRunning   = "running"
	JobWaiting   = "waiting" // a manual step waits for approve
	JobFailed    = "failed"  // stopped at a failed step: retry or cancel
	JobSucceeded = "succeeded"
	JobCanceling = "canceling"
	JobCanceled  = "canceled"
)

// Job is one operation on a plan.
type Job struct {
	ID      string          `json:"id"`
	Plan    string          `json:"plan"`
	Type    string          `json:"type"`
	State   string          `json:"state"`
	Params  json.RawMessage `json:"params,omitempty"`
	Steps   []Step          `json:"steps"`
	Outputs json.RawMessage `json:"outputs,omitempty"`
	Report  json.RawMessage `json:"report,omitempty"`
	Error   string          `json:"error,omitempty"`
	Created time.Time       `json:"created"`
	Updated time.Time       `json:"updated"`
	Ended   *time.Time      `json:"ended,omitempty"`
}

// Step is one step of a job.
type Step struct {
	Name    string     `json:"name"`
	State   string     `json:"state"`
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
	Plan     string          `json:"plan"`
	Phase    string          `json:"phase"`
	Test     string          `json:"test,omitempty"`
	Failover string          `json:"failover,omitempty"`
	Data     json.RawMessage `json:"data,omitempty"`
	Updated  time.Time       `json:"updated"`
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
	// Scheduled: the schedule instant of a drill the server ran by
	// itself. Skipped: why a scheduled drill did not run; Missed: it was
	// not started in time.
	Scheduled *time.Time `json:"scheduled,omitempty"`
	Skipped   string     `json:"skipped,omitempty"`
	Missed    bool       `json:"missed,omitempty"`
	// PointAges: each machine's point age at the drill's start, seconds.
	PointAges map[string]float64 `json:"point_ages,omitempty"`
}

// AuditEntry is one state-changing request. Who is a role, a session id
// prefix or an agent name, never a token.
type AuditEntry struct {
	Time   time.Time `json:"time"`
	Who    string    `json:"who"`
	Remote string    `json:"remote"`
	Action string    `json:"action"`
	Target string    `json:"target,omitempty"`
	Status int       `json:"status"`
}
