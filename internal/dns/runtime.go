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

// maxTTL is RFC 2181's largest TTL.
const maxTTL = 1<<31 - 1

// UpdateProfileAt overrides a profile's TTL (with a generation, as
// UpdateEndpointAt): a planned failover lowers it ahead of a cut-over, so
// resolvers hold the old answer for less time when it comes.
func (s *Server) UpdateProfileAt(profile string, patch ProfilePatch, gen uint64) (ProfileStatus, error) {
	if patch.TTL != nil && *patch.TTL > maxTTL {
		return ProfileStatus{}, fmt.Errorf("%w: ttl must be at most %d", ErrBadRequest, maxTTL)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.table.Load().profile(profile)
	if p == nil {
		return ProfileStatus{}, fmt.Errorf("profile %q: %w", profile, ErrNotFound)
	}
	k := key(p.name, "")
	o := s.overrides()[k]
	if patch.TTL != nil {
		o.TTL = patch.TTL
	}
	var err error
	if o.Generation, err = nextGen(o.Generation, gen); err != nil {
		return ProfileStatus{}, err
	}
	o.Changed = time.Now().UTC()
	if err := s.keep(s.overrides().with(k, o)); err != nil {
		return ProfileStatus{}, err
	}
	o.applyProfile(p)
	s.log.Info("profile changed through the API", "profile", p.name, "ttl", p.answerTTL())
	return s.overrides().profileStatus(p), nil
}

// ResetProfileAt drops the API's override of a profile: the config's TTL
// applies again (kept as an empty override with its generation, as
// ResetEndpointAt).
func (s *Server) ResetProfileAt(profile string, gen uint64) (ProfileStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.table.Load().profile(profile)
	if p == nil {
		return ProfileStatus{}, fmt.Errorf("profile %q: %w", profile, ErrNotFound)
	}
	k := key(p.name, "")
	g, err := nextGen(s.overrides()[k].Generation, gen)
	if err != nil {
		return ProfileStatus{}, err
	}
	next := s.overrides().without(k)
	if gen != 0 || s.clustered() {
		next = s.overrides().with(k, Override{Generation: g, Changed: time.Now().UTC()})
	}
	if err := s.keep(next); err != nil {
		return ProfileStatus{}, err
	}
	p.ttlOver.Store(0)
	s.log.Info("profile override dropped through the API", "profile", p.name, "ttl", p.answerTTL())
	return s.overrides().profileStatus(p), nil
}

// applyProfile sets a profile's override (or drops it, when o has none).
func (o Override) applyProfile(p *profile) {
	if o.TTL != nil {
		p.ttlOver.Store(int64(*o.TTL) + 1)
	} else {
		p.ttlOver.Store(0)
	}
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

// check is what a peer's or the state file's override must satisfy.
func (o Override) check() error {
	if o.TTL != nil && *o.TTL > maxTTL {
		return fmt.Errorf("%w: ttl must be at most %d", ErrBadRequest, maxTTL)
	}
	return EndpointPatch{Priority: o.Priority, Weight: o.Weight}.check()
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
		if o, ok := ov[key(p.name, "")]; ok {
			o.applyProfile(p)
			used[key(p.name, "")] = true
		}
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
	st := ProfileStatus{Name: p.name, Routing: p.routing, TTL: p.answerTTL(), ConfigTTL: p.ttl, Enabled: p.enabled, State: p.state()}
	if o, ok := ov[key(p.name, "")]; ok && !o.empty() {
		st.Override = &o
	}
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
