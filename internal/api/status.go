package api

import "time"

// Status answers GET /v1/status: what `haven status` prints.
type Status struct {
	Time     time.Time       `json:"time"`
	Config   int64           `json:"config_version"`
	Machines []MachineStatus `json:"machines"`
	Agents   []AgentStatus   `json:"agents"`
	Plans    []*PlanState    `json:"plans"`
	Jobs     []*Job          `json:"active_jobs"`
	// Alerts are the summaries of AlertDetails, for a person.
	Alerts       []string `json:"alerts"`
	AlertDetails []Alert  `json:"alert_details"`
	// Copies are the second vaults the server keeps current.
	Copies []CopyStatus `json:"copies,omitempty"`
	// DNSServers: each traffic manager server as the server's traffic
	// loop last saw it; absent without a traffic section or before the
	// first look.
	DNSServers []DNSServerStatus `json:"dns_servers,omitempty"`
}

// CopyStatus is one second vault: how far behind the vault it is and how
// its last runs went.
type CopyStatus struct {
	Name        string     `json:"name"`
	Vault       string     `json:"vault"`
	LastRun     *time.Time `json:"last_run,omitempty"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	// LagSeconds: the capture time of the vault's newest point minus the
	// copy's, the largest over machines; while runs fail, at least the
	// last measured lag plus the time since. Absent before a run worked.
	LagSeconds *float64 `json:"lag_seconds,omitempty"`
	Error      string   `json:"error,omitempty"`
	// Kept: points the copy holds that the vault no longer lists.
	Kept int `json:"kept"`
	// Problems: damaged or missing objects in the vault, not copied.
	Problems []string `json:"problems,omitempty"`
}

// DNSServerStatus is one `haven dns` server of the traffic section.
type DNSServerStatus struct {
	Name      string `json:"name"`
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	// Generation of the newest endpoint change it holds.
	Generation uint64 `json:"generation"`
	// Pushed: changes it lacked, re-pushed at this look.
	Pushed  int         `json:"pushed,omitempty"`
	Checked time.Time   `json:"checked"`
	Answers []DNSAnswer `json:"answers"`
}

// DNSAnswer is what a server answers over DNS for a profile's name.
type DNSAnswer struct {
	Profile string   `json:"profile"`
	Answers []string `json:"answers,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// MachineStatus is a protected machine as the server sees it: the newest
// point comes from the vault (the source of truth), replication health
// from its agent's last report.
type MachineStatus struct {
	Name        string     `json:"name"`
	Agent       string     `json:"agent,omitempty"`
	LastPoint   string     `json:"last_point,omitempty"`
	PointTime   *time.Time `json:"point_time,omitempty"`
	Consistency string     `json:"consistency,omitempty"`
	// RPOSeconds: now minus the newest point's capture instant; absent
	// when the vault has no point (RPO unknown is an alert).
	RPOSeconds      *float64 `json:"rpo_seconds,omitempty"`
	RPOAlertSeconds float64  `json:"rpo_alert_seconds,omitempty"`
	Points          int      `json:"points"`
	Standby         string   `json:"standby_point,omitempty"`
	LastError       string   `json:"last_error,omitempty"`
	// Preserved: points that keep an old primary's disks from before a
	// failback restored them; retention keeps them until an operator
	// releases them (haven point release). Not counted as the last point.
	Preserved []string `json:"preserved_points,omitempty"`
	// LastClean: the point kept as clean by the machine's oldest open
	// encryption alert (--point last-clean); Encryption: its alerts,
	// open and closed, oldest first.
	LastClean  string            `json:"last_clean_point,omitempty"`
	Encryption []EncryptionAlert `json:"encryption_alerts,omitempty"`
	// Recovered: the machine's copies a failover or test failover runs at
	// the recovery site, as their hosts report them.
	Recovered []RecoveredMachine `json:"recovered,omitempty"`
}

// RecoveredMachine is a copy of a protected machine that a failover (site
// rec) or test failover (site test) started on a recovery host.
type RecoveredMachine struct {
	Plan    string `json:"plan"`
	Site    string `json:"site"`
	Job     string `json:"job"`
	Host    string `json:"host"`
	Running bool   `json:"running"`
	// Memory: absent when the host could not tell (Error says why).
	Memory *MemoryStatus `json:"memory,omitempty"`
	Error  string        `json:"error,omitempty"`
}

// MemoryStatus is what a recovered machine's memory limit did. Source
// "cgroup" (ns machines): the kernel's counts for the machine's cgroup;
// "vm" (qemu, libvirt): LimitMB is the VM's size, and an OOM inside the
// guest is not seen from the host (the counts stay 0).
type MemoryStatus struct {
	Source   string `json:"source,omitempty"`
	LimitMB  int    `json:"limit_mb"`
	UsageMB  int    `json:"usage_mb,omitempty"`
	AtLimit  uint64 `json:"at_limit"`
	OOMKills uint64 `json:"oom_kills"`
}

// EncryptionAlert is a jump in a machine's incompressible overwrites
// (mass encryption suspected): the points from FirstSuspect on are
// suspect, LastClean is kept by prune while the alert is open.
type EncryptionAlert struct {
	Machine      string     `json:"machine"`
	Disk         string     `json:"disk"`
	FirstSuspect string     `json:"first_suspect"`
	Trigger      string     `json:"trigger,omitempty"`
	SuspectTime  time.Time  `json:"suspect_time"`
	LastClean    string     `json:"last_clean,omitempty"`
	Detected     time.Time  `json:"detected"`
	Reason       string     `json:"reason"`
	Open         bool       `json:"open"`
	Closed       *time.Time `json:"closed,omitempty"`
	Note         string     `json:"note,omitempty"`
	Suspect      int        `json:"suspect_points"`
}

// CloseAlert is the body of an encryption alert's close.
type CloseAlert struct {
	Note string `json:"note,omitempty"`
}

// AgentStatus is an agent's health.
type AgentStatus struct {
	Name          string     `json:"name"`
	LastHeartbeat *time.Time `json:"last_heartbeat,omitempty"`
	Healthy       bool       `json:"healthy"`
}

// Alert is an open (or, in deliveries, resolved) alert.
type Alert struct {
	// ID is stable while the condition lasts ("rpo/db").
	ID       string     `json:"id"`
	Severity string     `json:"severity"` // critical or warning
	Summary  string     `json:"summary"`
	Since    time.Time  `json:"since"`
	Resolved *time.Time `json:"resolved,omitempty"`
}

// PointView is one recovery point of a machine, for the console's
// timeline: when, how consistent, and what the agent noted.
type PointView struct {
	ID          string            `json:"id"`
	Time        time.Time         `json:"time"`
	Consistency string            `json:"consistency"`
	Provider    string            `json:"provider,omitempty"`
	Group       string            `json:"group,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	// Suspect: captured while an encryption alert of the machine was
	// open; LastClean: the point such an alert keeps as clean.
	Suspect   bool `json:"suspect,omitempty"`
	LastClean bool `json:"last_clean,omitempty"`
}

// TrafficProfile is a traffic manager profile that a plan's DNS cut-over
// changes, with each endpoint's live state as `haven dns` reports it.
type TrafficProfile struct {
	Name      string            `json:"name"`
	Routing   string            `json:"routing"`
	State     string            `json:"state"`
	Endpoints []TrafficEndpoint `json:"endpoints"`
	// Error: the traffic manager could not be asked about this profile.
	Error string `json:"error,omitempty"`
}

// TrafficEndpoint is one endpoint of a profile.
type TrafficEndpoint struct {
	Name      string `json:"name"`
	Target    string `json:"target,omitempty"`
	Enabled   bool   `json:"enabled"`
	Priority  int    `json:"priority"`
	State     string `json:"state"`
	LastError string `json:"last_error,omitempty"`
}

// SessionInfo answers GET /ui/session: what the console's script needs.
type SessionInfo struct {
	Role string `json:"role"`
	CSRF string `json:"csrf"`
}
