package dns

import (
	"net"
	"net/netip"

	"github.com/miekg/dns"
)

// ServeDNS implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	t := s.table.Load()
	remote := remoteAddr(w.RemoteAddr())
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	if udp && t.rrl != nil && s.rateLimited(w, r, t.rrl.check(remote)) {
		return
	}
	if s.special(w, r, t, remote) {
		return
	}
	rs := respond(t, r, remote)
	if udp {
		rs.minimalANY()
	}
	s.finish(t, r, rs)
	if udp {
		rs.m.Truncate(udpLimit(r))
	}
	signReply(w, r, rs.m)
	if err := w.WriteMsg(rs.m); err != nil {
		s.log.Debug("dns write", "err", err)
	}
	s.metrics.observe(rs)
}

// rateLimited drops or slips a limited answer before any work is spent on
// it; a slip is an empty truncated reply, which a real client retries over
// TCP and which is no larger than the query.
func (s *Server) rateLimited(w dns.ResponseWriter, r *dns.Msg, v rrlVerdict) bool {
	switch v {
	case rrlDrop:
		s.metrics.limited.WithLabelValues("drop").Inc()
		return true
	case rrlSlip:
		m := new(dns.Msg)
		m.SetReply(r)
		m.Truncated = true
		if err := w.WriteMsg(m); err != nil {
			s.log.Debug("dns write", "err", err)
		}
		s.metrics.limited.WithLabelValues("slip").Inc()
		return true
	}
	return false
}

// udpLimit is the reply size a UDP client accepts (RFC 6891).
func udpLimit(r *dns.Msg) int {
	if o := r.IsEdns0(); o != nil {
		return min(max(int(o.UDPSize()), dns.MinMsgSize), ednsSize)
	}
	return dns.MinMsgSize
}

func remoteAddr(a net.Addr) netip.Addr {
	switch v := a.(type) {
	case *net.UDPAddr:
		return v.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		return v.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}
