package orchtest

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/haven-dr/haven/internal/dns"
	"github.com/haven-dr/haven/internal/protection"
)

// Traffic is a traffic manager (orchestrator.Traffic) with profiles of
// endpoints in memory. It answers as priority routing does: the targets
// of the enabled endpoints with the lowest priority number. Wire it with:
//
//	Traffic: func(*protection.Traffic) (Traffic, error) { return traffic, nil }
type Traffic struct {
	Faults

	mu       sync.Mutex
	profiles map[string][]dns.EndpointStatus
	down     map[string]string // profile/endpoint -> the prober's error
}

// SetDown makes the prober find endpoint of profile unhealthy (why != "")
// or healthy again (why == ""). Profile reports an enabled endpoint
// Online unless it is down (Degraded), a disabled one Disabled.
func (t *Traffic) SetDown(profile, endpoint, why string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.down == nil {
		t.down = map[string]string{}
	}
	if why == "" {
		delete(t.down, profile+"/"+endpoint)
		return
	}
	t.down[profile+"/"+endpoint] = why
}

// NewTraffic makes a traffic manager without profiles.
func NewTraffic() *Traffic { return &Traffic{profiles: map[string][]dns.EndpointStatus{}} }

// Dial matches orchestrator.TrafficDialer's shape.
func (t *Traffic) Dial(*protection.Traffic) (*Traffic, error) { return t, nil }

// AddProfile sets a profile's endpoints (name, target, enabled, priority
// are what the engine reads).
func (t *Traffic) AddProfile(name string, eps ...dns.EndpointStatus) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.profiles[name] = slices.Clone(eps)
}

// Endpoints returns a profile's endpoints now.
func (t *Traffic) Endpoints(profile string) []dns.EndpointStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.profiles[profile])
}

func (t *Traffic) Profile(ctx context.Context, name string) (dns.ProfileStatus, error) {
	done, err := t.enter(ctx, Call{Method: "Traffic.Profile", Machine: name})
	if err != nil {
		return dns.ProfileStatus{}, err
	}
	t.mu.Lock()
	eps, ok := slices.Clone(t.profiles[name]), t.profiles[name] != nil
	for i := range eps {
		why := t.down[name+"/"+eps[i].Name]
		switch {
		case eps[i].State != "":
		case !eps[i].Enabled:
			eps[i].State = "Disabled"
		case why != "":
			eps[i].State, eps[i].LastError = "Degraded", why
		default:
			eps[i].State = "Online"
		}
	}
	t.mu.Unlock()
	if !ok {
		return dns.ProfileStatus{}, done(fmt.Errorf("profile %s: 404 Not Found", name))
	}
	return dns.ProfileStatus{Name: name, Routing: "priority", Enabled: true, State: "Online",
		Endpoints: eps}, done(nil)
}

func (t *Traffic) UpdateEndpoint(ctx context.Context, profile, endpoint string, p dns.EndpointPatch) error {
	done, err := t.enter(ctx, Call{Method: "Traffic.UpdateEndpoint", Machine: profile + "/" + endpoint})
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	eps := t.profiles[profile]
	i := slices.IndexFunc(eps, func(e dns.EndpointStatus) bool { return e.Name == endpoint })
	if i < 0 {
		return done(fmt.Errorf("endpoint %s/%s: 404 Not Found", profile, endpoint))
	}
	if p.Enabled != nil {
		eps[i].Enabled = *p.Enabled
	}
	if p.Priority != nil {
		eps[i].Priority = *p.Priority
	}
	if p.Weight != nil {
		eps[i].Weight = *p.Weight
	}
	return done(nil)
}

// Answers returns what the profile resolves to now.
func (t *Traffic) Answers(ctx context.Context, name string) ([]string, error) {
	done, err := t.enter(ctx, Call{Method: "Traffic.Answers", Machine: name})
	if err != nil {
		return nil, err
	}
	return t.Answer(name), done(nil)
}

// Answer is what Answers returns, without recording a call or injecting
// a failure: for a test's own checks.
func (t *Traffic) Answer(name string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	best := 0
	var out []string
	for _, e := range t.profiles[name] {
		switch {
		case !e.Enabled:
		case out == nil || e.Priority < best:
			best, out = e.Priority, []string{e.Target}
		case e.Priority == best:
			out = append(out, e.Target)
		}
	}
	return out
}
