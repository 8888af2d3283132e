package dns

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// The wire fast path answers plain UDP queries from packed replies kept per
// table, so the common query (a priority profile's A record) costs one
// read, a map lookup, a copy and one write: no unpack, no routing, no pack,
// no allocation. Each reply was produced by the general path (respond,
// finish, Pack) for the same question, so it is the same bytes except the
// ID and the case of the query's name, which are patched in.
//
// A profile's reply depends on its endpoints' health and API state, which
// change without a new table; every entry of a profile keeps the state it
// was built from, compared on each query (a few atomic loads), and a
// mismatch rebuilds it, so a health change shows in the very next answer.
// A signed reply (DO) is kept until its oldest signature is due for
// renewal, when the general path would sign anew.
//
// Anything unusual goes to miekg/dns and the general path: EDNS options
// (ECS, cookies), TSIG, more than one question or any other record, ANY,
// zone transfers, DO on a signed server with an upper-case name, replies larger than the client's
// UDP size, names that do not exist, profiles whose answer depends on the
// client or on chance (weighted, multivalue, subnet, geographic) or that
// chase a CNAME, and servers with rate limiting or zone transfers (RRL
// counts per client, and transfer serials change without a new table).
const (
	wireMaxEntries = 4096 // cached replies per table
	wireMaxMisses  = 1024 // names remembered as "general path only"
)

type wireCache struct {
	t      *table
	m      map[string]*wireEntry // by wireQuery.key
	misses int
}

type wireEntry struct {
	ok    bool   // false: this question always takes the general path
	wire  []byte // reply with ID 0
	names []int  // offsets of owner names copied from the question
	prof  *profile
	state []byte    // prof's endpoint state the reply was built from
	until time.Time // of a signed reply: when its oldest signature is renewed
	// counted as ServeDNS's metrics.observe would
	counters []prometheus.Counter
}

// wireQuery is what the fast path reads from a query packet.
type wireQuery struct {
	key   []byte // flags, qtype, qclass, OPT presence and TTL, lowercase name
	name  int    // length of the question's name in wire form
	limit int    // the client's UDP size
	do    bool
	upper bool // the name has upper-case letters
}

// parseWireQuery accepts only the plain query the fast path serves.
func parseWireQuery(q, key []byte) (wireQuery, bool) {
	wq := wireQuery{limit: dns.MinMsgSize}
	if len(q) < 17 || q[2]&0xFA != 0 || // QR, opcode, TC
		binary.BigEndian.Uint16(q[4:]) != 1 || binary.BigEndian.Uint16(q[6:]) != 0 ||
		binary.BigEndian.Uint16(q[8:]) != 0 || binary.BigEndian.Uint16(q[10:]) > 1 {
		return wq, false
	}
	key = append(key, q[2], q[3])
	i := 12
	for {
		if i >= len(q) {
			return wq, false
		}
		l := int(q[i])
		if l == 0 {
			i++
			break
		}
		if l&0xC0 != 0 || i+1+l > len(q) || i+1+l-12 > 254 {
			return wq, false
		}
		i += 1 + l
	}
	wq.name = i - 12
	if i+4 > len(q) {
		return wq, false
	}
	switch binary.BigEndian.Uint16(q[i:]) {
	case dns.TypeANY, dns.TypeAXFR, dns.TypeIXFR, dns.TypeOPT, dns.TypeTSIG:
		return wq, false
	}
	key = append(key, q[i:i+4]...)
	i += 4
	if binary.BigEndian.Uint16(q[10:]) == 1 {
		// OPT: root owner, type 41, UDP size, TTL (ext. rcode, version,
		// flags), no options
		if i+11 != len(q) || q[i] != 0 || binary.BigEndian.Uint16(q[i+1:]) != dns.TypeOPT ||
			binary.BigEndian.Uint16(q[i+9:]) != 0 {
			return wq, false
		}
		wq.limit = min(max(int(binary.BigEndian.Uint16(q[i+3:])), dns.MinMsgSize), ednsSize)
		wq.do = q[i+7]&0x80 != 0
		key = append(key, 1)
		key = append(key, q[i+5:i+9]...)
	} else {
		if i != len(q) {
			return wq, false
		}
		key = append(key, 0)
	}
	for _, c := range q[12 : 12+wq.name] {
		l := lower(c)
		wq.upper = wq.upper || l != c
		key = append(key, l)
	}
	wq.key = key
	return wq, true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// wireScratch is one socket's reusable memory; a socket has one reader.
type wireScratch struct {
	key, state, out []byte
}

func wireEligible(t *table, wq wireQuery) bool {
	// A signed reply repeats the name in NSEC records and their next
	// names, which are not patched: only lower-case names are kept signed.
	return t != nil && t.rrl == nil && t.xfr == nil && !(wq.do && t.signer != nil && wq.upper)
}

// fastAnswer answers q from the cache and reports whether it did.
func (s *Server) fastAnswer(pc *net.UDPConn, sc *wireScratch, q []byte, to netip.AddrPort) bool {
	out := s.fastReply(sc, sc.out[:0], q)
	if out == nil {
		return false
	}
	sc.out = out
	if _, err := pc.WriteToUDPAddrPort(out, to); err != nil {
		s.log.Debug("dns write", "err", err)
	}
	return true
}

// fastReply appends the reply to q to dst; nil when q takes the general path.
func (s *Server) fastReply(sc *wireScratch, dst, q []byte) []byte {
	t := s.table.Load()
	wq, ok := parseWireQuery(q, sc.key[:0])
	sc.key = wq.key[:0]
	if !ok || !wireEligible(t, wq) {
		return nil
	}
	c := s.wire.Load()
	if c == nil || c.t != t {
		c = &wireCache{t: t, m: map[string]*wireEntry{}}
		s.wire.Store(c) // a race here only loses cached replies
	}
	e := c.m[string(wq.key)]
	if e != nil && !e.until.IsZero() && !time.Now().Before(e.until) {
		e = nil // the general path would sign anew now
	}
	if e != nil && e.prof != nil {
		sc.state = e.prof.appendState(sc.state[:0])
		if !bytes.Equal(sc.state, e.state) {
			e = nil
		}
	}
	if e == nil {
		if e = s.buildWire(c, q, wq); e == nil {
			return nil
		}
	}
	if !e.ok || len(e.wire) > wq.limit {
		return nil
	}
	out := append(dst, e.wire...)
	out[0], out[1] = q[0], q[1]
	for _, off := range e.names {
		copy(out[off:], q[12:12+wq.name])
	}
	for _, m := range e.counters {
		m.Inc()
	}
	return out
}

// buildWire runs the general path on the lowercased question and stores
// its packed reply; nil when the cache is full.
func (s *Server) buildWire(c *wireCache, q []byte, wq wireQuery) *wireEntry {
	if len(c.m) >= wireMaxEntries {
		return nil
	}
	lq := bytes.Clone(q)
	lq[0], lq[1] = 0, 0
	for i := 12; i < 12+wq.name; i++ {
		lq[i] = lower(lq[i])
	}
	e := &wireEntry{}
	r := new(dns.Msg)
	if r.Unpack(lq) == nil {
		rs := respond(c.t, r, netip.Addr{})
		s.finish(c.t, r, rs)
		s.fillWire(e, rs, lq[12:12+wq.name])
		if e.ok && wq.do && c.t.signer != nil {
			// Signatures are reused until sigRefresh before they expire
			// (signer.sign); a failed signing is not kept.
			e.until = oldestSig(append(slices.Clone(rs.m.Answer), rs.m.Ns...))
			e.ok = rs.m.Rcode != dns.RcodeServerFailure && !e.until.IsZero()
		}
	}
	if !e.ok {
		if c.misses >= wireMaxMisses {
			return nil
		}
		c.misses++
	}
	// Copy on write: readers on other sockets see the old map or the new.
	m := make(map[string]*wireEntry, len(c.m)+1)
	for k, v := range c.m {
		m[k] = v
	}
	m[string(wq.key)] = e
	s.wire.CompareAndSwap(c, &wireCache{t: c.t, m: m, misses: c.misses})
	return e
}

func (s *Server) fillWire(e *wireEntry, rs *responder, name []byte) {
	if !rs.wireOK {
		return
	}
	for _, rr := range rs.m.Answer {
		if rr.Header().Rrtype == dns.TypeCNAME {
			return // the chase may depend on other profiles' state
		}
	}
	if rs.prof != nil {
		e.state = rs.prof.appendState(nil)
	}
	wire, err := rs.m.Pack()
	if err != nil || len(wire) > ednsSize || rs.m.Compress {
		return
	}
	// Owner names of a profile's records are the question's name as asked.
	off := 12 + len(name) + 4
	if rs.prof != nil {
		for range rs.m.Answer {
			if !bytes.Equal(wire[off:off+len(name)], name) {
				return
			}
			e.names = append(e.names, off)
			off += len(name) + 8
			off += 2 + int(binary.BigEndian.Uint16(wire[off:]))
		}
	}
	e.names = append(e.names, 12)
	e.wire, e.prof, e.ok = wire, rs.prof, true
	s.metrics.counters(rs, func(c prometheus.Counter) { e.counters = append(e.counters, c) })
}

// appendState appends what a priority profile's reply depends on: its TTL
// (the API may lower it) and what routing depends on.
func (p *profile) appendState(b []byte) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(p.ttlOver.Load()))
	for _, e := range p.endpoints {
		en := byte(0)
		if e.enabled.Load() {
			en = 1
		}
		b = append(b, byte(e.state(p)), en)
		b = binary.LittleEndian.AppendUint32(b, uint32(e.priority.Load()))
		b = binary.LittleEndian.AppendUint32(b, uint32(e.weight.Load()))
		if e.child != nil {
			b = e.child.appendState(b)
		}
	}
	return b
}

// wireRoutable: the profile's answer depends only on its endpoints' state.
func (p *profile) wireRoutable() bool {
	if p.routing != Priority {
		return false
	}
	for _, e := range p.endpoints {
		if e.child != nil && !e.child.wireRoutable() {
			return false
		}
	}
	return true
}

// fastConn is one UDP socket of the service as miekg/dns sees it: ReadFrom
// answers what the cache can and returns only the other packets.
type fastConn struct {
	*net.UDPConn
	s  *Server
	sc wireScratch
	mb *mmsgBatch // recvmmsg/sendmmsg memory where the system has them
}

// wrapUDP gives the socket the fast path when replies need no source
// address chosen per packet: a socket bound to the unspecified address
// replies through miekg/dns, which sets it from the packet's destination.
func (s *Server) wrapUDP(pc net.PacketConn) net.PacketConn {
	u, ok := pc.(*net.UDPConn)
	if !ok {
		return pc
	}
	if a, ok := u.LocalAddr().(*net.UDPAddr); !ok || a.IP.IsUnspecified() {
		return pc
	}
	return newFastConn(u, s)
}

// counters visits the metrics one answer counts in.
func (m *metrics) counters(rs *responder, f func(prometheus.Counter)) {
	rc := rs.m.Rcode
	if rs.prof == nil || rs.prof.metrics == nil {
		f(m.queries.WithLabelValues("", rcodeName(rc)))
		return
	}
	if rc >= 0 && rc < len(rs.prof.metrics.byRcode) {
		f(rs.prof.metrics.byRcode[rc])
	}
	if rc != dns.RcodeSuccess {
		return
	}
	for _, e := range rs.eps {
		if e.metrics != nil {
			f(e.metrics.answers)
		}
	}
}
