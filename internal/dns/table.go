package dns

import (
	"strings"

	"github.com/miekg/dns"
)

// table is one compiled configuration: immutable except for the endpoint
// fields the API changes (atomics). A reload swaps in a new table.
type table struct {
	zones    map[string]*zone // by origin, lower case, fully qualified
	profiles []*profile
	listen   string
	api      string
}

type zone struct {
	origin string
	soa    *dns.SOA
	names  map[string]*node // every existing name, including empty non-terminals
}

// node is what exists at one name: static records or a profile.
type node struct {
	rrs     []dns.RR
	profile *profile
}

// findZone returns the closest enclosing zone of a lower-case FQDN.
func (t *table) findZone(name string) *zone {
	for off, end := 0, false; !end; off, end = dns.NextLabel(name, off) {
		if z := t.zones[name[off:]]; z != nil {
			return z
		}
	}
	return nil
}

// lookup finds the zone and node of a name; node is nil for NXDOMAIN.
func (t *table) lookup(name string) (*zone, *node) {
	z := t.findZone(name)
	if z == nil {
		return nil, nil
	}
	return z, z.names[name]
}

// negSOA is the SOA for the authority section of a negative answer: its TTL
// is the negative-caching TTL (RFC 2308), capped by cap when cap >= 0.
func (z *zone) negSOA(cap int64) dns.RR {
	soa := *z.soa
	soa.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
	if cap >= 0 && int64(soa.Hdr.Ttl) > cap {
		soa.Hdr.Ttl = uint32(cap)
	}
	return &soa
}

// addName records a name and all its ancestors up to the origin, so
// empty non-terminals answer NODATA rather than NXDOMAIN.
func (z *zone) addName(name string) *node {
	n := z.names[name]
	if n == nil {
		n = &node{}
		z.names[name] = n
	}
	for off, end := dns.NextLabel(name, 0); !end && len(name[off:]) >= len(z.origin); off, end = dns.NextLabel(name, off) {
		if z.names[name[off:]] == nil {
			z.names[name[off:]] = &node{}
		}
	}
	return n
}

func canonical(name string) string { return strings.ToLower(dns.Fqdn(name)) }
