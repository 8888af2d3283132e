package dns

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

const logicConfig = `listen: 127.0.0.1:0
zones:
  - name: example.test
    negative_ttl: 30
    records:
      - {name: www, type: A, value: 127.0.0.9}
      - {name: www, type: TXT, value: '"hello"'}
      - {name: alias, type: CNAME, value: www.example.test.}
      - {name: deep.sub, type: A, value: 192.0.2.1}
      - {name: '@', type: MX, value: 10 mail.example.test.}
%s
profiles:
  - name: app.example.test
    ttl: 5
    endpoints:
      - {name: p1, target: 192.0.2.1, priority: 1}
      - {name: p2, target: 192.0.2.2, priority: 2}
      - {name: p3, target: 2001:db8::3, priority: 3}
  - name: strict.example.test
    all_down: servfail
    endpoints:
      - {name: only, target: 192.0.2.7}
  - name: cn.example.test
    ttl: 0
    endpoints:
      - {name: site, target: www.example.test}
  - name: mv.example.test
    routing: multivalue
    max_answers: 2
    endpoints:
      - {name: a, target: 192.0.2.11}
      - {name: b, target: 192.0.2.12}
      - {name: c, target: 192.0.2.13}
      - {name: d, target: 2001:db8::14}
  - name: sn.example.test
    routing: subnet
    endpoints:
      - {name: wide, target: 192.0.2.21, subnets: [10.0.0.0/8]}
      - {name: narrow, target: 192.0.2.22, subnets: [10.1.0.0/16, 198.51.100.7]}
      - {name: other, target: 192.0.2.23}
  - name: off.example.test
    enabled: false
    endpoints:
      - {name: x, target: 192.0.2.30}
  - name: nest.example.test
    endpoints:
      - {name: inner, profile: app.example.test, min_healthy: 2}
      - {name: backup, target: 192.0.2.40}
`

func bigRecords() string {
	var b strings.Builder
	for i := range 40 {
		fmt.Fprintf(&b, "      - {name: big, type: TXT, value: '\"record number %02d padding padding padding\"'}\n", i)
	}
	return b.String()
}

type dnsCase struct {
	name   string
	qname  string
	qtype  uint16
	rcode  int
	answer []string // expected answer RRs in presentation format, in order
	nsTTL  int      // TTL of the SOA in authority, -1 when no authority
	aa     bool
}

func TestRespondTable(t *testing.T) {
	s := newTestServer(t, fmt.Sprintf(logicConfig, bigRecords()))
	tests := []dnsCase{
		{"static A", "www.example.test.", dns.TypeA, 0, []string{"www.example.test.\t300\tIN\tA\t127.0.0.9"}, -1, true},
		{"case insensitive", "WwW.ExAmple.TEST.", dns.TypeA, 0, []string{"www.example.test.\t300\tIN\tA\t127.0.0.9"}, -1, true},
		{"nodata", "www.example.test.", dns.TypeAAAA, 0, nil, 30, true},
		{"nxdomain", "nope.example.test.", dns.TypeA, dns.RcodeNameError, nil, 30, true},
		{"empty non-terminal", "sub.example.test.", dns.TypeA, 0, nil, 30, true},
		{"refused outside", "example.org.", dns.TypeA, dns.RcodeRefused, nil, -1, false},
		{"apex MX", "example.test.", dns.TypeMX, 0, []string{"example.test.\t300\tIN\tMX\t10 mail.example.test."}, -1, true},
		{"apex NS", "example.test.", dns.TypeNS, 0, []string{"example.test.\t300\tIN\tNS\tns1.example.test."}, -1, true},
		{"cname chased", "alias.example.test.", dns.TypeA, 0, []string{
			"alias.example.test.\t300\tIN\tCNAME\twww.example.test.", "www.example.test.\t300\tIN\tA\t127.0.0.9"}, -1, true},
		{"cname qtype", "alias.example.test.", dns.TypeCNAME, 0, []string{"alias.example.test.\t300\tIN\tCNAME\twww.example.test."}, -1, true},
		{"axfr refused", "example.test.", dns.TypeAXFR, dns.RcodeRefused, nil, -1, false},
		{"profile priority", "app.example.test.", dns.TypeA, 0, []string{"app.example.test.\t5\tIN\tA\t192.0.2.1"}, -1, true},
		{"profile nodata capped", "app.example.test.", dns.TypeAAAA, 0, nil, 5, true},
		{"profile mx nodata", "app.example.test.", dns.TypeMX, 0, nil, 5, true},
		{"profile any", "app.example.test.", dns.TypeANY, 0, []string{"app.example.test.\t5\tIN\tA\t192.0.2.1"}, -1, true},
		{"profile cname ttl 0", "cn.example.test.", dns.TypeA, 0, []string{
			"cn.example.test.\t0\tIN\tCNAME\twww.example.test.", "www.example.test.\t300\tIN\tA\t127.0.0.9"}, -1, true},
		{"disabled profile", "off.example.test.", dns.TypeA, dns.RcodeNameError, nil, 30, true},
		{"nested", "nest.example.test.", dns.TypeA, 0, []string{"nest.example.test.\t60\tIN\tA\t192.0.2.1"}, -1, true},
		{"subnet fallback", "sn.example.test.", dns.TypeA, 0, []string{"sn.example.test.\t60\tIN\tA\t192.0.2.23"}, -1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { checkCase(t, s, tc) })
	}
}

func query(s *Server, qname string, qtype uint16, udp bool, edit func(*dns.Msg)) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(qname, qtype)
	if edit != nil {
		edit(m)
	}
	w := newRecorder(udp, "127.0.0.1")
	s.ServeDNS(w, m)
	return w.msg
}

func checkCase(t *testing.T, s *Server, tc dnsCase) {
	t.Helper()
	r := query(s, tc.qname, tc.qtype, true, nil)
	if r.Rcode != tc.rcode || r.Authoritative != tc.aa || r.RecursionAvailable {
		t.Fatalf("rcode %s aa %v ra %v, want %s aa %v\n%v", dns.RcodeToString[r.Rcode], r.Authoritative,
			r.RecursionAvailable, dns.RcodeToString[tc.rcode], tc.aa, r)
	}
	if got := rrStrings(r.Answer); strings.Join(got, "\n") != strings.Join(tc.answer, "\n") {
		t.Fatalf("answer:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.answer, "\n"))
	}
	checkAuthority(t, r, tc.nsTTL)
}

func checkAuthority(t *testing.T, r *dns.Msg, ttl int) {
	t.Helper()
	if ttl < 0 {
		if len(r.Ns) != 0 {
			t.Fatalf("unexpected authority %v", r.Ns)
		}
		return
	}
	if len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA || int(r.Ns[0].Header().Ttl) != ttl {
		t.Fatalf("authority %v, want SOA with TTL %d", r.Ns, ttl)
	}
}

func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		out = append(out, rr.String())
	}
	return out
}

func TestRespondProtocolEdges(t *testing.T) {
	s := newTestServer(t, fmt.Sprintf(logicConfig, bigRecords()))
	r := query(s, "www.example.test.", dns.TypeA, true, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS })
	expectRcode(t, r, dns.RcodeRefused)
	r = query(s, "www.example.test.", dns.TypeA, true, func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify })
	expectRcode(t, r, dns.RcodeNotImplemented)
	r = query(s, "www.example.test.", dns.TypeA, true, func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) })
	expectRcode(t, r, dns.RcodeBadVers)
	r = query(s, "www.example.test.", dns.TypeA, true, func(m *dns.Msg) { m.SetEdns0(4096, false) })
	if r.IsEdns0() == nil || r.IsEdns0().UDPSize() != ednsSize || len(r.Answer) != 1 {
		t.Fatalf("EDNS reply %v", r)
	}
}

func expectRcode(t *testing.T, r *dns.Msg, rc int) {
	t.Helper()
	if r.Rcode != rc {
		t.Fatalf("rcode %s, want %s\n%v", dns.RcodeToString[r.Rcode], dns.RcodeToString[rc], r)
	}
}

func TestRespondTruncation(t *testing.T) {
	s := newTestServer(t, fmt.Sprintf(logicConfig, bigRecords()))
	r := query(s, "big.example.test.", dns.TypeTXT, true, nil)
	if !r.Truncated || r.Len() > 512 {
		t.Fatalf("UDP reply of %d bytes, truncated %v", r.Len(), r.Truncated)
	}
	r = query(s, "big.example.test.", dns.TypeTXT, false, nil)
	if r.Truncated || len(r.Answer) != 40 {
		t.Fatalf("TCP reply truncated %v with %d records", r.Truncated, len(r.Answer))
	}
}

func TestRespondHealth(t *testing.T) {
	s := newTestServer(t, fmt.Sprintf(logicConfig, ""))
	want := func(name string, qtype uint16, rcode int, addrs ...string) {
		t.Helper()
		r := query(s, name, qtype, true, nil)
		expectRcode(t, r, rcode)
		if got := addrsOf(r); strings.Join(got, ",") != strings.Join(addrs, ",") {
			t.Fatalf("%s: answers %v, want %v", name, got, addrs)
		}
	}
	setHealth(t, s, "app.example.test", "p1", false)
	want("app.example.test.", dns.TypeA, 0, "192.0.2.2")
	// nested: only 2 of 3 children healthy is still >= min_healthy 2
	want("nest.example.test.", dns.TypeA, 0, "192.0.2.2")
	setHealth(t, s, "app.example.test", "p2", false)
	want("app.example.test.", dns.TypeAAAA, 0, "2001:db8::3")
	want("nest.example.test.", dns.TypeA, 0, "192.0.2.40")
	setHealth(t, s, "app.example.test", "p3", false)
	// every endpoint down: fail open routes as if all were healthy, so the
	// priority profile still names one site (p1, which has no AAAA)
	want("app.example.test.", dns.TypeA, 0, "192.0.2.1")
	want("app.example.test.", dns.TypeAAAA, 0)
	setHealth(t, s, "app.example.test", "p1", true)
	want("app.example.test.", dns.TypeA, 0, "192.0.2.1")
	setHealth(t, s, "strict.example.test", "only", false)
	want("strict.example.test.", dns.TypeA, dns.RcodeServerFailure)
}

func addrsOf(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		switch v := rr.(type) {
		case *dns.A:
			out = append(out, v.A.String())
		case *dns.AAAA:
			out = append(out, v.AAAA.String())
		case *dns.CNAME:
			out = append(out, v.Target)
		}
	}
	return out
}

func TestRespondSubnetAndMultivalue(t *testing.T) {
	s := newTestServer(t, fmt.Sprintf(logicConfig, ""))
	ecs := func(ip string, bits uint8) func(*dns.Msg) {
		return func(m *dns.Msg) {
			m.SetEdns0(1232, false)
			fam := uint16(1)
			if strings.Contains(ip, ":") {
				fam = 2
			}
			o := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: fam, SourceNetmask: bits, Address: net.ParseIP(ip)}
			m.IsEdns0().Option = append(m.IsEdns0().Option, o)
		}
	}
	for _, tc := range []struct {
		ip    string
		bits  uint8
		want  string
		scope uint8
	}{
		{"10.1.2.0", 24, "192.0.2.22", 16},
		// 10.0.0.0/8 matched, but 10.1.0.0/16 inside it maps elsewhere:
		// the scope must stop short of it (10.2/15 does not reach 10.1).
		{"10.2.0.0", 16, "192.0.2.21", 15},
		{"198.51.100.7", 32, "192.0.2.22", 32},
		// no subnet matched: the fallback holds up to 203/5 (198.51.100.7
		// is 198/5 and 10/8 is 0/1), never for all of /0.
		{"203.0.113.0", 24, "192.0.2.23", 5},
	} {
		r := query(s, "sn.example.test.", dns.TypeA, true, ecs(tc.ip, tc.bits))
		got := addrsOf(r)
		sc := r.IsEdns0().Option[0].(*dns.EDNS0_SUBNET).SourceScope
		if len(got) != 1 || got[0] != tc.want || sc != tc.scope {
			t.Errorf("client %s/%d: %v scope %d, want %s scope %d", tc.ip, tc.bits, got, sc, tc.want, tc.scope)
		}
	}
	seen := map[string]bool{}
	for range 50 {
		r := query(s, "mv.example.test.", dns.TypeA, true, nil)
		if len(r.Answer) != 2 {
			t.Fatalf("multivalue answered %v", r.Answer)
		}
		for _, a := range addrsOf(r) {
			seen[a] = true
		}
	}
	if len(seen) != 3 {
		t.Fatalf("multivalue used %v, want all three IPv4 endpoints", seen)
	}
}
