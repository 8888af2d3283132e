package api

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// SLAReport is a plan's monthly report (GET /v1/plans/{plan}/report),
// measured from the recorded point, drill and failover history.
type SLAReport struct {
	Plan      string        `json:"plan"`
	Month     string        `json:"month"`
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
	Machine         string     `json:"machine"`
	TargetSeconds   float64    `json:"target_seconds"`
	MeasuredFrom    time.Time  `json:"measured_from"`
	MeasuredSeconds float64    `json:"measured_seconds"`
	WithinSeconds   float64    `json:"within_seconds"`
	WithinTarget    *float64   `json:"within_target,omitempty"` // share 0..1
	WorstRPOSeconds float64    `json:"worst_rpo_seconds"`
	WorstAt         *time.Time `json:"worst_at,omitempty"`
	Points          int        `json:"points"`
}

// DrillSLA is one drill of the month: run, skipped or missed.
type DrillSLA struct {
	Job        string     `json:"job"`
	Started    time.Time  `json:"started"`
	Scheduled  *time.Time `json:"scheduled,omitempty"`
	Passed     bool       `json:"passed"`
	RTOSeconds *float64   `json:"rto_seconds,omitempty"`
	RPOSeconds *float64   `json:"rpo_seconds,omitempty"`
	Skipped    string     `json:"skipped,omitempty"`
	Missed     bool       `json:"missed,omitempty"`
	Error      string     `json:"error,omitempty"`
}

// FailoverSLA is a failover or failback of the month and its data-loss
// window.
type FailoverSLA struct {
	Job             string             `json:"job"`
	Type            string             `json:"type"`
	State           string             `json:"state"`
	Started         time.Time          `json:"started"`
	Ended           *time.Time         `json:"ended,omitempty"`
	RTOSeconds      *float64           `json:"rto_seconds,omitempty"`
	DataLossSeconds *float64           `json:"data_loss_seconds,omitempty"`
	DataLoss        map[string]float64 `json:"data_loss,omitempty"`
}

// DrillResult is a drill's outcome in one word.
func (d DrillSLA) Result() string {
	switch {
	case d.Missed:
		return "missed"
	case d.Skipped != "":
		return "skipped"
	case d.Passed:
		return "passed"
	}
	return "failed"
}

func num(p *float64, prec int) string {
	if p == nil {
		return ""
	}
	return strconv.FormatFloat(*p, 'f', prec, 64)
}

func stamp(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// WriteCSV writes the report as one table: a row per machine, drill and
// failover, told apart by the first column.
func (r *SLAReport) WriteCSV(w io.Writer) error {
	c := csv.NewWriter(w)
	rows := [][]string{{"section", "name", "time", "result", "rto_seconds", "rpo_seconds", "target_seconds",
		"within_target", "worst_rpo_seconds", "data_loss_seconds", "detail"}}
	rows = append(rows, []string{"summary", r.Plan, r.Month, fmt.Sprintf("%d/%d drills passed", r.Passed, r.DrillsRun),
		"", "", "", "", "", "", fmt.Sprintf("%d skipped or missed; %d failovers", r.Skipped, len(r.Failovers))})
	for _, m := range r.Machines {
		rows = append(rows, []string{"machine", m.Machine, stamp(&m.MeasuredFrom), "", "", "",
			strconv.FormatFloat(m.TargetSeconds, 'f', 0, 64), num(m.WithinTarget, 4),
			strconv.FormatFloat(m.WorstRPOSeconds, 'f', 0, 64), "", fmt.Sprintf("%d points", m.Points)})
	}
	for _, d := range r.Drills {
		rows = append(rows, []string{"drill", d.Job, stamp(&d.Started), d.Result(), num(d.RTOSeconds, 1), num(d.RPOSeconds, 0),
			"", "", "", "", strings.TrimSpace(d.Error + " " + d.Skipped)})
	}
	for _, f := range r.Failovers {
		rows = append(rows, []string{"failover", f.Job, stamp(&f.Started), f.Type + " " + f.State, num(f.RTOSeconds, 1), "",
			"", "", "", num(f.DataLossSeconds, 0), ""})
	}
	c.WriteAll(rows)
	return c.Error()
}

// WriteText writes the report for a person to read.
func (r *SLAReport) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Plan %s, %s (%s to %s)\n\n", r.Plan, r.Month, r.From.UTC().Format(time.RFC3339), r.To.UTC().Format(time.RFC3339))
	fmt.Fprintln(tw, "MACHINE\tRPO TARGET\tWITHIN TARGET\tWORST RPO\tPOINTS")
	for _, m := range r.Machines {
		within := "unknown (no target recorded)"
		if m.WithinTarget != nil {
			within = fmt.Sprintf("%.2f%%", *m.WithinTarget*100)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", m.Machine, dur(m.TargetSeconds), within, dur(m.WorstRPOSeconds), m.Points)
	}
	fmt.Fprintf(tw, "\nDrills: %d run, %d passed, %d skipped or missed\n", r.DrillsRun, r.Passed, r.Skipped)
	fmt.Fprintln(tw, "STARTED\tRESULT\tRTO\tRPO\tJOB\tDETAIL")
	for _, d := range r.Drills {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.Started.UTC().Format(time.RFC3339), d.Result(), durp(d.RTOSeconds),
			durp(d.RPOSeconds), d.Job, strings.TrimSpace(d.Error+" "+d.Skipped))
	}
	fmt.Fprintf(tw, "\nFailovers: %d\n", len(r.Failovers))
	fmt.Fprintln(tw, "STARTED\tTYPE\tSTATE\tRTO\tDATA LOSS\tJOB")
	for _, f := range r.Failovers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.Started.UTC().Format(time.RFC3339), f.Type, f.State, durp(f.RTOSeconds),
			durp(f.DataLossSeconds), f.Job)
	}
	return tw.Flush()
}

func dur(s float64) string {
	if s == 0 {
		return "-"
	}
	return (time.Duration(s * float64(time.Second))).Round(time.Second).String()
}

func durp(p *float64) string {
	if p == nil {
		return "-"
	}
	if *p < 1 {
		return strconv.FormatFloat(*p, 'f', 2, 64) + "s"
	}
	return dur(*p)
}
