package server

import (
	"context"
	"net/http"
	"sort"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/protection"
)

// pathMachine is the {machine} of the request's path, if the applied
// config has it.
func (s *Server) pathMachine(r *http.Request) (string, error) {
	c, _, err := s.orch.Config(r.Context())
	if err != nil {
		return "", err
	}
	name := r.PathValue("machine")
	if c.Machine(name) == nil {
		return "", errStatus(http.StatusNotFound, "no machine %s in the applied config", name)
	}
	return name, nil
}

func (s *Server) machinePoints(r *http.Request) (any, error) {
	name, err := s.pathMachine(r)
	if err != nil {
		return nil, err
	}
	ps, err := s.vault.Points(r.Context(), name)
	if err != nil {
		return nil, err
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Time.After(ps[j].Time) })
	e, err := s.detectEncryption(r.Context(), name, ps)
	if err != nil {
		return nil, err
	}
	clean := map[string]bool{}
	for _, h := range e.holds {
		clean[h.LastClean] = h.Open()
	}
	out := []api.PointView{}
	for _, p := range ps {
		out = append(out, api.PointView{ID: p.ID, Time: p.Time, Consistency: p.Consistency, Provider: p.Provider, Group: p.Group, Tags: p.Tags,
			Suspect: e.suspect[p.ID], LastClean: clean[p.ID]})
	}
	return out, nil
}

func (s *Server) traffic(r *http.Request) (any, error) {
	c, _, err := s.orch.Config(r.Context())
	if err != nil {
		return nil, err
	}
	return s.trafficProfiles(r.Context(), c), nil
}

// trafficProfiles asks the traffic manager about every profile a plan's
// DNS action names; an unreachable one is reported per profile.
func (s *Server) trafficProfiles(ctx context.Context, c *protection.Config) []api.TrafficProfile {
	out := []api.TrafficProfile{}
	if c.Traffic == nil {
		return out
	}
	names := dnsProfiles(c)
	tr, err := s.orch.Traffic(c.Traffic)
	for _, n := range names {
		tp := api.TrafficProfile{Name: n, Endpoints: []api.TrafficEndpoint{}}
		if err != nil {
			tp.Error = err.Error()
			out = append(out, tp)
			continue
		}
		ps, perr := tr.Profile(ctx, n)
		if perr != nil {
			tp.Error = perr.Error()
			out = append(out, tp)
			continue
		}
		tp.Routing, tp.State = ps.Routing, ps.State
		for _, e := range ps.Endpoints {
			tp.Endpoints = append(tp.Endpoints, api.TrafficEndpoint{Name: e.Name, Target: e.Target, Enabled: e.Enabled,
				Priority: e.Priority, State: e.State, LastError: e.LastError})
		}
		out = append(out, tp)
	}
	return out
}
