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
	rrl      *rateLimiter // nil: no rate limiting; a reload starts afresh
	files    serverFiles
	tsig     map[string]tsigKey // by canonical key name
	xfr      *xfrConf           // nil: no zone transfers
	sec      *secConf           // nil: unsigned
	signer   *signer            // keys and signatures when sec is set
	cluster  *clusterConf       // nil: no peers
}

type zone struct {
	origin string
	soa    *dns.SOA
	names  map[string]*node // every existing name, including empty non-terminals
	wild   bool             // some name is a wildcard ("*" leftmost)
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

// lookup finds the zone and node of a name; node is nil for NXDOMAIN. A
// name that does not exist takes the wildcard of its closest encloser
// (RFC 4592), answered under the asked name.
func (t *table) lookup(name string) (*zone, *node) {
	z := t.findZone(name)
	if z == nil {
		return nil, nil
	}
	if n := z.names[name]; n != nil || !z.wild {
		return z, n
	}
	return z, z.wildcard(name)
}

// wildcard finds the closest encloser, the nearest existing ancestor (empty
// non-terminals exist too), and synthesises from its "*" child if any.
func (z *zone) wildcard(name string) *node {
	for off, end := dns.NextLabel(name, 0); !end && len(name)-off >= len(z.origin); off, end = dns.NextLabel(name, off) {
		if z.names[name[off:]] == nil {
			continue
		}
		w := z.names["*."+name[off:]]
		if w == nil {
			return nil
		}
		return w.synthesize(name)
	}
	return nil
}

// synthesize copies a wildcard node's records under owner; a profile answers
// under the asked name anyway.
func (n *node) synthesize(owner string) *node {
	out := &node{profile: n.profile, rrs: make([]dns.RR, len(n.rrs))}
	for i, rr := range n.rrs {
		out.rrs[i] = dns.Copy(rr)
		out.rrs[i].Header().Name = owner
	}
	return out
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
	z.wild = z.wild || strings.HasPrefix(name, "*.")
	for off, end := dns.NextLabel(name, 0); !end && len(name[off:]) >= len(z.origin); off, end = dns.NextLabel(name, off) {
		if z.names[name[off:]] == nil {
			z.names[name[off:]] = &node{}
		}
	}
	return n
}

func canonical(name string) string { return strings.ToLower(dns.Fqdn(name)) }

// badWildcard reports a '*' that RFC 4592 takes literally (anywhere but as
// the whole leftmost label): serving it so would silently differ from what
// the operator meant.
func badWildcard(name string) bool {
	for i, l := range dns.SplitDomainName(name) {
		if strings.Contains(l, "*") && (i > 0 || l != "*") {
			return true
		}
	}
	return false
}
