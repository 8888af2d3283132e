package dns

import (
	"fmt"
	"strings"
	"time"

	"github.com/haven-dr/haven/internal/dns/health"
)

// UpdateEndpoint applies a run-time change; the next query sees it. The
// change is an Override: it is written to the state file before it takes
// effect, so an acknowledged change survives reloads and restarts, and a
// change that could not be kept is refused.
func (s *Server) UpdateEndpoint(profile, endpoint string, patch EndpointPatch) (EndpointStatus, error) {
	return s.UpdateEndpointAt(profile, endpoint, patch, 0)
}

// UpdateEndpointAt is UpdateEndpoint with the control plane's generation
// of the change (0: none, the server makes one); a change older than the
// endpoint's override is refused with ErrStaleGeneration.
func (s *Server) UpdateEndpointAt(profile, endpoint string, patch EndpointPatch, gen uint64) (EndpointStatus, error) {
	if err := patch.check(); err != nil {
		return EndpointStatus{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, e, err := s.table.Load().endpoint(profile, endpoint)
	if err != nil {
		return EndpointStatus{}, err
	}
	k := key(p.name, e.name)
	o := s.overrides()[k]
	if patch.Enabled != nil {
		o.Enabled = patch.Enabled
	}
	if patch.Priority != nil {
		o.Priority = patch.Priority
	}
	if patch.Weight != nil {
		o.Weight = patch.Weight
	}
	if o.Generation, err = nextGen(o.Generation, gen); err != nil {
		return EndpointStatus{}, err
	}
	o.Changed = time.Now().UTC()
	if err := s.keep(s.overrides().with(k, o)); err != nil {
		return EndpointStatus{}, err
	}
	o.apply(e)
	s.log.Info("endpoint changed through the API", "profile", p.name, "endpoint", e.name,
		"enabled", e.enabled.Load(), "priority", e.priority.Load(), "weight", e.weight.Load())
	return s.overrides().endpointStatus(p, e), nil
}

// ResetEndpoint drops the API's override of an endpoint: the config's
// values apply again, now and after restarts.
func (s *Server) ResetEndpoint(profile, endpoint string) (EndpointStatus, error) {
	return s.ResetEndpointAt(profile, endpoint, 0)
}

// ResetEndpointAt is ResetEndpoint with a generation. In a cluster (or
// with a generation) the reset is kept as an empty override carrying its
// generation, so a peer's older override cannot come back over it.
func (s *Server) ResetEndpointAt(profile, endpoint string, gen uint64) (EndpointStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, e, err := s.table.Load().endpoint(profile, endpoint)
	if err != nil {
		return EndpointStatus{}, err
	}
	k := key(p.name, e.name)
	g, err := nextGen(s.overrides()[k].Generation, gen)
	if err != nil {
		return EndpointStatus{}, err
	}
	next := s.overrides().without(k)
	if gen != 0 || s.clustered() {
		next = s.overrides().with(k, Override{Generation: g, Changed: time.Now().UTC()})
	}
	if err := s.keep(next); err != nil {
		return EndpointStatus{}, err
	}
	e.reset()
	s.log.Info("endpoint override dropped through the API", "profile", p.name, "endpoint", e.name)
	return s.overrides().endpointStatus(p, e), nil
}

// keep persists next and then makes it current; s.mu is held.
func (s *Server) keep(next overrides) error {
	if err := next.save(s.statePath); err != nil {
		return fmt.Errorf("change not applied: saving %s: %w", s.statePath, err)
	}
	s.ovr.Store(&next)
	return nil
}

// overrides are replaced (under s.mu), never mutated, so readers need no lock.
func (s *Server) overrides() overrides { return *s.ovr.Load() }

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

func (o Override) apply(e *endpoint) {
	if o.Enabled != nil {
		e.enabled.Store(*o.Enabled)
	}
	if o.Priority != nil {
		e.priority.Store(int32(*o.Priority))
	}
	if o.Weight != nil {
		e.weight.Store(int32(*o.Weight))
	}
}

func (e *endpoint) reset() {
	e.enabled.Store(e.conf.Enabled)
	e.priority.Store(int32(e.conf.Priority))
	e.weight.Store(int32(e.conf.Weight))
}

// applyOverrides carries API changes into a freshly compiled table, keeping
// the config's values for status and reset. Overrides of endpoints the
// config no longer has are kept (the endpoint may come back) and logged.
func (s *Server) applyOverrides(t *table) {
	ov := s.overrides()
	used := map[string]bool{}
	for _, p := range t.profiles {
		for _, e := range p.endpoints {
			e.conf = EndpointValues{Enabled: e.enabled.Load(), Priority: int(e.priority.Load()), Weight: int(e.weight.Load())}
			if o, ok := ov[key(p.name, e.name)]; ok {
				o.apply(e)
				used[key(p.name, e.name)] = true
			}
		}
	}
	for k := range ov {
		if !used[k] {
			p, e, _ := strings.Cut(k, "\x00")
			s.log.Warn("API override kept for an endpoint the config does not have", "profile", p, "endpoint", e)
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

func (ov overrides) profileStatus(p *profile) ProfileStatus {
	st := ProfileStatus{Name: p.name, Routing: p.routing, TTL: p.ttl, Enabled: p.enabled, State: p.state()}
	for _, e := range p.endpoints {
		st.Endpoints = append(st.Endpoints, ov.endpointStatus(p, e))
	}
	return st
}

func (ov overrides) endpointStatus(p *profile, e *endpoint) EndpointStatus {
	st := e.status(p)
	st.Config = e.conf
	if o, ok := ov[key(p.name, e.name)]; ok && !o.empty() {
		st.Override = &o
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
