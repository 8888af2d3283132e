package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/haven-dr/haven/internal/agent"
	"github.com/haven-dr/haven/internal/store"
)

// Status answers GET /v1/status: what `haven status` prints.
type Status struct {
	Time     time.Time          `json:"time"`
	Config   int64              `json:"config_version"`
	Machines []MachineStatus    `json:"machines"`
	Agents   []AgentStatus      `json:"agents"`
	Plans    []*store.PlanState `json:"plans"`
	Jobs     []*store.Job       `json:"active_jobs"`
	Alerts   []string           `json:"alerts"`
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
}

// AgentStatus is an agent's health.
type AgentStatus struct {
	Name          string     `json:"name"`
	LastHeartbeat *time.Time `json:"last_heartbeat,omitempty"`
	Healthy       bool       `json:"healthy"`
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	now := time.Now().UTC()
	st := &Status{Time: now, Alerts: []string{}}
	cfg, v, err := s.orch.Config(ctx)
	if err != nil {
		writeError(w, err)
		return
	}
	st.Config = v
	hbs, _ := s.store.Heartbeats(ctx)
	reports := map[string]*agent.Report{}
	for _, a := range cfg.Agents {
		as := AgentStatus{Name: a.Name}
		for _, h := range hbs {
			if h.Agent == a.Name {
				t := h.Time
				as.LastHeartbeat = &t
				as.Healthy = now.Sub(t) < s.cfg.AgentSilent
				var rep agent.Report
				if json.Unmarshal(h.Report, &rep) == nil {
					reports[a.Name] = &rep
				}
			}
		}
		if !as.Healthy {
			st.Alerts = append(st.Alerts, fmt.Sprintf("agent %s silent (no heartbeat for %s or more)", a.Name, s.cfg.AgentSilent))
		}
		st.Agents = append(st.Agents, as)
	}
	for _, m := range cfg.Machines {
		ms := MachineStatus{Name: m.Name, Agent: m.Agent}
		ps, err := s.vault.Points(ctx, m.Name)
		if err != nil {
			ms.LastError = err.Error()
		}
		ms.Points = len(ps)
		sort.Slice(ps, func(i, j int) bool { return ps[i].Time.After(ps[j].Time) })
		if len(ps) > 0 {
			p := ps[0]
			t := p.Time
			rpo := now.Sub(t).Seconds()
			ms.LastPoint, ms.PointTime, ms.Consistency, ms.RPOSeconds = p.ID, &t, p.Consistency, &rpo
		} else {
			st.Alerts = append(st.Alerts, fmt.Sprintf("machine %s: no recovery point yet (RPO unknown)", m.Name))
		}
		if rep := reports[m.Agent]; rep != nil {
			for _, am := range rep.Machines {
				if am.Name != m.Name {
					continue
				}
				ms.RPOAlertSeconds = am.RPOAlertSeconds
				if am.LastError != "" {
					ms.LastError = am.LastError
					st.Alerts = append(st.Alerts, fmt.Sprintf("machine %s: replication failing: %s", m.Name, am.LastError))
				}
				if ms.RPOSeconds != nil && am.RPOAlertSeconds > 0 && *ms.RPOSeconds > am.RPOAlertSeconds {
					st.Alerts = append(st.Alerts, fmt.Sprintf("machine %s: RPO %.0fs above target %.0fs", m.Name, *ms.RPOSeconds, am.RPOAlertSeconds))
				}
			}
		}
		if len(m.Disks) > 0 {
			ms.Standby = s.host.StandbyPoint(m.Name, m.Disks[0].Name)
		}
		st.Machines = append(st.Machines, ms)
	}
	for _, p := range cfg.Plans {
		ps, err := s.store.PlanState(ctx, p.Name)
		if err == nil {
			st.Plans = append(st.Plans, ps)
		}
	}
	st.Jobs, _ = s.store.Jobs(ctx, store.JobFilter{Active: true})
	for _, j := range st.Jobs {
		switch j.State {
		case store.Failed:
			st.Alerts = append(st.Alerts, fmt.Sprintf("job %s (%s of %s) failed: %s (haven job retry|cancel %s)", j.ID, j.Type, j.Plan, j.Error, j.ID))
		case store.Waiting:
			st.Alerts = append(st.Alerts, fmt.Sprintf("job %s waits for approval (haven job approve %s)", j.ID, j.ID))
		}
	}
	if st.Jobs == nil {
		st.Jobs = []*store.Job{}
	}
	writeJSON(w, http.StatusOK, st)
}
