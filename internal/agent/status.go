package agent

import (
	"sync"
	"time"
)

// ReportVersion is the version of the status report format (docs/agent.md).
const ReportVersion = 1

// Report is the agent's status: what `haven agent status` prints and what
// the orchestrator server will receive from agents.
type Report struct {
	Version  int             `json:"version"`
	Host     string          `json:"host"`
	Vault    string          `json:"vault"`
	Started  time.Time       `json:"started"`
	Time     time.Time       `json:"time"` // when the report was made
	Machines []MachineStatus `json:"machines"`
}

// MachineStatus is one protected machine's replication state.
type MachineStatus struct {
	Name      string        `json:"name"`
	Group     string        `json:"group"`
	Provider  string        `json:"provider"`
	LastPoint *PointSummary `json:"last_point,omitempty"`
	// RPOSeconds is now minus the capture time of the newest committed
	// point: the data a disaster now would lose. Without any point it
	// counts from the agent's start.
	RPOSeconds float64 `json:"rpo_seconds"`
	// RPOUnknown: the agent has not been able to learn the newest point
	// from the vault since it started, nor committed one. RPOSeconds then
	// counts from the agent's start, a lower bound only, and RPOAlert is
	// set: an RPO that cannot be known must not look healthy.
	RPOUnknown      bool        `json:"rpo_unknown,omitempty"`
	RPOAlertSeconds float64     `json:"rpo_alert_seconds"`
	RPOAlert        bool        `json:"rpo_alert"`
	ChurnBPS        float64     `json:"churn_bytes_per_second"` // new data per second, last cycle
	UploadedBytes   int64       `json:"uploaded_bytes"`         // stored bytes since start
	Points          int64       `json:"points"`                 // points taken since start
	Failures        int64       `json:"failures"`               // failed cycles since start
	LastCycle       *CycleStats `json:"last_cycle,omitempty"`
	LastError       string      `json:"last_error,omitempty"`
	LastErrorTime   *time.Time  `json:"last_error_time,omitempty"`
	// Paused: replication is paused by a control-API stop (no points are
	// taken until start), so a growing RPO is expected.
	Paused bool `json:"paused,omitempty"`
}

// PointSummary describes a committed recovery point.
type PointSummary struct {
	ID          string    `json:"id"`
	Time        time.Time `json:"time"`
	Consistency string    `json:"consistency"`
	Provider    string    `json:"provider"`
}

// CycleStats describes the last successful replication cycle of a machine.
type CycleStats struct {
	Start           time.Time `json:"start"`
	Seconds         float64   `json:"seconds"`
	CaptureSeconds  float64   `json:"capture_seconds"`  // hooks, freeze, clones (before the snapshot)
	TrackingSeconds float64   `json:"tracking_seconds"` // extent maps compared
	DiskBytes       int64     `json:"disk_bytes"`       // logical size of the disks
	KnownChunks     int64     `json:"known_chunks"`     // unchanged per change tracking, not read
	NewBytes        int64     `json:"new_bytes"`        // plaintext of chunks new to the vault
	StoredBytes     int64     `json:"stored_bytes"`     // bytes uploaded
	Incremental     bool      `json:"incremental"`      // change tracking was used
	ReadBytes       int64     `json:"read_bytes"`       // read from a QEMU VM's disks (provider qemu)
}

// statusBoard holds every machine's status behind one lock.
type statusBoard struct {
	mu       sync.Mutex
	host     string
	vault    string
	started  time.Time
	machines []*MachineStatus
}

func (b *statusBoard) update(i int, f func(*MachineStatus)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(b.machines[i])
}

// report copies the statuses and computes the RPOs at now.
func (b *statusBoard) report(now time.Time) *Report {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := &Report{Version: ReportVersion, Host: b.host, Vault: b.vault, Started: b.started, Time: now.UTC()}
	for _, m := range b.machines {
		s := *m
		since := b.started
		if s.LastPoint != nil {
			since = s.LastPoint.Time
		}
		s.RPOSeconds = now.Sub(since).Seconds()
		s.RPOAlert = s.RPOUnknown || s.RPOSeconds > s.RPOAlertSeconds
		r.Machines = append(r.Machines, s)
	}
	return r
}
