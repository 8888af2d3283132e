package api

import "time"

// Report is what a job did, measured from its records: points used and
// their age, data-loss window, RTO, bytes restored, each step's time.
type Report struct {
	Job     string        `json:"job"`
	Plan    string        `json:"plan"`
	Type    string        `json:"type"`
	State   string        `json:"state"`
	Started time.Time     `json:"started"`
	Ended   *time.Time    `json:"ended,omitempty"`
	Points  []PointReport `json:"points,omitempty"`
	// PointChoice and PointNotes: the rule the points were chosen by and,
	// per consistency group, the capture instant its members share.
	PointChoice string            `json:"point_choice,omitempty"`
	PointNotes  []string          `json:"point_notes,omitempty"`
	Disaster    *time.Time        `json:"disaster,omitempty"`
	Machines    []MachineRep      `json:"machines,omitempty"`
	Disks       []DiskReport      `json:"disks,omitempty"`
	Failback    []FailbackDisk    `json:"failback,omitempty"`
	Preserved   map[string]string `json:"preserved_points,omitempty"`
	DNSSeconds  *float64          `json:"dns_seconds,omitempty"`
	RTOSeconds  *float64          `json:"rto_seconds,omitempty"`
	Steps       []StepReport      `json:"steps"`
	Warnings    []string          `json:"warnings,omitempty"`
	Error       string            `json:"error,omitempty"`
}

// PointReport is the point one machine got.
type PointReport struct {
	Machine         string    `json:"machine"`
	Point           string    `json:"point"`
	Time            time.Time `json:"time"`
	Consistency     string    `json:"consistency"`
	Group           string    `json:"group,omitempty"` // consistency group the agent captured it with
	AgeSeconds      float64   `json:"age_seconds"`     // at job start
	DataLossSeconds *float64  `json:"data_loss_seconds,omitempty"`
	// Final: a point taken after the machine was stopped (planned, or
	// fenced by an unplanned failover); else the newest point there was.
	Final bool `json:"final,omitempty"`
}

// MachineRep is when a machine came up.
type MachineRep struct {
	Machine        string   `json:"machine"`
	Address        string   `json:"address"`
	HealthySeconds *float64 `json:"healthy_seconds,omitempty"`
}

// DiskReport is how a disk was prepared.
type DiskReport struct {
	Machine      string  `json:"machine"`
	Disk         string  `json:"disk"`
	Method       string  `json:"method"`
	Size         int64   `json:"size"`
	BytesWritten int64   `json:"bytes_written"`
	BytesFetched int64   `json:"bytes_fetched"`
	Seconds      float64 `json:"seconds"`
}

// FailbackDisk is what failback wrote onto one of the primary's disks.
type FailbackDisk struct {
	Machine      string `json:"machine"`
	Disk         string `json:"disk"`
	Size         int64  `json:"size"`
	BytesWritten int64  `json:"bytes_written"`
	Differed     int64  `json:"preserved_bytes_differing,omitempty"`
}

// StepReport is one step's outcome and time.
type StepReport struct {
	Name    string  `json:"name"`
	State   string  `json:"state"`
	Seconds float64 `json:"seconds"`
	Tries   int     `json:"tries,omitempty"`
	Error   string  `json:"error,omitempty"`
}
