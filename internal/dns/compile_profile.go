package dns

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

func compileProfiles(e *errs, t *table, c *Config) {
	byName := map[string]*profile{}
	nested := map[*endpoint]*Endpoint{}
	for i := range c.Profiles {
		pc := &c.Profiles[i]
		field := fmt.Sprintf("profiles[%d]", i)
		p := compileProfile(e, t, c, pc, field, nested)
		if p != nil {
			byName[p.name] = p
			t.profiles = append(t.profiles, p)
		}
	}
	linkNested(e, byName, nested)
}

func compileProfile(e *errs, t *table, c *Config, pc *Profile, field string, nested map[*endpoint]*Endpoint) *profile {
	p := &profile{
		name: canonical(pc.Name), routing: strings.ToLower(orDefault(pc.Routing, Priority)),
		ttl: defaultProfileTTL, enabled: pc.Enabled == nil || *pc.Enabled,
		maxAnswers: orDefault(pc.MaxAnswers, defaultMaxAnswers),
	}
	if pc.TTL != nil {
		p.ttl = *pc.TTL // 0 is allowed: no caching at all
	}
	if !placeProfile(e, t, pc, p, field) {
		return nil
	}
	checkRouting(e, c, pc, p, field)
	spec := compileMonitor(e, pc.Monitor, field+".monitor")
	if len(pc.Endpoints) == 0 {
		e.add(pc.at.lineOf("endpoints"), field+".endpoints", "at least one endpoint is required")
	}
	seen := map[string]bool{}
	for i := range pc.Endpoints {
		ec := &pc.Endpoints[i]
		ef := fmt.Sprintf("%s.endpoints[%d]", field, i)
		if seen[ec.Name] {
			e.add(ec.at.lineOf("name"), ef+".name", "endpoint %q is listed twice", ec.Name)
		}
		seen[ec.Name] = true
		ep := compileEndpoint(e, p, ec, i, ef)
		if ep.child == nil && ec.Profile != "" {
			nested[ep] = ec
		}
		if spec != nil && !ec.AlwaysServe && ec.Profile == "" {
			s := *spec
			ep.spec = &s
		}
		p.endpoints = append(p.endpoints, ep)
	}
	return p
}

// placeProfile puts the profile's name into its zone.
func placeProfile(e *errs, t *table, pc *Profile, p *profile, field string) bool {
	if _, ok := dns.IsDomainName(pc.Name); !ok || pc.Name == "" {
		e.add(pc.at.lineOf("name"), field+".name", "%q is not a domain name", pc.Name)
		return false
	}
	z := t.findZone(p.name)
	switch {
	case badWildcard(p.name):
		e.add(pc.at.lineOf("name"), field+".name", "%q: '*' is a wildcard only as the whole leftmost label (RFC 4592)", pc.Name)
		return false
	case z == nil:
		e.add(pc.at.lineOf("name"), field+".name", "%s is not inside any zone", p.name)
		return false
	case z.origin == p.name:
		e.add(pc.at.lineOf("name"), field+".name", "a profile cannot be a zone apex")
		return false
	}
	n := z.addName(p.name)
	if n.profile != nil || len(n.rrs) > 0 {
		e.add(pc.at.lineOf("name"), field+".name", "%s is already defined", p.name)
		return false
	}
	n.profile = p
	return true
}

func checkRouting(e *errs, c *Config, pc *Profile, p *profile, field string) {
	switch p.routing {
	case Priority, Weighted, MultiValue, Subnet:
	case Geographic:
		if pc.GeoFile == "" {
			e.add(pc.at.lineOf("routing"), field+".geo_file", "geographic routing needs a geo_file")
			break
		}
		g, err := loadGeo(c.path(pc.GeoFile))
		if err != nil {
			e.add(pc.at.lineOf("geo_file"), field+".geo_file", "%v", err)
		}
		p.geo = g
	default:
		e.add(pc.at.lineOf("routing"), field+".routing", "unknown routing method %q (want priority, weighted, multivalue, subnet or geographic)", pc.Routing)
	}
	switch pc.AllDown {
	case "", "fail_open", "failopen":
	case "servfail":
		p.servfail = true
	default:
		e.add(pc.at.lineOf("all_down"), field+".all_down", "%q is neither fail_open nor servfail", pc.AllDown)
	}
	if p.maxAnswers < 1 || p.maxAnswers > 64 {
		e.add(pc.at.lineOf("max_answers"), field+".max_answers", "must be between 1 and 64")
	}
}

func compileEndpoint(e *errs, p *profile, ec *Endpoint, i int, field string) *endpoint {
	ep := &endpoint{name: ec.Name, minHealthy: orDefault(ec.MinHealthy, 1), regions: ec.Regions}
	ep.enabled.Store(ec.Enabled == nil || *ec.Enabled)
	ep.priority.Store(int32(orDefault(ec.Priority, i+1)))
	ep.weight.Store(int32(orDefault(ec.Weight, 1)))
	if ec.Name == "" {
		e.add(ec.at.line, field+".name", "an endpoint needs a name")
	}
	compileTarget(e, p, ec, ep, field)
	if w := ec.Weight; w < 0 || w > 1000 {
		e.add(ec.at.lineOf("weight"), field+".weight", "must be between 1 and 1000")
	}
	if pr := ec.Priority; pr < 0 || pr > 1000 {
		e.add(ec.at.lineOf("priority"), field+".priority", "must be between 1 and 1000")
	}
	for _, s := range ec.Subnets {
		pfx, err := parsePrefix(s)
		if err != nil {
			e.add(ec.at.lineOf("subnets"), field+".subnets", "%q is not a subnet", s)
		}
		ep.subnets = append(ep.subnets, pfx)
	}
	if p.routing == Geographic && len(ec.Regions) == 0 {
		e.add(ec.at.line, field+".regions", "geographic routing needs regions on every endpoint")
	}
	return ep
}

func compileTarget(e *errs, p *profile, ec *Endpoint, ep *endpoint, field string) {
	switch {
	case ec.Profile != "" && ec.Target != "":
		e.add(ec.at.lineOf("profile"), field+".profile", "set either target or profile, not both")
	case ec.Profile != "":
		if _, ok := dns.IsDomainName(ec.Profile); !ok {
			e.add(ec.at.lineOf("profile"), field+".profile", "%q is not a profile name", ec.Profile)
		}
	case ec.Target == "":
		e.add(ec.at.line, field+".target", "an endpoint needs a target")
	default:
		if a, err := netip.ParseAddr(ec.Target); err == nil {
			ep.addr, ep.probeHost = a.Unmap(), a.Unmap().String()
		} else if _, ok := dns.IsDomainName(ec.Target); ok && !strings.ContainsAny(ec.Target, " /:") {
			ep.cname, ep.probeHost = canonical(ec.Target), strings.TrimSuffix(ec.Target, ".")
		} else {
			e.add(ec.at.lineOf("target"), field+".target", "%q is neither an IP address nor a host name", ec.Target)
		}
	}
	if ep.cname != "" && p.routing == MultiValue {
		e.add(ec.at.lineOf("target"), field+".target", "multivalue endpoints must be IP addresses")
	}
	if ec.ProbeAddr != "" {
		ep.probeHost = ec.ProbeAddr
	}
}

func parsePrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, err
	}
	return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()).Masked(), nil
}

// linkNested resolves endpoints that name another profile and rejects loops.
func linkNested(e *errs, byName map[string]*profile, nested map[*endpoint]*Endpoint) {
	for ep, ec := range nested {
		child := byName[canonical(ec.Profile)]
		if child == nil {
			e.add(ec.at.lineOf("profile"), "endpoint "+ec.Name+".profile", "no profile named %q", ec.Profile)
			continue
		}
		ep.child = child
	}
	for _, p := range byName {
		if cycle(p, map[*profile]bool{}) {
			e.add(0, "profiles", "nested profile %s contains itself", p.name)
			return
		}
	}
}

func cycle(p *profile, onPath map[*profile]bool) bool {
	if onPath[p] {
		return true
	}
	onPath[p] = true
	defer delete(onPath, p)
	for _, ep := range p.endpoints {
		if ep.child != nil && cycle(ep.child, onPath) {
			return true
		}
	}
	return false
}
