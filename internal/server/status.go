package server

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/haven-dr/haven/internal/agent"
	"github.com/haven-dr/haven/internal/alert"
	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/vault"
)

func (s *Server) status(r *http.Request) (any, error) {
	now := time.Now().UTC()
	st, in, err := s.snapshot(r.Context(), now)
	if err != nil {
		return nil, err
	}
	as := s.alerts.current(alert.Evaluate(in))
	if st.AlertDetails, err = wireList[api.Alert](as); err != nil {
		return nil, err
	}
	for _, a := range as {
		st.Alerts = append(st.Alerts, a.Summary)
	}
	st.DNSServers = s.dnsServerStatus()
	return st, nil
}

// snapshot reads the state once for both the status answer and the alert
// rules, so that what an operator sees and what is delivered agree.
func (s *Server) snapshot(ctx context.Context, now time.Time) (*api.Status, alert.Inputs, error) {
	st := &api.Status{Time: now, Alerts: []string{}}
	in := alert.Inputs{Now: now, AgentSilent: s.cfg.AgentSilent, DrillMaxAge: s.cfg.DrillMaxAge, DrillGrace: s.cfg.DrillGrace, Vault: s.alerts.vaultCheck(),
		Catalog: s.cat.failure()}
	for _, h := range s.orch.LostHosts(ctx) {
		in.LostHosts = append(in.LostHosts, alert.LostHost{Name: h.Name, Err: h.Err.Error(), Plans: h.Plans})
	}
	cfg, v, err := s.orch.Config(ctx)
	if err != nil {
		return nil, in, err
	}
	st.Config = v
	hbs, _ := s.store.Heartbeats(ctx)
	reports := map[string]*agent.Report{}
	for _, a := range cfg.Agents {
		as := api.AgentStatus{Name: a.Name}
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
		ms := api.MachineStatus{Name: m.Name, Agent: m.Agent}
		ps, err := s.vault.Points(ctx, m.Name)
		if err != nil {
			ms.LastError = err.Error()
			// Points leaves a point it could not load nil; count the others.
			ps = slices.DeleteFunc(ps, func(p *vault.Point) bool { return p == nil })
		}
		ms.Points = len(ps)
		sort.Slice(ps, func(i, j int) bool { return ps[i].Time.After(ps[j].Time) })
		ps = s.splitPreserved(ctx, &ms, ps)
		am := alert.Machine{Name: m.Name}
		if err == nil {
			if e, err := s.detectEncryption(ctx, m.Name, ps); err != nil {
				ms.LastError = "encryption detection: " + err.Error()
			} else {
				e.fill(&ms, &am, ps)
			}
		}
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
	s.recoveredMachines(ctx, now, st, &in)
	var plans []*store.PlanState
	for _, p := range cfg.Plans {
		if ps, err := s.store.PlanState(ctx, p.Name); err == nil {
			plans = append(plans, ps)
		}
		in.Plans = append(in.Plans, s.planDrills(ctx, &p, now))
	}
	for _, c := range s.copies {
		cs, ci := c.state(ctx, s.vault, now)
		st.Copies = append(st.Copies, cs)
		in.Copies = append(in.Copies, ci)
	}
	in.Jobs, _ = s.store.Jobs(ctx, store.JobFilter{Active: true})
	if st.Plans, err = wireRefs[api.PlanState](plans); err != nil {
		return nil, in, err
	}
	if st.Jobs, err = wireRefs[api.Job](in.Jobs); err != nil {
		return nil, in, err
	}
	if st.Jobs == nil {
		st.Jobs = []*api.Job{}
	}
	return st, in, nil
}

// splitPreserved notes the machine's unreleased preserved points and
// returns the others: a preserved point is evidence, not the newest
// recovery point, and must not hide an RPO that grows.
func (s *Server) splitPreserved(ctx context.Context, ms *api.MachineStatus, ps []*vault.Point) []*vault.Point {
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
