package dns

import (
	"cmp"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// zoneRecords is the zone as a secondary gets it, without the SOA: static
// records as configured, and each profile's current answer as plain
// records (what a client with no particular address would get now).
// The order is canonical (RFC 4034 6.1), so two snapshots compare equal
// exactly when their contents do.
func zoneRecords(t *table, z *zone) []dns.RR {
	var out []dns.RR
	for name, n := range z.names {
		if n.profile != nil {
			out = append(out, steadyRRs(n.profile, name)...)
			continue
		}
		for _, rr := range n.rrs {
			if rr.Header().Rrtype != dns.TypeSOA {
				out = append(out, rr)
			}
		}
	}
	slices.SortFunc(out, compareRR)
	return slices.CompactFunc(out, dns.IsDuplicate)
}

// steadyRRs is a profile's answer for the zone file: the A and AAAA (or
// CNAME) records routing picks now for a client it knows nothing about.
func steadyRRs(p *profile, owner string) []dns.RR {
	var out []dns.RR
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		eps := p.steady(qt)
		if len(eps) > 0 && eps[0].cname != "" {
			return []dns.RR{&dns.CNAME{Hdr: hdr(owner, dns.TypeCNAME, p.answerTTL()), Target: eps[0].cname}}
		}
		for _, e := range eps {
			out = appendAddr(out, owner, p.answerTTL(), e.addr, qt)
		}
	}
	return out
}

// steady is route without chance: weighted routing takes the healthy
// endpoint of highest weight, multivalue the first healthy ones in config
// order, so the zone changes only when health or configuration does.
func (p *profile) steady(qtype uint16) []*endpoint {
	pk := p.route(client{qtype: qtype})
	if pk.allDown && p.servfail {
		return nil
	}
	if pk.none || (p.routing != Weighted && p.routing != MultiValue) {
		return pk.eps
	}
	ok := p.healthy()
	if p.healthyCount() == 0 {
		ok = func(e *endpoint) bool { return e.enabled.Load() }
	}
	var out []*endpoint
	var best *endpoint
	for _, e := range p.endpoints {
		switch {
		case !ok(e) || !familyFits(e, qtype):
		case p.routing == Weighted:
			if best == nil || e.weight.Load() > best.weight.Load() {
				best = e
			}
		case e.child != nil:
			out = append(out, e.child.steady(qtype)...)
		default:
			out = append(out, e)
		}
	}
	switch {
	case best != nil && best.child != nil:
		return best.child.steady(qtype)
	case best != nil:
		return []*endpoint{best}
	}
	return out[:min(len(out), p.maxAnswers)]
}

// compareRR orders records canonically by owner, then type, then data.
func compareRR(a, b dns.RR) int {
	if c := compareNames(a.Header().Name, b.Header().Name); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Header().Rrtype, b.Header().Rrtype); c != 0 {
		return c
	}
	return strings.Compare(a.String(), b.String())
}

// compareNames is the canonical DNS name order (RFC 4034 6.1): label by
// label from the right, case-insensitively, shorter first.
func compareNames(a, b string) int {
	la, lb := dns.SplitDomainName(strings.ToLower(a)), dns.SplitDomainName(strings.ToLower(b))
	for i, j := len(la)-1, len(lb)-1; i >= 0 && j >= 0; i, j = i-1, j-1 {
		if c := strings.Compare(unescape(la[i]), unescape(lb[j])); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(la), len(lb))
}

// unescape turns the presentation form of a label (\000, \.) into its bytes
// for ordering.
func unescape(l string) string {
	if !strings.Contains(l, `\`) {
		return l
	}
	var b strings.Builder
	for i := 0; i < len(l); i++ {
		if l[i] == '\\' && i+3 < len(l) && isDigits(l[i+1:i+4]) {
			b.WriteByte((l[i+1]-'0')*100 + (l[i+2]-'0')*10 + l[i+3] - '0')
			i += 3
			continue
		}
		if l[i] == '\\' && i+1 < len(l) {
			i++
		}
		b.WriteByte(l[i])
	}
	return b.String()
}

func isDigits(s string) bool {
	return len(s) == 3 && strings.Trim(s, "0123456789") == ""
}
