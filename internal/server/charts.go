package server

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/haven-dr/haven/internal/chart"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
)

// The console's pictures, drawn here as SVG (internal/chart) from the
// recorded history and the state: no script or library in the browser.

func writeSVG(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
}

// rpoChart: a machine's RPO against its target over the last day
// (?span=day, default) or month (?span=month), from the point history.
func (s *Server) rpoChart(w http.ResponseWriter, r *http.Request) {
	spans := map[string]time.Duration{"": 24 * time.Hour, "day": 24 * time.Hour, "month": 30 * 24 * time.Hour}
	span, ok := spans[r.URL.Query().Get("span")]
	if !ok {
		writeError(w, errStatus(http.StatusBadRequest, "span %q: want day or month", r.URL.Query().Get("span")))
		return
	}
	c, _, err := s.orch.Config(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	m := r.PathValue("machine")
	if c.Machine(m) == nil {
		writeError(w, fmt.Errorf("%w: no machine %q in the applied config", store.ErrNotFound, m))
		return
	}
	to := time.Now().UTC()
	from := to.Add(-span)
	recs, err := s.store.PointHistory(r.Context(), m, from, to)
	if err != nil {
		writeError(w, err)
		return
	}
	series, target := orchestrator.RPOSeries(recs, from, to)
	samples := make([]chart.Sample, len(series))
	for i, x := range series {
		samples[i] = chart.Sample{T: x.T, V: x.Seconds}
	}
	writeSVG(w, chart.RPO(fmt.Sprintf("RPO of %s, last %s", m, r.URL.Query().Get("span")), samples, target, from, to))
}

// timelineChart: a job's steps on one time axis.
func (s *Server) timelineChart(w http.ResponseWriter, r *http.Request) {
	j, err := s.store.Job(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	end := time.Now().UTC()
	if j.Ended != nil {
		end = *j.Ended
	}
	bars := make([]chart.Bar, len(j.Steps))
	for i, st := range j.Steps {
		bars[i] = chart.Bar{Name: st.Name, State: string(st.State), Start: st.Started, End: st.Ended}
	}
	writeSVG(w, chart.Timeline(fmt.Sprintf("job %s (%s of %s), %s", j.ID, j.Type, j.Plan, j.State), bars, j.Created, end))
}

// siteMapChart: where each plan's machines run now (primary, recovery,
// test copy) and what each DNS profile of the plans answers.
func (s *Server) siteMapChart(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c, _, err := s.orch.Config(ctx)
	if err != nil {
		writeError(w, err)
		return
	}
	sites := []chart.Site{{Name: "primary", Label: c.Sites.Primary}, {Name: "recovery", Label: c.Sites.Recovery}, {Name: "test", Label: "isolated test copies"}}
	for _, p := range c.Plans {
		st, err := s.store.PlanState(ctx, p.Name)
		if err != nil {
			writeError(w, err)
			return
		}
		at := 0 // primary
		if st.Phase != orchestrator.PhaseProtected {
			at = 1
		}
		for _, g := range p.Groups {
			for _, m := range g.Machines {
				sites[at].Machines = append(sites[at].Machines, p.Name+"/"+m)
				if st.Test != "" {
					sites[2].Machines = append(sites[2].Machines, p.Name+"/"+m)
				}
			}
		}
	}
	writeSVG(w, chart.SiteMap("sites and DNS now", sites, s.dnsAnswers(r, c)))
}

// dnsAnswers asks the DNS server what each profile answers, and which
// site an answer leads to: the endpoint whose target it is, at the site
// the plans' dns actions send customers to with it (a failover action's
// endpoint is at the recovery site, a failback one's at the primary).
func (s *Server) dnsAnswers(r *http.Request, c *protection.Config) []chart.DNS {
	var out []chart.DNS
	profiles := s.trafficProfiles(r.Context(), c)
	if len(profiles) == 0 {
		return nil // no traffic manager, or no plan names a profile
	}
	tr, terr := s.orch.Traffic(c.Traffic)
	for _, p := range profiles {
		d := chart.DNS{Profile: p.Name, Err: p.Error}
		if terr == nil && d.Err == "" {
			ans, err := tr.Answers(r.Context(), p.Name)
			if err != nil {
				d.Err = err.Error()
			}
			d.Answers = ans
		}
		for _, e := range p.Endpoints {
			if e.Target != "" && slices.Contains(d.Answers, e.Target) {
				d.Site = endpointSite(c, p.Name, e.Name)
			}
		}
		out = append(out, d)
	}
	return out
}

// endpointSite is the site (chart.Site.Name) of a profile's endpoint, as
// the plans' dns actions place it; "" when no action names it.
func endpointSite(c *protection.Config, profile, endpoint string) string {
	for _, p := range c.Plans {
		for _, g := range p.Groups {
			for _, a := range append(slices.Clone(g.Before), g.After...) {
				if a.Type != protection.ActionDNS || a.Profile != profile || a.Endpoint != endpoint || len(a.Directions) != 1 {
					continue
				}
				if a.Directions[0] == "failover" {
					return "recovery"
				}
				return "primary"
			}
		}
	}
	return ""
}
