package orchestrator

import (
	"encoding/json"
	"sort"
	"time"

	"github.com/haven-dr/haven/internal/store"
)

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
	// DNSSeconds: job start to the DNS server answering the new site.
	DNSSeconds *float64 `json:"dns_seconds,omitempty"`
	// RTOSeconds: job start to every machine healthy and, with a DNS
	// cut-over, DNS answering the new site.
	RTOSeconds *float64     `json:"rto_seconds,omitempty"`
	Steps      []StepReport `json:"steps"`
	Warnings   []string     `json:"warnings,omitempty"`
	Error      string       `json:"error,omitempty"`
}

// PointReport is the point one machine got.
type PointReport struct {
	Machine     string    `json:"machine"`
	Point       string    `json:"point"`
	Time        time.Time `json:"time"`
	Consistency string    `json:"consistency"`
	Group       string    `json:"group,omitempty"` // consistency group the agent captured it with
	AgeSeconds  float64   `json:"age_seconds"`     // at job start
	// DataLossSeconds: disaster moment minus the point's capture instant
	// (unplanned failover); 0 for a planned one (final point after stop).
	DataLossSeconds *float64 `json:"data_loss_seconds,omitempty"`
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

// StepReport is one step's outcome and time.
type StepReport struct {
	Name    string  `json:"name"`
	State   string  `json:"state"`
	Seconds float64 `json:"seconds"`
	Tries   int     `json:"tries,omitempty"`
	Error   string  `json:"error,omitempty"`
}

func secs(d time.Duration) *float64 {
	s := d.Seconds()
	return &s
}

// BuildReport makes a job's report from its records.
func BuildReport(j *store.Job) (*Report, error) {
	var out Outputs
	if len(j.Outputs) > 0 {
		if err := json.Unmarshal(j.Outputs, &out); err != nil {
			return nil, err
		}
	}
	return buildReport(j, &out), nil
}

// dataLoss is the window of writes machine m lost: none for a point taken
// after the machine stopped, else from the point to m's own disaster time.
func dataLoss(typ JobType, out *Outputs, m string, p PointUse) *float64 {
	switch {
	case p.Final || typ == PlannedFailover || typ == Failback:
		return secs(0)
	case typ != UnplannedFailover:
		return nil
	}
	if t, ok := out.Disasters[m]; ok {
		return secs(max(t.Sub(p.Time), 0))
	}
	if out.Disaster != nil {
		return secs(max(out.Disaster.Sub(p.Time), 0))
	}
	return nil
}

func buildReport(j *store.Job, out *Outputs) *Report {
	rep := &Report{Job: j.ID, Plan: j.Plan, Type: string(j.Type), State: string(j.State), Started: out.Started, Ended: j.Ended,
		Disaster: out.Disaster, Warnings: out.Warnings, Error: j.Error, Preserved: out.Preserved,
		PointChoice: out.PointChoice, PointNotes: out.PointNotes}
	for m, p := range out.Points {
		pr := PointReport{Machine: m, Point: p.ID, Time: p.Time, Consistency: p.Consistency, Group: p.Group,
			AgeSeconds: out.Started.Sub(p.Time).Seconds(), Final: p.Final}
		pr.DataLossSeconds = dataLoss(j.Type, out, m, p)
		rep.Points = append(rep.Points, pr)
	}
	sort.Slice(rep.Points, func(a, b int) bool { return rep.Points[a].Machine < rep.Points[b].Machine })
	var last time.Time
	complete := len(out.Machines) > 0
	for m, mr := range out.Machines {
		x := MachineRep{Machine: m, Address: mr.Address}
		if mr.HealthyAt != nil {
			x.HealthySeconds = secs(mr.HealthyAt.Sub(out.Started))
			if mr.HealthyAt.After(last) {
				last = *mr.HealthyAt
			}
		} else {
			complete = false
		}
		rep.Machines = append(rep.Machines, x)
	}
	sort.Slice(rep.Machines, func(a, b int) bool { return rep.Machines[a].Machine < rep.Machines[b].Machine })
	if out.DNSAt != nil {
		rep.DNSSeconds = secs(out.DNSAt.Sub(out.Started))
		if out.DNSAt.After(last) {
			last = *out.DNSAt
		}
	}
	if complete && j.State == store.Succeeded {
		rep.RTOSeconds = secs(last.Sub(out.Started))
	}
	for m, ds := range out.Disks {
		for d, r := range ds {
			rep.Disks = append(rep.Disks, DiskReport{Machine: m, Disk: d, Method: r.Method, Size: r.Size,
				BytesWritten: r.BytesWritten, BytesFetched: r.BytesFetched, Seconds: r.Duration.Seconds()})
		}
	}
	sort.Slice(rep.Disks, func(a, b int) bool {
		return rep.Disks[a].Machine+"/"+rep.Disks[a].Disk < rep.Disks[b].Machine+"/"+rep.Disks[b].Disk
	})
	for _, fd := range out.Failback {
		rep.Failback = append(rep.Failback, *fd)
	}
	sort.Slice(rep.Failback, func(a, b int) bool {
		return rep.Failback[a].Machine+"/"+rep.Failback[a].Disk < rep.Failback[b].Machine+"/"+rep.Failback[b].Disk
	})
	for _, s := range j.Steps {
		sr := StepReport{Name: s.Name, State: string(s.State), Tries: s.Tries, Error: s.Error}
		if s.Started != nil && s.Ended != nil {
			sr.Seconds = s.Ended.Sub(*s.Started).Seconds()
		}
		rep.Steps = append(rep.Steps, sr)
	}
	return rep
}

// finishReport stores the report in the job.
func (r *run) finishReport() {
	r.job.State = store.Succeeded
	now := time.Now().UTC()
	r.job.Ended = &now
	r.job.Report, _ = json.Marshal(buildReport(r.job, r.out))
	r.job.Outputs, _ = json.Marshal(r.out)
}
