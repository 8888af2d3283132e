package dns

import (
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// xfrChunk bounds the records of one transfer message, well inside 64 KiB
// even for signed zones (the miekg/dns writer does not split messages).
const xfrChunk = 100

// special answers what is not a plain query: zone transfers, and requests
// whose TSIG did not verify (NOTAUTH, RFC 8945 5.2). It reports whether it
// answered.
func (s *Server) special(w dns.ResponseWriter, r *dns.Msg, t *table, remote netip.Addr) bool {
	xfr := len(r.Question) == 1 && (r.Question[0].Qtype == dns.TypeAXFR || r.Question[0].Qtype == dns.TypeIXFR)
	badSig := r.IsTsig() != nil && w.TsigStatus() != nil
	if !xfr && !badSig {
		return false
	}
	if xfr {
		s.transfer(w, r, t, remote)
		return true
	}
	s.log.Warn("request with a bad TSIG refused", "client", remote, "err", w.TsigStatus())
	s.reply(w, r, dns.RcodeNotAuth)
	return true
}

func (s *Server) reply(w dns.ResponseWriter, r *dns.Msg, rcode int) {
	m := new(dns.Msg)
	m.SetRcode(r, rcode)
	signReply(w, r, m) // a refusal to a good signature is signed too (RFC 8945 5.3)
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("dns write", "err", err)
	}
}

// transfer serves AXFR and IXFR (RFC 5936, 1995) of a zone to an allowed
// address with a valid TSIG of the zone_transfer key; everything else is
// REFUSED (NOTAUTH for a bad signature).
func (s *Server) transfer(w dns.ResponseWriter, r *dns.Msg, t *table, remote netip.Addr) {
	q := r.Question[0]
	kind := strings.ToLower(dns.TypeToString[q.Qtype])
	z := t.zones[canonical(q.Name)]
	why := ""
	switch {
	case t.xfr == nil:
		why = "zone transfer is not configured"
	case z == nil:
		why = "not a zone of this server"
	case !slices.ContainsFunc(t.xfr.allow, func(p netip.Prefix) bool { return p.Contains(remote) }):
		why = "address not in zone_transfer.allow"
	case r.IsTsig() == nil:
		why = "not signed with TSIG"
	case !signedBy(w, r, t.xfr.key):
		why = "bad TSIG"
	}
	if why != "" {
		s.versions.count.WithLabelValues(kind, "refused").Inc()
		s.log.Warn("zone transfer refused", "zone", q.Name, "type", kind, "client", remote, "reason", why)
		rcode := dns.RcodeRefused
		if why == "bad TSIG" {
			rcode = dns.RcodeNotAuth
		}
		s.reply(w, r, rcode)
		return
	}
	hist := s.versions.history(z.origin)
	if len(hist) == 0 {
		s.reply(w, r, dns.RcodeServerFailure) // the first version is made within versionTick
		return
	}
	rrs := answerXFR(r, q.Qtype, hist)
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp && len(rrs) > 1 {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Truncated = true // RFC 1995 2: too big for UDP, ask again over TCP
		m.Answer = rrs[:1]
		signReply(w, r, m)
		_ = w.WriteMsg(m)
		return
	}
	ch := make(chan *dns.Envelope, 1)
	go func() {
		defer close(ch)
		for i := 0; i < len(rrs); i += xfrChunk {
			ch <- &dns.Envelope{RR: rrs[i:min(i+xfrChunk, len(rrs))]}
		}
	}()
	tr := &dns.Transfer{TsigProvider: tsigProvider{s}}
	if err := tr.Out(w, r, ch); err != nil {
		s.log.Warn("zone transfer", "zone", z.origin, "client", remote, "err", err)
		for range ch {
		}
		return
	}
	s.versions.count.WithLabelValues(kind, "ok").Inc()
	s.log.Info("zone transferred", "zone", z.origin, "type", kind, "client", remote, "serial", hist[len(hist)-1].serial, "records", len(rrs))
}

// answerXFR is the record sequence of a transfer: for IXFR from a serial in
// the journal, one condensed difference (RFC 1995 4); from the current
// serial, the SOA alone; otherwise the whole zone as for AXFR.
func answerXFR(r *dns.Msg, qtype uint16, hist []*zoneVersion) []dns.RR {
	cur := hist[len(hist)-1]
	soa := cur.rrs[0]
	if qtype == dns.TypeIXFR {
		var have uint32
		ok := false
		for _, rr := range r.Ns {
			if s, isSOA := rr.(*dns.SOA); isSOA {
				have, ok = s.Serial, true
			}
		}
		if ok && later(have, cur.serial) == have {
			return []dns.RR{soa}
		}
		if i := slices.IndexFunc(hist, func(v *zoneVersion) bool { return ok && v.serial == have }); i >= 0 {
			return diff(hist[i], cur)
		}
	}
	return append(slices.Clone(cur.rrs), soa)
}

// diff is the IXFR sequence from version a to b: SOA(b), SOA(a), what a has
// and b has not, SOA(b), what b has and a has not, SOA(b).
func diff(a, b *zoneVersion) []dns.RR {
	in := func(v *zoneVersion) map[string]bool {
		m := map[string]bool{}
		for _, rr := range v.rrs[1:] {
			m[rr.String()] = true
		}
		return m
	}
	inA, inB := in(a), in(b)
	out := []dns.RR{b.rrs[0], a.rrs[0]}
	for _, rr := range a.rrs[1:] {
		if !inB[rr.String()] {
			out = append(out, rr)
		}
	}
	out = append(out, b.rrs[0])
	for _, rr := range b.rrs[1:] {
		if !inA[rr.String()] {
			out = append(out, rr)
		}
	}
	return append(out, b.rrs[0])
}
