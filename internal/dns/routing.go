package dns

import (
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"slices"
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

// route applies the profile's routing method to its healthy endpoints. When
// none is healthy it fails open as Traffic Manager does: the same method as
// if every enabled endpoint were healthy, so a priority profile still names
// one site (never both: that would split clients between the sites).
func (p *profile) route(c client) pick {
	if p.healthyCount() > 0 {
		return p.decide(c, p.healthy(), false)
	}
	enabled := func(e *endpoint) bool { return e.enabled.Load() }
	switch {
	case !p.enabled || !slices.ContainsFunc(p.endpoints, enabled):
		return pick{none: true}
	case p.servfail:
		return pick{allDown: true}
	}
	return p.decide(c, enabled, true)
}

// decide routes among the endpoints ok accepts and resolves nested ones; the
// scope is the longest of the parent's and the children's (RFC 7871 7.2.1:
// the answer must hold for every client inside it).
func (p *profile) decide(c client, ok healthFn, allDown bool) pick {
	eps, scope := p.method(c, ok)
	out := pick{allDown: allDown, scope: scope}
	for _, e := range eps {
		if e.child == nil {
			out.eps = append(out.eps, e)
			continue
		}
		sub := e.child.route(c)
		out.eps = append(out.eps, sub.eps...)
		out.scope = max(out.scope, sub.scope)
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
		best = fallback
	}
	scope := max(bits, 0)
	for _, e := range p.endpoints {
		if ok(e) && e != best {
			scope = max(scope, excludeScope(c.addr, bits, e.subnets))
		}
	}
	return one(best), scope
}

// excludeScope is the shortest prefix length around a that leaves out every
// prefix more specific than the match (bits) that does not contain a: such
// a prefix decides differently, and a resolver caching a's answer for the
// whole scope would hand it to the clients inside it.
func excludeScope(a netip.Addr, bits int, prefixes []netip.Prefix) int {
	scope := 0
	for _, s := range prefixes {
		if s.Bits() > bits && s.Addr().Is4() == a.Is4() && !s.Contains(a) {
			scope = max(scope, commonBits(a, s.Addr())+1)
		}
	}
	return scope
}

// commonBits is the length of the common prefix of two same-family addresses.
func commonBits(a, b netip.Addr) int {
	x, y := a.As16(), b.As16()
	n := 0
	for i := range x {
		if d := x[i] ^ y[i]; d != 0 {
			n += bits.LeadingZeros8(d)
			break
		}
		n += 8
	}
	if a.Is4() {
		n -= 96
	}
	return n
}

// geographic: the healthy endpoint serving the client's region, else one
// serving WORLD.
func (p *profile) geographic(c client, ok healthFn) ([]*endpoint, int) {
	region, scope := p.geo.region(c.addr)
	if e := p.inRegion(region, ok); e != nil {
		return one(e), scope
	}
	return one(p.inRegion(worldRegion, ok)), scope
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
