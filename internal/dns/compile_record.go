package dns

import (
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// compileRecord parses a static record with miekg/dns's zone-file parser, so
// every RR type it knows is accepted with its usual presentation format.
func compileRecord(e *errs, z *zone, rc *Record, ttl uint32, field string) {
	name, ok := relName(rc.Name, z.origin)
	if _, valid := dns.IsDomainName(name); !ok || !valid {
		e.add(rc.at.lineOf("name"), field+".name", "%q is not a name inside %s", rc.Name, z.origin)
		return
	}
	if badWildcard(name) {
		e.add(rc.at.lineOf("name"), field+".name", "%q: '*' is a wildcard only as the whole leftmost label (RFC 4592)", rc.Name)
		return
	}
	typ := strings.ToUpper(rc.Type)
	t, known := dns.StringToType[typ]
	switch {
	case !known:
		e.add(rc.at.lineOf("type"), field+".type", "unknown record type %q", rc.Type)
		return
	case t == dns.TypeSOA:
		e.add(rc.at.lineOf("type"), field+".type", "the SOA is built from the zone's fields")
		return
	case t == dns.TypeNS && name != z.origin:
		e.add(rc.at.lineOf("type"), field+".type", "delegations (NS below the apex) are not supported")
		return
	}
	rr, err := dns.NewRR(fmt.Sprintf("%s %d IN %s %s", name, orDefault(rc.TTL, ttl), typ, rc.Value))
	if err != nil || rr == nil {
		e.add(rc.at.lineOf("value"), field+".value", "%q is not a valid %s value", rc.Value, typ)
		return
	}
	n := z.addName(name)
	if n.profile != nil {
		e.add(rc.at.lineOf("name"), field+".name", "%s is a profile", name)
		return
	}
	if conflictsCNAME(n.rrs, t) {
		e.add(rc.at.lineOf("type"), field+".type", "a CNAME cannot share %s with other records", name)
		return
	}
	n.rrs = append(n.rrs, rr)
}

func conflictsCNAME(rrs []dns.RR, t uint16) bool {
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeCNAME || (t == dns.TypeCNAME && len(rrs) > 0) {
			return true
		}
	}
	return false
}
