package dns

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const anyConfig = `listen: 127.0.0.1:0
zones:
  - name: example.test
    records:
      - {name: many, type: A, value: 192.0.2.1}
      - {name: many, type: AAAA, value: 2001:db8::1}
      - {name: many, type: MX, value: 10 mail.example.test.}
%s`

// TestANYMinimalOverUDP: RFC 8482. Over UDP an ANY query gets one small
// RRset, so a small spoofed query cannot draw a large answer; over TCP the
// full answer is still there.
func TestANYMinimalOverUDP(t *testing.T) {
	var txt strings.Builder
	for i := range 30 {
		fmt.Fprintf(&txt, "      - {name: many, type: TXT, value: '\"padding record %02d for a big ANY answer\"'}\n", i)
	}
	s := startServer(t, fmt.Sprintf(anyConfig, txt.String()))
	q := new(dns.Msg)
	q.SetQuestion("many.example.test.", dns.TypeANY)
	q.SetEdns0(4096, false)
	qb, _ := q.Pack()
	udp := &dns.Client{Net: "udp", UDPSize: 4096, Timeout: 5 * time.Second}
	r, _, err := udp.Exchange(q, s.DNSAddr())
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := r.Pack()
	if len(r.Answer) != 1 || r.Truncated || len(rb) > 3*len(qb) {
		t.Fatalf("UDP ANY: %d bytes for a %d-byte query (%d records, tc %v)\n%v", len(rb), len(qb), len(r.Answer), r.Truncated, r)
	}
	if _, ok := r.Answer[0].(*dns.A); !ok {
		t.Fatalf("UDP ANY answered %v, want the smallest RRset (A)", r.Answer[0])
	}
	tcp := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
	r, _, err = tcp.Exchange(q, s.DNSAddr())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Answer) != 33 {
		t.Fatalf("TCP ANY: %d records, want all 33", len(r.Answer))
	}
}

const rrlConfig = `listen: 127.0.0.1:0
zones:
  - name: example.test
    records:
      - {name: www, type: A, value: 192.0.2.9}
rate_limit: {responses_per_second: 5, slip: 2, window: 2s}
`

// startServerClock starts the real server with the rate limiter on a fake
// clock, set before any socket is served.
func startServerClock(t *testing.T, y string) (*Server, *fakeClock) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dns.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, Options{ConfigPath: path})
	if err != nil {
		t.Fatal(err)
	}
	clk := newFakeClock()
	s.table.Load().rrl.now = clk.now
	if err := s.Start(); err != nil {
		s.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, clk
}

// burst sends n queries for www from one loopback source address and
// returns, once the server has handled all n, how many came back answered
// and how many slipped (empty, TC set). Dropped ones are counted by the
// server's metric, so nothing waits for a timeout.
func burst(t *testing.T, s *Server, src string, n int, dropsBefore float64) (answered, slipped int) {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	server, _ := net.ResolveUDPAddr("udp", s.DNSAddr())
	for i := range n {
		m := new(dns.Msg)
		m.SetQuestion("www.example.test.", dns.TypeA)
		m.Id = uint16(i + 1)
		b, _ := m.Pack()
		if _, err := conn.WriteTo(b, server); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 1500)
	deadline := time.Now().Add(30 * time.Second)
	for {
		drops := limitedCount(t, s, "drop") - dropsBefore
		if answered+slipped+int(drops) == n {
			return answered, slipped
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: of %d queries %d answered, %d slipped, %v dropped", src, n, answered, slipped, drops)
		}
		conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		k, err := conn.Read(buf)
		if err != nil {
			continue // a drop not yet counted
		}
		r := new(dns.Msg)
		if err := r.Unpack(buf[:k]); err != nil {
			t.Fatal(err)
		}
		switch {
		case r.Truncated && len(r.Answer) == 0:
			slipped++
		case len(r.Answer) == 1 && !r.Truncated:
			answered++
		default:
			t.Fatalf("unexpected reply %v", r)
		}
	}
}

func limitedCount(t *testing.T, s *Server, action string) float64 {
	t.Helper()
	mfs, err := s.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "haven_dns_rate_limited_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labels(m.GetLabel())["action"] == action {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestRRLOverUDP: real UDP queries from one /24 beyond 5 per second are
// dropped, every second one slipped; another /24 is unaffected, TCP is never
// limited, and dig, getting a slip, retries over TCP and gets its answer.
func TestRRLOverUDP(t *testing.T) {
	s, clk := startServerClock(t, rrlConfig)
	if a, sl := burst(t, s, "127.0.0.1", 11, 0); a != 5 || sl != 3 || limitedCount(t, s, "drop") != 3 {
		t.Fatalf("127.0.0.1: %d answered, %d slipped, %v dropped; want 5, 3, 3", a, sl, limitedCount(t, s, "drop"))
	}
	if a, sl := burst(t, s, "127.0.1.1", 5, 3); a != 5 || sl != 0 {
		t.Fatalf("another /24 limited: %d answered, %d slipped", a, sl)
	}
	tcp := &dns.Client{Net: "tcp", Timeout: 5 * time.Second, Dialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}}}
	m := new(dns.Msg)
	m.SetQuestion("www.example.test.", dns.TypeA)
	if r, _, err := tcp.Exchange(m, s.DNSAddr()); err != nil || len(r.Answer) != 1 {
		t.Fatalf("TCP from the limited prefix: %v, %v", r, err)
	}
	// 127.0.2.0/24: 5 pass, the 6th is limited (dropped); dig's query is
	// the 2nd limited one, so it slips, and dig retries over TCP.
	if a, sl := burst(t, s, "127.0.2.1", 6, 3); a != 5 || sl != 0 {
		t.Fatalf("127.0.2.1: %d answered, %d slipped", a, sl)
	}
	out := dig(t, s.DNSAddr(), "-b", "127.0.2.1", "www.example.test", "A")
	if !strings.Contains(out, "Truncated, retrying in TCP mode") || !strings.Contains(out, "192.0.2.9") {
		t.Fatalf("dig did not get the answer through a slip and TCP:\n%s", out)
	}
	clk.advance(3 * time.Second) // the window (2 s) and a second's burst later
	if a, sl := burst(t, s, "127.0.0.1", 5, 4); a != 5 || sl != 0 {
		t.Fatalf("after the window: %d answered, %d slipped", a, sl)
	}
}
