package orchestrator

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/haven-dr/haven/internal/store"
)

// SLAReport is a plan's month measured from what was recorded: the point
// history (RPO against target over time), the drill history and the
// failover jobs. Nothing in it comes from the configuration.
type SLAReport struct {
	Plan  string `json:"plan"`
	Month string `json:"month"` // 2026-12
	// From and To bound the measured time: the month, cut at now for
	// the month still running.
	From      time.Time     `json:"from"`
	To        time.Time     `json:"to"`
	Machines  []MachineSLA  `json:"machines"`
	Drills    []DrillSLA    `json:"drills"`
	DrillsRun int           `json:"drills_run"`
	Passed    int           `json:"drills_passed"`
	Skipped   int           `json:"drills_skipped"`
	Failovers []FailoverSLA `json:"failovers"`
}

// MachineSLA is one machine's RPO over the report's time.
type MachineSLA struct {
	Machine string `json:"machine"`
	// TargetSeconds is the newest RPO target recorded (0: never known).
	TargetSeconds float64 `json:"target_seconds"`
	// MeasuredFrom is From, or the machine's first recorded point when
	// it had none before (it was not protected yet).
	MeasuredFrom    time.Time `json:"measured_from"`
	MeasuredSeconds float64   `json:"measured_seconds"`
	// WithinSeconds of MeasuredSeconds the newest point was no older than
	// its target; WithinTarget is the share (nil without a target or
	// without measured time).
	WithinSeconds float64  `json:"within_seconds"`
	WithinTarget  *float64 `json:"within_target,omitempty"`
	// WorstRPOSeconds is the oldest the newest point got, at WorstAt.
	WorstRPOSeconds float64    `json:"worst_rpo_seconds"`
	WorstAt         *time.Time `json:"worst_at,omitempty"`
	Points          int        `json:"points"` // captured in the report's time
}

// DrillSLA is one drill of the month (run, skipped or missed).
type DrillSLA struct {
	Job       string     `json:"job"`
	Started   time.Time  `json:"started"`
	Scheduled *time.Time `json:"scheduled,omitempty"`
	Passed    bool       `json:"passed"`
	// RTOSeconds: test failover start to every machine healthy.
	RTOSeconds *float64 `json:"rto_seconds,omitempty"`
	// RPOSeconds: the oldest point the drill used, at its start.
	RPOSeconds *float64 `json:"rpo_seconds,omitempty"`
	Skipped    string   `json:"skipped,omitempty"`
	Missed     bool     `json:"missed,omitempty"`
	Error      string   `json:"error,omitempty"`
}

// FailoverSLA is one planned or unplanned failover (or failback) of the
// month, with its data-loss window.
type FailoverSLA struct {
	Job        string     `json:"job"`
	Type       string     `json:"type"`
	State      string     `json:"state"`
	Started    time.Time  `json:"started"`
	Ended      *time.Time `json:"ended,omitempty"`
	RTOSeconds *float64   `json:"rto_seconds,omitempty"`
	// DataLossSeconds is the widest machine's window (nil: not measured,
	// e.g. the job stopped before it chose points).
	DataLossSeconds *float64           `json:"data_loss_seconds,omitempty"`
	DataLoss        map[string]float64 `json:"data_loss,omitempty"` // per machine
}

// ParseMonth reads "2026-12" as the month's bounds in UTC.
func ParseMonth(s string) (time.Time, time.Time, error) {
	from, err := time.Parse("2006-01", s)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("%w: month %q: want YYYY-MM", ErrBadRequest, s)
	}
	return from, from.AddDate(0, 1, 0), nil
}

// SLA builds plan's report of month (YYYY-MM) as of now.
func (o *Orchestrator) SLA(ctx context.Context, plan, month string, now time.Time) (*SLAReport, error) {
	from, to, err := ParseMonth(month)
	if err != nil {
		return nil, err
	}
	cfg, _, err := o.Config(ctx)
	if err != nil {
		return nil, err
	}
	p := cfg.Plan(plan)
	if p == nil {
		return nil, fmt.Errorf("%w: no plan %q in the applied config", store.ErrNotFound, plan)
	}
	if now.Before(to) {
		to = now
	}
	if to.Before(from) {
		to = from // a month to come: nothing measured
	}
	rep := &SLAReport{Plan: plan, Month: month, From: from, To: to, Machines: []MachineSLA{}, Drills: []DrillSLA{}, Failovers: []FailoverSLA{}}
	for _, m := range machinesOf(p) {
		recs, err := o.Store.PointHistory(ctx, m, from, to)
		if err != nil {
			return nil, err
		}
		rep.Machines = append(rep.Machines, MachineRPO(m, recs, from, to))
	}
	if err := o.slaDrills(ctx, rep); err != nil {
		return nil, err
	}
	return rep, o.slaFailovers(ctx, rep)
}

// MachineRPO measures one machine's RPO over [from, to) from its point
// records (captured in it, and the newest before it). At each instant
// the RPO is the age of the newest point captured by then; it is within
// target while that age is at most the target recorded with the point.
func MachineRPO(machine string, recs []store.PointRecord, from, to time.Time) MachineSLA {
	recs = slices.Clone(recs)
	sort.Slice(recs, func(i, j int) bool { return recs[i].Captured.Before(recs[j].Captured) })
	ms := MachineSLA{Machine: machine, MeasuredFrom: from}
	if len(recs) == 0 || !recs[0].Captured.Before(to) {
		return ms
	}
	if recs[0].Captured.After(from) {
		ms.MeasuredFrom = recs[0].Captured
	}
	targets := eachInterval(recs, ms.MeasuredFrom, to, func(i int, target time.Duration, a, b time.Time) {
		r := recs[i]
		if ok := r.Captured.Add(target); ok.After(a) {
			ms.WithinSeconds += minTime(ok, b).Sub(a).Seconds()
		}
		if worst := b.Sub(r.Captured).Seconds(); worst > ms.WorstRPOSeconds {
			ms.WorstRPOSeconds, ms.WorstAt = worst, &b
		}
	})
	for _, r := range recs {
		if !r.Captured.Before(from) && r.Captured.Before(to) {
			ms.Points++
		}
	}
	known := targets[len(targets)-1] > 0
	if known {
		ms.TargetSeconds = targets[len(targets)-1].Seconds()
	}
	ms.MeasuredSeconds = to.Sub(ms.MeasuredFrom).Seconds()
	if known && ms.MeasuredSeconds > 0 {
		share := ms.WithinSeconds / ms.MeasuredSeconds
		ms.WithinTarget = &share
	}
	return ms
}

// eachInterval calls fn for each stretch [a, b) of [from, to) in which
// record i (sorted by capture) was the newest point, with the target it
// is held to; it returns the targets.
func eachInterval(recs []store.PointRecord, from, to time.Time, fn func(i int, target time.Duration, a, b time.Time)) []time.Duration {
	targets := recordTargets(recs)
	for i, r := range recs {
		a, b := maxTime(r.Captured, from), to
		if i+1 < len(recs) && recs[i+1].Captured.Before(to) {
			b = recs[i+1].Captured
		}
		if b.After(a) {
			fn(i, targets[i], a, b)
		}
	}
	return targets
}

// recordTargets is the RPO target each record is held to: its own, else
// the one last recorded before it, else (points seen before the agent
// first reported its target) the first one recorded after it.
func recordTargets(recs []store.PointRecord) []time.Duration {
	out := make([]time.Duration, len(recs))
	var last time.Duration
	for i, r := range recs {
		if r.TargetSeconds > 0 {
			last = time.Duration(r.TargetSeconds * float64(time.Second))
		}
		out[i] = last
	}
	for i := len(out) - 1; i > 0; i-- {
		if out[i-1] == 0 {
			out[i-1] = out[i]
		}
	}
	return out
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// slaDrills adds the drills started (or, skipped, scheduled) in the
// report's month, oldest first.
func (o *Orchestrator) slaDrills(ctx context.Context, rep *SLAReport) error {
	ds, err := o.Store.Drills(ctx, rep.Plan)
	if err != nil {
		return err
	}
	end := rep.From.AddDate(0, 1, 0)
	for _, d := range slices.Backward(ds) {
		if d.Started.Before(rep.From) || !d.Started.Before(end) {
			continue
		}
		x := DrillSLA{Job: d.JobID, Started: d.Started, Scheduled: d.Scheduled, Passed: d.Passed,
			Skipped: d.Skipped, Missed: d.Missed, Error: d.Error}
		if d.Skipped != "" {
			rep.Skipped++
		} else {
			rep.DrillsRun++
		}
		if d.Passed {
			rep.Passed++
			x.RTOSeconds = &d.RTOSeconds
		}
		for _, age := range d.PointAges {
			if x.RPOSeconds == nil || age > *x.RPOSeconds {
				x.RPOSeconds = &age
			}
		}
		rep.Drills = append(rep.Drills, x)
	}
	sort.SliceStable(rep.Drills, func(i, j int) bool { return rep.Drills[i].Started.Before(rep.Drills[j].Started) })
	return nil
}

// slaFailovers adds the failovers and failbacks begun in the month.
func (o *Orchestrator) slaFailovers(ctx context.Context, rep *SLAReport) error {
	js, err := o.Store.Jobs(ctx, store.JobFilter{Plan: rep.Plan})
	if err != nil {
		return err
	}
	end := rep.From.AddDate(0, 1, 0)
	for _, j := range slices.Backward(js) { // oldest first
		if (j.Type != PlannedFailover && j.Type != UnplannedFailover && j.Type != Failback) ||
			j.Created.Before(rep.From) || !j.Created.Before(end) {
			continue
		}
		jr, err := jobReport(j)
		if err != nil {
			return err
		}
		f := FailoverSLA{Job: j.ID, Type: string(j.Type), State: string(j.State), Started: j.Created, Ended: j.Ended, RTOSeconds: jr.RTOSeconds}
		for _, p := range jr.Points {
			if p.DataLossSeconds == nil {
				continue
			}
			if f.DataLoss == nil {
				f.DataLoss = map[string]float64{}
			}
			f.DataLoss[p.Machine] = *p.DataLossSeconds
			if f.DataLossSeconds == nil || *p.DataLossSeconds > *f.DataLossSeconds {
				f.DataLossSeconds = p.DataLossSeconds
			}
		}
		rep.Failovers = append(rep.Failovers, f)
	}
	return nil
}

// jobReport is the report a job ended with, or one built from its
// records for a job that has none yet.
func jobReport(j *store.Job) (*Report, error) {
	if len(j.Report) > 0 {
		var r Report
		if err := json.Unmarshal(j.Report, &r); err != nil {
			return nil, fmt.Errorf("job %s: report: %w", j.ID, err)
		}
		return &r, nil
	}
	return BuildReport(j)
}

// RPOSample is a machine's RPO at one instant.
type RPOSample struct {
	T       time.Time
	Seconds float64
}

// RPOSeries is the RPO over [from, to] as the instants where it changes
// slope: it grows from each point's capture and drops at the next one (a
// sawtooth), by the same model MachineRPO measures. Before the first
// recorded point there is nothing to draw. The target is the newest one
// recorded (0: none).
func RPOSeries(recs []store.PointRecord, from, to time.Time) ([]RPOSample, float64) {
	recs = slices.Clone(recs)
	sort.Slice(recs, func(i, j int) bool { return recs[i].Captured.Before(recs[j].Captured) })
	var out []RPOSample
	ts := eachInterval(recs, from, to, func(i int, _ time.Duration, a, b time.Time) {
		out = append(out, RPOSample{a, a.Sub(recs[i].Captured).Seconds()}, RPOSample{b, b.Sub(recs[i].Captured).Seconds()})
	})
	var target float64
	if len(ts) > 0 {
		target = ts[len(ts)-1].Seconds()
	}
	return out, target
}
