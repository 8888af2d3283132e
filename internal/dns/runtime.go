package dns

import (
	"fmt"

	"github.com/haven-dr/haven/internal/dns/health"
)

// UpdateEndpoint applies a run-time change; the next query sees it. The
// change is kept across reloads (see override).
func (s *Server) UpdateEndpoint(profile, endpoint string, patch EndpointPatch) (EndpointStatus, error) {
	if err := patch.check(); err != nil {
		return EndpointStatus{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, e, err := s.table.Load().endpoint(profile, endpoint)
	if err != nil {
		return EndpointStatus{}, err
	}
	o := s.overrides[key(p.name, e.name)]
	if patch.Enabled != nil {
		o.enabled = patch.Enabled
	}
	if patch.Priority != nil {
		v := int32(*patch.Priority)
		o.priority = &v
	}
	if patch.Weight != nil {
		v := int32(*patch.Weight)
		o.weight = &v
	}
	s.overrides[key(p.name, e.name)] = o
	o.apply(e)
	s.log.Info("endpoint changed through the API", "profile", p.name, "endpoint", e.name,
		"enabled", e.enabled.Load(), "priority", e.priority.Load(), "weight", e.weight.Load())
	return e.status(p), nil
}

func (p EndpointPatch) check() error {
	if p.Priority != nil && (*p.Priority < 1 || *p.Priority > 1000) {
		return fmt.Errorf("%w: priority must be between 1 and 1000", ErrBadRequest)
	}
	if p.Weight != nil && (*p.Weight < 1 || *p.Weight > 1000) {
		return fmt.Errorf("%w: weight must be between 1 and 1000", ErrBadRequest)
	}
	return nil
}

func key(profile, endpoint string) string { return profile + "\x00" + endpoint }

func (o override) apply(e *endpoint) {
	if o.enabled != nil {
		e.enabled.Store(*o.enabled)
	}
	if o.priority != nil {
		e.priority.Store(*o.priority)
	}
	if o.weight != nil {
		e.weight.Store(*o.weight)
	}
}

// applyOverrides carries API changes into a freshly compiled table.
func (s *Server) applyOverrides(t *table) {
	for _, p := range t.profiles {
		for _, e := range p.endpoints {
			if o, ok := s.overrides[key(p.name, e.name)]; ok {
				o.apply(e)
			}
		}
	}
}

func (t *table) profile(name string) *profile {
	n := canonical(name)
	for _, p := range t.profiles {
		if p.name == n {
			return p
		}
	}
	return nil
}

func (t *table) endpoint(profile, endpoint string) (*profile, *endpoint, error) {
	p := t.profile(profile)
	if p == nil {
		return nil, nil, fmt.Errorf("profile %q: %w", profile, ErrNotFound)
	}
	for _, e := range p.endpoints {
		if e.name == endpoint {
			return p, e, nil
		}
	}
	return nil, nil, fmt.Errorf("endpoint %q of %s: %w", endpoint, p.name, ErrNotFound)
}

func (p *profile) status() ProfileStatus {
	st := ProfileStatus{Name: p.name, Routing: p.routing, TTL: p.ttl, Enabled: p.enabled, State: p.state()}
	for _, e := range p.endpoints {
		st.Endpoints = append(st.Endpoints, e.status(p))
	}
	return st
}

func (e *endpoint) status(p *profile) EndpointStatus {
	st := EndpointStatus{
		Name: e.name, Enabled: e.enabled.Load(), State: e.state(p).String(),
		Priority: int(e.priority.Load()), Weight: int(e.weight.Load()),
	}
	switch {
	case e.child != nil:
		st.Profile = e.child.name
	case e.cname != "":
		st.Target = e.cname
	default:
		st.Target = e.addr.String()
	}
	if e.checker != nil && e.state(p) == health.Degraded {
		st.LastError = e.checker.LastError()
	}
	return st
}

// stateChange logs every endpoint state change with its reason.
func (s *Server) stateChange(c *health.Checker, from, to health.State, reason string) {
	lvl := s.log.Info
	if to == health.Degraded {
		lvl = s.log.Warn
	}
	lvl("endpoint state changed", "profile", c.Profile, "endpoint", c.Endpoint,
		"from", from.String(), "to", to.String(), "reason", reason)
}
