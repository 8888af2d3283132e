package dns

import (
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// secure signs a reply for a resolver that asked for DNSSEC (DO bit).
// Denial is "black lies" (RFC 4470 minimally covering NSEC taken to its
// end, as Cloudflare serves): a name that does not exist gets NODATA with
// an NSEC at the name itself whose next name is its immediate successor
// (\000.name), so no answer walks the zone and nothing is signed ahead.
func (sg *signer) secure(t *table, rs *responder, now time.Time) error {
	m := rs.m
	name := strings.ToLower(rs.q.Name)
	z := t.findZone(name)
	if z == nil || (m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError) {
		return nil
	}
	if m.Rcode == dns.RcodeNameError {
		m.Rcode = dns.RcodeSuccess
		m.Ns = append(m.Ns, blackLie(rs.q.Name, z, nil))
	} else if len(m.Answer) == 0 {
		_, n := t.lookup(name)
		m.Ns = append(m.Ns, blackLie(rs.q.Name, z, typesAt(n, rs.q.Qtype)))
	}
	var err error
	if m.Answer, err = sg.signSection(z.origin, m.Answer, now); err != nil {
		return err
	}
	m.Ns, err = sg.signSection(z.origin, m.Ns, now)
	if o := m.IsEdns0(); o != nil {
		o.SetDo()
	}
	return err
}

// blackLie is the NSEC proving that name has none of the asked data: it
// exists with the types listed and nothing else.
func blackLie(name string, z *zone, types []uint16) dns.RR {
	types = append(types, dns.TypeNSEC, dns.TypeRRSIG)
	slices.Sort(types)
	return &dns.NSEC{
		Hdr:        hdr(name, dns.TypeNSEC, min(z.soa.Hdr.Ttl, z.soa.Minttl)),
		NextDomain: `\000.` + name,
		TypeBitMap: slices.Compact(types),
	}
}

// typesAt lists the types a NODATA answer's NSEC claims at a name: the
// static ones, or for a profile the address types other than the one asked
// (which of A or AAAA exists moves with health; a claim of one that is not
// there is harmless, a claim of the asked one would deny the denial).
func typesAt(n *node, qtype uint16) []uint16 {
	var out []uint16
	switch {
	case n == nil:
	case n.profile != nil:
		for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
			if t != qtype {
				out = append(out, t)
			}
		}
	default:
		for _, rr := range n.rrs {
			out = append(out, rr.Header().Rrtype)
		}
	}
	return out
}

// signZone adds what a secondary needs to serve the zone signed: an NSEC
// chain over every owner name (a secondary cannot lie on the fly) and an
// RRSIG over every RRset. rrs is canonical order with the SOA first.
func (sg *signer) signZone(origin string, soa *dns.SOA, rrs []dns.RR, now time.Time) ([]dns.RR, error) {
	all := append([]dns.RR{soa}, rrs...)
	var owners []string
	types := map[string][]uint16{}
	for _, rr := range all {
		o := strings.ToLower(rr.Header().Name)
		if _, ok := types[o]; !ok {
			owners = append(owners, o)
		}
		types[o] = append(types[o], rr.Header().Rrtype)
	}
	slices.SortFunc(owners, compareNames)
	for i, o := range owners {
		ts := append(types[o], dns.TypeNSEC, dns.TypeRRSIG)
		slices.Sort(ts)
		all = append(all, &dns.NSEC{Hdr: hdr(o, dns.TypeNSEC, min(soa.Hdr.Ttl, soa.Minttl)),
			NextDomain: owners[(i+1)%len(owners)], TypeBitMap: slices.Compact(ts)})
	}
	signed, err := sg.signSection(origin, all, now)
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(signed[1:], compareRR)
	return signed, nil
}

// oldestSig is when the first signature of a signed zone needs making anew.
func oldestSig(rrs []dns.RR) time.Time {
	var first time.Time
	for _, rr := range rrs {
		if s, ok := rr.(*dns.RRSIG); ok {
			exp := time.Unix(int64(s.Expiration), 0).Add(-sigRefresh)
			if first.IsZero() || exp.Before(first) {
				first = exp
			}
		}
	}
	return first
}

// finish brings a reply to what secondaries and validators see: the
// current zone serial in SOA records, and signatures when DNSSEC is on and
// the resolver asked for them.
func (s *Server) finish(t *table, r *dns.Msg, rs *responder) {
	if t.xfr != nil {
		s.versions.fixSerials(rs.m)
	}
	if t.signer == nil {
		return
	}
	if o := r.IsEdns0(); o == nil || !o.Do() {
		return
	}
	if err := t.signer.secure(t, rs, time.Now()); err != nil {
		s.log.Error("dnssec signing", "err", err)
		rs.m.Rcode = dns.RcodeServerFailure
		rs.m.Answer, rs.m.Ns = nil, nil
	}
}
