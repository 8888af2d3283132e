package alert

import "time"

// scheduledDrillRules: the newest scheduled drill failed or was missed,
// or the next one is overdue (not started within the grace of its
// instant: no leader, or the previous drill still runs).
func scheduledDrillRules(in Inputs, p Plan, add addFunc) {
	if d := p.LastScheduled; d != nil && !d.Passed {
		switch {
		case d.Missed:
			add("drill-missed/"+p.Name, Warning, d.Started, "plan %s: %s", p.Name, d.Skipped)
		case d.Skipped == "":
			add("drill-failed/"+p.Name, Critical, d.CleanedUp, "plan %s: scheduled drill of %s failed: %s (haven job show %s)",
				p.Name, d.Scheduled.Format(time.RFC3339), d.Error, d.JobID)
		}
	}
	if p.NextDrill == nil || in.Now.Sub(*p.NextDrill) <= in.DrillGrace {
		return
	}
	why := "not started"
	if p.DrillRunning != "" {
		why = "the previous drill (test failover " + p.DrillRunning + ") still runs"
	}
	add("drill-overdue/"+p.Name, Warning, p.NextDrill.Add(in.DrillGrace), "plan %s: scheduled drill of %s overdue: %s",
		p.Name, p.NextDrill.Format(time.RFC3339), why)
}
