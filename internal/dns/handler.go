package dns

import (
	"net"
	"net/netip"

	"github.com/miekg/dns"
)

// ServeDNS implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	rs := respond(s.table.Load(), r, remoteAddr(w.RemoteAddr()))
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		rs.m.Truncate(udpLimit(r))
	}
	if err := w.WriteMsg(rs.m); err != nil {
		s.log.Debug("dns write", "err", err)
	}
	s.metrics.observe(rs)
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
