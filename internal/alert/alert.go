// Package alert turns the control plane's state into alerts (RPO above
// target, agent silent, replication failing, job failed or waiting for
// approval, no passed drill for too long, vault check failing) and
// delivers their transitions — fired, resolved — to the log, Prometheus,
// a webhook and e-mail. The evaluation is a pure function of its inputs so
// that GET /v1/status and the delivery loop always agree.
package alert

import (
	"fmt"
	"time"

	"github.com/haven-dr/haven/internal/store"
)

// Severity of an alert.
type Severity string

// Severities.
const (
	Critical Severity = "critical" // recovery is at risk now
	Warning  Severity = "warning"  // someone must act, nothing is lost yet
)

// Alert is one condition that holds now (or held, when Resolved is set).
type Alert struct {
	// ID is stable while the condition lasts ("rpo/db"), so a changing
	// summary (the RPO grows) is not a new alert.
	ID       string     `json:"id"`
	Severity Severity   `json:"severity"`
	Summary  string     `json:"summary"`
	Since    time.Time  `json:"since"`
	Resolved *time.Time `json:"resolved,omitempty"`
}

// Inputs are what the rules look at; the server fills them from the
// applied config, the vault, heartbeats, jobs and drills.
type Inputs struct {
	Now         time.Time
	AgentSilent time.Duration
	DrillMaxAge time.Duration
	// DrillGrace: a scheduled drill not started this long after its
	// instant is overdue.
	DrillGrace time.Duration
	Agents     []Agent
	Machines   []Machine
	Plans      []Plan
	Jobs       []*store.Job // the active ones
	Vault      *VaultCheck  // nil before the first check
	// Catalog is set while the server's catalog cannot be saved to the
	// vault (a new control plane would recover stale state).
	Catalog *CatalogWrite
	Copies  []Copy // second vaults the server keeps current
	// LostHosts are the recovery hosts that do not answer.
	LostHosts []LostHost
	// Memory: the running recovered machines' memory (memory.go), with
	// the quiet time after which a count that stopped growing resolves.
	Memory      []MachineMemory
	MemoryQuiet time.Duration
}

// LostHost is a recovery host that does not answer.
type LostHost struct {
	Name string
	Err  string
	// Plans had machines running there (failed over); their machines
	// are brought up elsewhere by recover-machines.
	Plans []string
}

// Copy is a second vault kept current from the vault.
type Copy struct {
	Name   string
	MaxLag time.Duration
	// Lag is how far the copy's newest point is behind the vault's; nil
	// before a run has worked.
	Lag          *time.Duration
	Err          string    // the last run failed
	FailingSince time.Time // first failure since the last run that worked
	Problems     []string  // damaged or missing objects in the vault, not copied
}

// CatalogWrite is a failing save of the server's catalog to the vault.
type CatalogWrite struct {
	Since time.Time // first failure since the last save that worked
	Err   string
	Retry time.Duration
}

// Agent is an agent of the applied config.
type Agent struct {
	Name          string
	LastHeartbeat *time.Time
}

// Machine is a protected machine.
type Machine struct {
	Name  string
	Point *time.Time // capture instant of the newest point; nil: none
	// RPOTarget comes from the agent's report (its rpo_alert); 0: unknown.
	RPOTarget time.Duration
	// ReplicationError is the agent's last_error for the machine.
	ReplicationError string
	// Encryption: the machine's open encryption alerts.
	Encryption []Encryption
}

// Encryption is an open encryption alert (internal/detect).
type Encryption struct {
	FirstSuspect string
	LastClean    string
	Detected     time.Time
	Reason       string
}

// Plan is a recovery plan with its drill history summarised.
type Plan struct {
	Name string
	// LastPassedDrill is when the newest passed test failover started.
	LastPassedDrill *time.Time
	// FirstSeen is when the plan first appeared in an applied config:
	// the clock starts there when it has never been drilled.
	FirstSeen time.Time
	// Scheduled drills (drill.go): the newest that ran or was missed
	// (not one skipped because the plan was busy), the first instant not
	// started yet, and the test failover of the drill in flight.
	LastScheduled *store.Drill
	NextDrill     *time.Time
	DrillRunning  string
}

// VaultCheck is the outcome of the last metadata check of the vault.
type VaultCheck struct {
	Time     time.Time
	Err      string // the check could not run
	Problems []string
}

// Evaluate returns the alerts that hold for in, in a stable order.
func Evaluate(in Inputs) []Alert {
	var out []Alert
	add := func(id string, sev Severity, since time.Time, format string, args ...any) {
		if since.IsZero() || since.After(in.Now) {
			since = in.Now
		}
		out = append(out, Alert{ID: id, Severity: sev, Summary: fmt.Sprintf(format, args...), Since: since})
	}
	for _, a := range in.Agents {
		if a.LastHeartbeat == nil {
			add("agent-silent/"+a.Name, Critical, time.Time{}, "agent %s silent (no heartbeat for %s or more)", a.Name, in.AgentSilent)
		} else if in.Now.Sub(*a.LastHeartbeat) >= in.AgentSilent {
			add("agent-silent/"+a.Name, Critical, a.LastHeartbeat.Add(in.AgentSilent),
				"agent %s silent (no heartbeat for %s or more)", a.Name, in.AgentSilent)
		}
	}
	for _, m := range in.Machines {
		machineRules(in.Now, m, add)
	}
	for _, p := range in.Plans {
		drillRule(in, p, add)
		scheduledDrillRules(in, p, add)
	}
	for _, j := range in.Jobs {
		switch j.State {
		case store.Failed:
			add("job-failed/"+j.ID, Critical, j.Updated, "job %s (%s of %s) failed: %s (haven job retry|cancel %s)", j.ID, j.Type, j.Plan, j.Error, j.ID)
		case store.Waiting:
			add("job-waiting/"+j.ID, Warning, j.Updated, "job %s waits for approval (haven job approve %s)", j.ID, j.ID)
		}
	}
	if c := in.Catalog; c != nil {
		add("catalog-write", Critical, c.Since, "server catalog not saved to the vault since %s (retried every %s): %s",
			c.Since.Format(time.RFC3339), c.Retry, c.Err)
	}
	for _, c := range in.Copies {
		copyRules(c, add)
	}
	for _, h := range in.LostHosts {
		hostRule(h, add)
	}
	for _, m := range in.Memory {
		memoryRule(in.Now, in.MemoryQuiet, m, add)
	}
	if c := in.Vault; c != nil {
		switch {
		case c.Err != "":
			add("vault-check", Critical, c.Time, "vault check failed: %s", c.Err)
		case len(c.Problems) > 0:
			add("vault-check", Critical, c.Time, "vault check found %d problem(s); first: %s (haven vault check)", len(c.Problems), c.Problems[0])
		}
	}
	return out
}

type addFunc func(id string, sev Severity, since time.Time, format string, args ...any)

func machineRules(now time.Time, m Machine, add addFunc) {
	switch {
	case m.Point == nil:
		add("rpo/"+m.Name, Critical, time.Time{}, "machine %s: no recovery point yet (RPO unknown)", m.Name)
	case m.RPOTarget > 0 && now.Sub(*m.Point) > m.RPOTarget:
		add("rpo/"+m.Name, Critical, m.Point.Add(m.RPOTarget), "machine %s: RPO %.0fs above target %.0fs",
			m.Name, now.Sub(*m.Point).Seconds(), m.RPOTarget.Seconds())
	}
	for _, e := range m.Encryption {
		clean := "none left in the vault"
		if e.LastClean != "" {
			clean = e.LastClean + ", kept while this alert is open (--point last-clean)"
		}
		add("encryption/"+m.Name+"/"+e.FirstSuspect, Critical, e.Detected,
			"machine %s: mass encryption suspected from point %s on: %s; last clean point %s; close with `haven alert close %s %s`",
			m.Name, e.FirstSuspect, e.Reason, clean, m.Name, e.FirstSuspect)
	}
	if m.ReplicationError != "" {
		add("replication/"+m.Name, Critical, time.Time{}, "machine %s: replication failing: %s", m.Name, m.ReplicationError)
	}
}

func drillRule(in Inputs, p Plan, add addFunc) {
	if in.DrillMaxAge <= 0 {
		return
	}
	from, what := p.FirstSeen, "never drilled; applied"
	if p.LastPassedDrill != nil {
		from, what = *p.LastPassedDrill, "last passed test failover"
	}
	if from.IsZero() || in.Now.Sub(from) < in.DrillMaxAge {
		return
	}
	days := int(in.Now.Sub(from).Hours() / 24)
	add("drill/"+p.Name, Warning, from.Add(in.DrillMaxAge), "plan %s: no passed test failover for %d days (%s %s; drill_max_age %s) (haven failover test --plan %s)",
		p.Name, days, what, from.Format("2006-01-02"), in.DrillMaxAge, p.Name)
}

func copyRules(c Copy, add addFunc) {
	if c.Err != "" {
		add("copy/"+c.Name, Critical, c.FailingSince, "copy %s failing since %s: %s", c.Name, c.FailingSince.Format(time.RFC3339), c.Err)
	}
	if c.Lag != nil && *c.Lag > c.MaxLag {
		add("copy-lag/"+c.Name, Critical, time.Time{}, "copy %s lags %s behind the vault (max_lag %s)", c.Name, c.Lag.Round(time.Second), c.MaxLag)
	}
	if len(c.Problems) > 0 {
		add("copy-source/"+c.Name, Critical, time.Time{}, "copy %s: %d damaged or missing object(s) in the vault not copied; first: %s (haven vault check)",
			c.Name, len(c.Problems), c.Problems[0])
	}
}

// hostRule: a recovery host that does not answer loses its standby
// images (the server places its machines on the others and rebuilds
// them there) and, after a failover, the machines it ran.
func hostRule(h LostHost, add addFunc) {
	msg := fmt.Sprintf("recovery host %s does not answer (%s): its machines' standby images are being rebuilt on the other hosts", h.Name, h.Err)
	for _, p := range h.Plans {
		msg += fmt.Sprintf("; plan %s ran machines there (haven failover recover-machines --plan %s)", p, p)
	}
	add("host-lost/"+h.Name, Critical, time.Time{}, "%s", msg)
}
