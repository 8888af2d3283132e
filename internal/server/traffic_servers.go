package server

import (
	"context"
	"slices"
	"time"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/protection"
)

// trafficLoop is the control plane's side of keeping several `haven dns`
// servers in agreement: every TrafficInterval it asks each for its state,
// re-pushes the newest change of every endpoint to those that lack it (a
// server that was down or cut off), and keeps what each answers for the
// plans' profiles for `haven status` and the console.
func (s *Server) trafficLoop(ctx context.Context) {
	for {
		s.checkTraffic(ctx)
		// Until a plan names a traffic section there is nothing to look
		// at, but the first apply must not wait a whole interval for it.
		wait := s.cfg.TrafficInterval
		if s.dnsServers.Load() == nil {
			wait = min(wait, time.Second)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (s *Server) checkTraffic(ctx context.Context) {
	cfg, _, err := s.orch.Config(ctx)
	if err != nil || cfg.Traffic == nil {
		s.dnsServers.Store(nil)
		return
	}
	now := time.Now().UTC()
	out := []api.DNSServerStatus{}
	for _, st := range s.orch.TrafficServers(ctx, cfg.Traffic, dnsProfiles(cfg)) {
		ds := api.DNSServerStatus{Name: st.Name, Reachable: st.Reachable, Error: st.Error,
			Generation: st.Generation, Pushed: st.Pushed, Checked: now, Answers: []api.DNSAnswer{}}
		for _, p := range dnsProfiles(cfg) {
			a := st.Answers[p]
			ds.Answers = append(ds.Answers, api.DNSAnswer{Profile: p, Answers: a.Answers, Error: a.Error})
		}
		out = append(out, ds)
	}
	s.dnsServers.Store(&out)
}

// dnsProfiles are the profiles the plans' dns actions change.
func dnsProfiles(c *protection.Config) []string {
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
	return names
}

// dnsServerStatus is the traffic loop's last look, nil before the first.
func (s *Server) dnsServerStatus() []api.DNSServerStatus {
	if p := s.dnsServers.Load(); p != nil {
		return *p
	}
	return nil
}
