package server

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"github.com/haven-dr/haven/internal/agent"
	"github.com/haven-dr/haven/internal/alert"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/vault"
)

// Status answers GET /v1/status: what `haven status` prints.
type Status struct {
	Time     time.Time          `json:"time"`
	Config   int64              `json:"config_version"`
	Machines []MachineStatus    `json:"machines"`
	Agents   []AgentStatus      `json:"agents"`
	Plans    []*store.PlanState `json:"plans"`
	Jobs     []*store.Job       `json:"active_jobs"`
	// Alerts are the summaries of AlertDetails, for a person.
	Alerts       []string      `json:"alerts"`
	AlertDetails []alert.Alert `json:"alert_details"`
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
}

// AgentStatus is an agent's health.
type AgentStatus struct {
	Name          string     `json:"name"`
	LastHeartbeat *time.Time `json:"last_heartbeat,omitempty"`
	Healthy       bool       `json:"healthy"`
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	now := time.Now().UTC()
	st, in, err := s.snapshot(r.Context(), now)
	if err != nil {
		writeError(w, err)
		return
	}
	st.AlertDetails = s.alerts.current(alert.Evaluate(in))
	for _, a := range st.AlertDetails {
		st.Alerts = append(st.Alerts, a.Summary)
	}
	writeJSON(w, http.StatusOK, st)
}

// snapshot reads the state once for both the status answer and the alert
// rules, so that what an operator sees and what is delivered agree.
func (s *Server) snapshot(ctx context.Context, now time.Time) (*Status, alert.Inputs, error) {
	st := &Status{Time: now, Alerts: []string{}}
	in := alert.Inputs{Now: now, AgentSilent: s.cfg.AgentSilent, DrillMaxAge: s.cfg.DrillMaxAge, Vault: s.alerts.vaultCheck(),
		Catalog: s.cat.failure()}
	cfg, v, err := s.orch.Config(ctx)
	if err != nil {
		return nil, in, err
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
		st.Agents = append(st.Agents, as)
		in.Agents = append(in.Agents, alert.Agent{Name: a.Name, LastHeartbeat: as.LastHeartbeat})
	}
	for _, m := range cfg.Machines {
		ms := MachineStatus{Name: m.Name, Agent: m.Agent}
		ps, err := s.vault.Points(ctx, m.Name)
		if err != nil {
			ms.LastError = err.Error()
		}
		ms.Points = len(ps)
		sort.Slice(ps, func(i, j int) bool { return ps[i].Time.After(ps[j].Time) })
		ps = s.splitPreserved(ctx, &ms, ps)
		am := alert.Machine{Name: m.Name}
		if len(ps) > 0 {
			p := ps[0]
			t := p.Time
			rpo := now.Sub(t).Seconds()
			ms.LastPoint, ms.PointTime, ms.Consistency, ms.RPOSeconds = p.ID, &t, p.Consistency, &rpo
			am.Point = &t
		}
		if rep := reports[m.Agent]; rep != nil {
			for _, rm := range rep.Machines {
				if rm.Name != m.Name {
					continue
				}
				ms.RPOAlertSeconds = rm.RPOAlertSeconds
				am.RPOTarget = time.Duration(rm.RPOAlertSeconds * float64(time.Second))
				if rm.LastError != "" {
					ms.LastError, am.ReplicationError = rm.LastError, rm.LastError
				}
			}
		}
		if len(m.Disks) > 0 {
			ms.Standby = s.host.StandbyPoint(m.Name, m.Disks[0].Name)
		}
		st.Machines = append(st.Machines, ms)
		in.Machines = append(in.Machines, am)
	}
	for _, p := range cfg.Plans {
		ps, err := s.store.PlanState(ctx, p.Name)
		if err == nil {
			st.Plans = append(st.Plans, ps)
		}
		in.Plans = append(in.Plans, s.planDrills(ctx, p.Name, now))
	}
	st.Jobs, _ = s.store.Jobs(ctx, store.JobFilter{Active: true})
	if st.Jobs == nil {
		st.Jobs = []*store.Job{}
	}
	in.Jobs = st.Jobs
	return st, in, nil
}

// splitPreserved notes the machine's unreleased preserved points and
// returns the others: a preserved point is evidence, not the newest
// recovery point, and must not hide an RPO that grows.
func (s *Server) splitPreserved(ctx context.Context, ms *MachineStatus, ps []*vault.Point) []*vault.Point {
	released, err := s.vault.Released(ctx, ps)
	if err != nil && ms.LastError == "" {
		ms.LastError = err.Error()
	}
	var rest []*vault.Point
	for _, p := range ps {
		switch {
		case !p.Preserved():
			rest = append(rest, p)
		case !released[p]:
			ms.Preserved = append(ms.Preserved, p.ID)
		}
	}
	return rest
}
