package server

import (
	"context"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/haven-dr/haven/internal/protection"
)

// PointView is one recovery point of a machine, for the console's
// timeline: when, how consistent, and what the agent noted.
type PointView struct {
	ID          string            `json:"id"`
	Time        time.Time         `json:"time"`
	Consistency string            `json:"consistency"`
	Provider    string            `json:"provider,omitempty"`
	Group       string            `json:"group,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
}

func (s *Server) machinePoints(w http.ResponseWriter, r *http.Request) {
	c, _, err := s.orch.Config(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	name := r.PathValue("machine")
	if c.Machine(name) == nil {
		writeErr(w, http.StatusNotFound, "no machine "+name+" in the applied config")
		return
	}
	ps, err := s.vault.Points(r.Context(), name)
	if err != nil {
		writeError(w, err)
		return
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Time.After(ps[j].Time) })
	out := []PointView{}
	for _, p := range ps {
		out = append(out, PointView{ID: p.ID, Time: p.Time, Consistency: p.Consistency, Provider: p.Provider, Group: p.Group, Tags: p.Tags})
	}
	writeJSON(w, http.StatusOK, out)
}

// TrafficProfile is a traffic manager profile that a plan's DNS cut-over
// changes, with each endpoint's live state as `haven dns` reports it.
type TrafficProfile struct {
	Name      string            `json:"name"`
	Routing   string            `json:"routing"`
	State     string            `json:"state"`
	Endpoints []TrafficEndpoint `json:"endpoints"`
	// Error: the traffic manager could not be asked about this profile.
	Error string `json:"error,omitempty"`
}

// TrafficEndpoint is one endpoint of a profile.
type TrafficEndpoint struct {
	Name      string `json:"name"`
	Target    string `json:"target,omitempty"`
	Enabled   bool   `json:"enabled"`
	Priority  int    `json:"priority"`
	State     string `json:"state"`
	LastError string `json:"last_error,omitempty"`
}

func (s *Server) traffic(w http.ResponseWriter, r *http.Request) {
	c, _, err := s.orch.Config(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.trafficProfiles(r.Context(), c))
}

// trafficProfiles asks the traffic manager about every profile a plan's
// DNS action names; an unreachable one is reported per profile.
func (s *Server) trafficProfiles(ctx context.Context, c *protection.Config) []TrafficProfile {
	out := []TrafficProfile{}
	if c.Traffic == nil {
		return out
	}
	var names []string
	for _, p := range c.Plans {
		for _, g := range p.Groups {
			for _, a := range append(slices.Clone(g.Before), g.After...) {
				if a.Type == protection.ActionDNS && !slices.Contains(names, a.Profile) {
					names = append(names, a.Profile)
				}
			}
		}
	}
	tr, err := s.orch.Traffic(c.Traffic)
	for _, n := range names {
		tp := TrafficProfile{Name: n, Endpoints: []TrafficEndpoint{}}
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
			tp.Endpoints = append(tp.Endpoints, TrafficEndpoint{Name: e.Name, Target: e.Target, Enabled: e.Enabled,
				Priority: e.Priority, State: e.State, LastError: e.LastError})
		}
		out = append(out, tp)
	}
	return out
}
