package dns

import (
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// ednsSize is the UDP payload size Haven advertises (DNS flag day 2020).
const ednsSize = 1232

// maxChase bounds CNAME chains followed inside Haven's own zones.
const maxChase = 8

// responder builds the reply to one query.
type responder struct {
	t     *table
	c     client
	q     dns.Question
	m     *dns.Msg
	ecs   *dns.EDNS0_SUBNET
	prof  *profile    // the profile queried, for metrics
	eps   []*endpoint // endpoints answered, for metrics
	scope int
	// wireOK: the reply depends only on the table, the question and (for
	// a profile) its endpoints' state, so the UDP fast path may keep it.
	wireOK bool
}

// respond answers a query against a table; it never panics on any message
// that miekg/dns could unpack (see FuzzRespond).
func respond(t *table, r *dns.Msg, remote netip.Addr) *responder {
	rs := &responder{t: t, c: client{addr: remote}, m: new(dns.Msg)}
	rs.m.SetReply(r)
	rs.m.RecursionAvailable = false
	opt := r.IsEdns0()
	if opt != nil {
		defer rs.addOPT()
		if opt.Version() != 0 {
			rs.m.Rcode = dns.RcodeBadVers
			return rs
		}
		rs.useECS(opt)
	}
	switch {
	case len(r.Question) != 1:
		rs.m.Rcode = dns.RcodeFormatError
	case r.Opcode != dns.OpcodeQuery:
		rs.m.Rcode = dns.RcodeNotImplemented
	default:
		rs.q = r.Question[0]
		rs.c.qtype = rs.q.Qtype
		rs.query()
	}
	return rs
}

func (rs *responder) useECS(opt *dns.OPT) {
	for _, o := range opt.Option {
		e, ok := o.(*dns.EDNS0_SUBNET)
		if !ok {
			continue
		}
		rs.ecs = e
		a, ok := netip.AddrFromSlice(e.Address)
		if pfx, err := a.Unmap().Prefix(int(e.SourceNetmask)); ok && err == nil && e.SourceNetmask > 0 {
			rs.c.addr = pfx.Addr() // bits past the source prefix must not steer routing
		}
	}
}

func (rs *responder) addOPT() {
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(ednsSize)
	if rs.ecs != nil {
		e := *rs.ecs
		// RFC 7871 7.2.1: a scope longer than the source prefix tells the
		// resolver that its prefix was too short to pick the answer; a /0
		// source asks for an answer that does not depend on the client.
		e.SourceScope = uint8(rs.scope)
		if e.SourceNetmask == 0 {
			e.SourceScope = 0
		}
		o.Option = append(o.Option, &e)
	}
	rs.m.Extra = append(rs.m.Extra, o)
}

func (rs *responder) query() {
	if rs.q.Qclass != dns.ClassINET && rs.q.Qclass != dns.ClassANY {
		rs.m.Rcode = dns.RcodeRefused
		return
	}
	name := strings.ToLower(rs.q.Name)
	z, n := rs.t.lookup(name)
	switch {
	case z == nil:
		rs.m.Rcode = dns.RcodeRefused // not ours, and no recursion
		return
	case rs.q.Qtype == dns.TypeAXFR || rs.q.Qtype == dns.TypeIXFR:
		rs.m.Rcode = dns.RcodeRefused // no zone transfers
		return
	}
	rs.m.Authoritative = true
	rs.wireOK = n != nil && (n.profile == nil || n.profile.wireRoutable())
	if n == nil {
		rs.negative(z, dns.RcodeNameError, -1)
		return
	}
	if n.profile != nil {
		rs.prof = n.profile
		rs.profileAnswer(z, n.profile)
		return
	}
	rs.staticAnswer(z, n)
}

// negative answers NXDOMAIN or NODATA with the SOA (RFC 2308); ttlCap keeps
// profile names from being negatively cached longer than their TTL.
func (rs *responder) negative(z *zone, rcode int, ttlCap int64) {
	rs.m.Rcode = rcode
	rs.m.Ns = append(rs.m.Ns, z.negSOA(ttlCap))
}

func (rs *responder) staticAnswer(z *zone, n *node) {
	rrs, cname := staticData(n, rs.q.Qtype)
	if len(rrs) == 0 {
		rs.negative(z, dns.RcodeSuccess, -1)
		return
	}
	rs.m.Answer = append(rs.m.Answer, rrs...)
	rs.chase(cname)
}

// staticData returns the records of a type at a node, or its CNAME.
func staticData(n *node, qtype uint16) ([]dns.RR, string) {
	var out []dns.RR
	for _, rr := range n.rrs {
		t := rr.Header().Rrtype
		if t == qtype || qtype == dns.TypeANY {
			out = append(out, rr)
		} else if c, ok := rr.(*dns.CNAME); ok {
			return []dns.RR{rr}, c.Target
		}
	}
	return out, ""
}

func (rs *responder) profileAnswer(z *zone, p *profile) {
	pk := p.route(rs.c)
	rs.scope = pk.scope
	rs.eps = pk.eps
	if pk.allDown {
		p.noteAllDown(p.servfail)
	} else {
		p.noteRecovered()
	}
	switch {
	case pk.none:
		rs.negative(z, dns.RcodeNameError, int64(p.answerTTL()))
		return
	case pk.allDown && p.servfail:
		rs.m.Rcode = dns.RcodeServerFailure
		return
	}
	rrs, cname := rs.endpointRRs(p.answerTTL(), pk.eps)
	if len(rrs) == 0 {
		rs.negative(z, dns.RcodeSuccess, int64(p.answerTTL()))
		return
	}
	rs.m.Answer = append(rs.m.Answer, rrs...)
	rs.chase(cname)
}

// endpointRRs turns picked endpoints into records of the asked type: one
// CNAME when the first pick is a name, else its A/AAAA records.
func (rs *responder) endpointRRs(ttl uint32, eps []*endpoint) ([]dns.RR, string) {
	owner := rs.q.Name
	if len(eps) > 0 && eps[0].cname != "" {
		return []dns.RR{&dns.CNAME{Hdr: hdr(owner, dns.TypeCNAME, ttl), Target: eps[0].cname}}, eps[0].cname
	}
	var out []dns.RR
	for _, e := range eps {
		out = appendAddr(out, owner, ttl, e.addr, rs.q.Qtype)
	}
	return out, ""
}

func appendAddr(out []dns.RR, owner string, ttl uint32, a netip.Addr, qtype uint16) []dns.RR {
	any := qtype == dns.TypeANY
	switch {
	case !a.IsValid():
	case a.Is4() && (qtype == dns.TypeA || any):
		out = append(out, &dns.A{Hdr: hdr(owner, dns.TypeA, ttl), A: net.IP(a.AsSlice())})
	case a.Is6() && (qtype == dns.TypeAAAA || any):
		out = append(out, &dns.AAAA{Hdr: hdr(owner, dns.TypeAAAA, ttl), AAAA: net.IP(a.AsSlice())})
	}
	return out
}

// chase follows a CNAME inside Haven's own zones, as authoritative servers
// do, so resolvers need no second query. Names elsewhere are left to them.
func (rs *responder) chase(target string) {
	if rs.q.Qtype == dns.TypeCNAME || rs.q.Qtype == dns.TypeANY {
		return
	}
	for i := 0; target != "" && i < maxChase; i++ {
		_, n := rs.t.lookup(strings.ToLower(target))
		if n == nil {
			return
		}
		var rrs []dns.RR
		if n.profile != nil {
			pk := n.profile.route(rs.c)
			rs.scope = max(rs.scope, pk.scope)
			rrs, target = rs.endpointRRsFor(target, n.profile.answerTTL(), pk.eps)
		} else {
			rrs, target = staticData(n, rs.q.Qtype)
		}
		rs.m.Answer = append(rs.m.Answer, rrs...)
	}
}

func (rs *responder) endpointRRsFor(owner string, ttl uint32, eps []*endpoint) ([]dns.RR, string) {
	q := rs.q
	rs.q.Name = owner
	defer func() { rs.q = q }()
	return rs.endpointRRs(ttl, eps)
}

// minimalANY keeps the smallest RRset of an ANY answer (RFC 8482 section
// 4.1): ANY over UDP is the classic amplification query, and a client that
// wants everything can ask over TCP, which keeps the full answer.
func (rs *responder) minimalANY() {
	if rs.q.Qtype != dns.TypeANY || len(rs.m.Answer) < 2 {
		return
	}
	size := map[uint16]int{}
	for _, rr := range rs.m.Answer {
		size[rr.Header().Rrtype] += dns.Len(rr)
	}
	keep := rs.m.Answer[0].Header().Rrtype
	for t, n := range size {
		if n < size[keep] || (n == size[keep] && t < keep) {
			keep = t
		}
	}
	rs.m.Answer = slices.DeleteFunc(rs.m.Answer, func(rr dns.RR) bool { return rr.Header().Rrtype != keep })
	rs.eps = slices.DeleteFunc(rs.eps, func(e *endpoint) bool {
		return e.addr.IsValid() && e.addr.Is4() != (keep == dns.TypeA)
	})
}
