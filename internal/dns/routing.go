package dns

import (
	"math/rand/v2"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// client is what routing may depend on.
type client struct {
	addr  netip.Addr // ECS address when present, else the resolver's
	qtype uint16
}

// pick is a routing decision.
type pick struct {
	eps     []*endpoint // address or CNAME endpoints, nested ones flattened
	allDown bool        // no endpoint was healthy
	none    bool        // no endpoint is enabled at all
	scope   int         // ECS scope prefix length of the decision
}

type healthFn func(*endpoint) bool

// route applies the profile's routing method to its healthy endpoints and
// falls back (fail open or not) when none is healthy.
func (p *profile) route(c client) pick {
	if p.healthyCount() > 0 {
		eps, scope := p.method(c, func(e *endpoint) bool { return e.state(p).Routable() })
		return pick{eps: p.flatten(c, eps), scope: scope}
	}
	enabled := func(e *endpoint) bool { return e.enabled.Load() }
	var all []*endpoint
	for _, e := range p.endpoints {
		if enabled(e) {
			all = append(all, e)
		}
	}
	switch {
	case len(all) == 0 || !p.enabled:
		return pick{none: true}
	case p.servfail:
		return pick{allDown: true}
	}
	// Fail open: every enabled endpoint, so clients can try them all; a
	// CNAME cannot share a name, so then route as if all were healthy.
	for _, e := range all {
		if e.cname != "" {
			all, _ = p.method(c, enabled)
			break
		}
	}
	return pick{eps: p.flatten(c, all), allDown: true}
}

func (p *profile) flatten(c client, eps []*endpoint) []*endpoint {
	var out []*endpoint
	for _, e := range eps {
		if e.child == nil {
			out = append(out, e)
			continue
		}
		out = append(out, e.child.route(c).eps...)
	}
	return out
}

func (p *profile) method(c client, ok healthFn) ([]*endpoint, int) {
	switch p.routing {
	case Weighted:
		return one(p.weighted(ok)), 0
	case MultiValue:
		return p.multivalue(c, ok), 0
	case Subnet:
		return p.subnet(c, ok)
	case Geographic:
		return p.geographic(c, ok)
	}
	return one(p.priority(ok)), 0
}

func one(e *endpoint) []*endpoint {
	if e == nil {
		return nil
	}
	return []*endpoint{e}
}

// priority: the healthy endpoint with the lowest priority number.
func (p *profile) priority(ok healthFn) *endpoint {
	var best *endpoint
	for _, e := range p.endpoints {
		if ok(e) && (best == nil || e.priority.Load() < best.priority.Load()) {
			best = e
		}
	}
	return best
}

// weighted: random among healthy endpoints, in proportion to weight.
func (p *profile) weighted(ok healthFn) *endpoint {
	var sum int32
	for _, e := range p.endpoints {
		if ok(e) {
			sum += max(e.weight.Load(), 0)
		}
	}
	if sum <= 0 {
		return nil
	}
	r := rand.Int32N(sum)
	for _, e := range p.endpoints {
		if !ok(e) {
			continue
		}
		if r -= max(e.weight.Load(), 0); r < 0 {
			return e
		}
	}
	return nil
}

// multivalue: up to maxAnswers healthy addresses of the asked family,
// starting at a random one so that load spreads over all of them.
func (p *profile) multivalue(c client, ok healthFn) []*endpoint {
	var cand []*endpoint
	for _, e := range p.endpoints {
		if ok(e) && familyFits(e, c.qtype) {
			cand = append(cand, e)
		}
	}
	if len(cand) <= p.maxAnswers {
		return cand
	}
	start := rand.IntN(len(cand))
	out := make([]*endpoint, 0, p.maxAnswers)
	for i := range p.maxAnswers {
		out = append(out, cand[(start+i)%len(cand)])
	}
	return out
}

func familyFits(e *endpoint, qtype uint16) bool {
	switch {
	case e.child != nil || !e.addr.IsValid():
		return true
	case qtype == dns.TypeA:
		return e.addr.Is4()
	case qtype == dns.TypeAAAA:
		return e.addr.Is6()
	}
	return true
}

// subnet: the healthy endpoint whose subnet matches the client most
// specifically; endpoints without subnets catch everyone else.
func (p *profile) subnet(c client, ok healthFn) ([]*endpoint, int) {
	var best, fallback *endpoint
	bits := -1
	for _, e := range p.endpoints {
		if !ok(e) {
			continue
		}
		if len(e.subnets) == 0 && fallback == nil {
			fallback = e
		}
		for _, s := range e.subnets {
			if s.Bits() > bits && s.Contains(c.addr) {
				best, bits = e, s.Bits()
			}
		}
	}
	if best == nil {
		return one(fallback), 0
	}
	return one(best), bits
}

// geographic: the healthy endpoint serving the client's region, else one
// serving WORLD.
func (p *profile) geographic(c client, ok healthFn) ([]*endpoint, int) {
	region, bits := p.geo.region(c.addr)
	if e := p.inRegion(region, ok); e != nil {
		return one(e), bits
	}
	return one(p.inRegion(worldRegion, ok)), bits
}

func (p *profile) inRegion(region string, ok healthFn) *endpoint {
	for _, e := range p.endpoints {
		if !ok(e) {
			continue
		}
		for _, r := range e.regions {
			if strings.EqualFold(r, region) {
				return e
			}
		}
	}
	return nil
}
