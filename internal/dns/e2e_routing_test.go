package dns

import (
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const routingConfig = `listen: 127.0.0.1:0
zones:
  - name: example.test
    records:
%s
profiles:
  - name: w.example.test
    routing: weighted
    endpoints:
      - {name: light, target: 192.0.2.1, weight: 1}
      - {name: heavy, target: 192.0.2.2, weight: 3}
  - name: mv.example.test
    routing: multivalue
    max_answers: 3
    endpoints:
      - {name: a, target: 192.0.2.11}
      - {name: b, target: 192.0.2.12}
      - {name: c, target: 192.0.2.13}
      - {name: d, target: 192.0.2.14}
      - {name: e, target: 192.0.2.15, enabled: false}
  - name: sn.example.test
    routing: subnet
    endpoints:
      - {name: office, target: 192.0.2.21, subnets: [10.1.0.0/16]}
      - {name: rest, target: 192.0.2.22}
  - name: geo.example.test
    routing: geographic
    geo_file: %s
    endpoints:
      - {name: eu, target: 192.0.2.31, regions: [europe]}
      - {name: asia, target: 192.0.2.32, regions: [asia]}
      - {name: world, target: 192.0.2.33, regions: [WORLD]}
  - name: nsn.example.test
    endpoints:
      - {name: inner, profile: sn.example.test}
`

func startRoutingServer(t *testing.T) *Server {
	t.Helper()
	geo := filepath.Join(t.TempDir(), "geo.txt")
	if err := os.WriteFile(geo, []byte("10.0.0.0/8 europe\n172.16.0.0/12 asia\n10.200.0.0/16 asia\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return startServer(t, fmt.Sprintf(routingConfig, bigRecords(), geo))
}

// TestWeightedDistribution checks with a chi-squared test that real
// answers follow the 1:3 weights (false-failure rate about 1e-6).
func TestWeightedDistribution(t *testing.T) {
	s := startRoutingServer(t)
	const n = 4000
	c := &dns.Client{Timeout: 5 * time.Second}
	conn, err := c.Dial(s.DNSAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	counts := map[string]float64{}
	for range n {
		m := new(dns.Msg)
		m.SetQuestion("w.example.test.", dns.TypeA)
		r, _, err := c.ExchangeWithConn(m, conn)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrsOf(r) {
			counts[a]++
		}
	}
	exp := map[string]float64{"192.0.2.1": n * 0.25, "192.0.2.2": n * 0.75}
	chi2 := 0.0
	for k, e := range exp {
		chi2 += math.Pow(counts[k]-e, 2) / e
	}
	if chi2 > 23.9 || counts["192.0.2.1"]+counts["192.0.2.2"] != n { // 1 dof, p = 1e-6
		t.Fatalf("counts %v, chi2 %.1f", counts, chi2)
	}
	t.Logf("weighted 1:3 over %d queries: %v (chi2 %.2f)", n, counts, chi2)
}

func TestMultivalueWithDig(t *testing.T) {
	s := startRoutingServer(t)
	seen := map[string]bool{}
	for range 20 {
		got := digShort(t, s.DNSAddr(), "mv.example.test", "A")
		if len(got) != 3 {
			t.Fatalf("multivalue answered %v", got)
		}
		for _, a := range got {
			seen[a] = true
		}
	}
	if seen["192.0.2.15"] || len(seen) != 4 {
		t.Fatalf("answers used %v; want the 4 enabled endpoints only", seen)
	}
}

// TestSubnetAndGeoWithDig uses EDNS Client Subnet (dig +subnet) and the
// resolver address when there is none.
func TestSubnetAndGeoWithDig(t *testing.T) {
	s := startRoutingServer(t)
	for _, tc := range []struct{ name, subnet, want string }{
		{"sn.example.test", "10.1.2.0/24", "192.0.2.21"},
		{"sn.example.test", "10.2.0.0/16", "192.0.2.22"},
		{"sn.example.test", "", "192.0.2.22"},
		{"geo.example.test", "10.9.0.0/16", "192.0.2.31"},
		{"geo.example.test", "172.20.1.0/24", "192.0.2.32"},
		{"geo.example.test", "198.51.100.0/24", "192.0.2.33"},
		{"geo.example.test", "", "192.0.2.33"},
	} {
		args := []string{tc.name, "A"}
		if tc.subnet != "" {
			args = append(args, "+subnet="+tc.subnet)
		}
		if got := digShort(t, s.DNSAddr(), args...); !slices.Equal(got, []string{tc.want}) {
			t.Errorf("%s from %q: %v, want %s", tc.name, tc.subnet, got, tc.want)
		}
	}
	out := dig(t, s.DNSAddr(), "sn.example.test", "A", "+subnet=10.1.2.0/24")
	if !strings.Contains(out, "CLIENT-SUBNET: 10.1.2.0/24/16") {
		t.Fatalf("ECS scope not echoed:\n%s", out)
	}
}

// TestDNSBehaviourWithDig covers the protocol rules through the real socket.
func TestDNSBehaviourWithDig(t *testing.T) {
	s := startRoutingServer(t)
	a := s.DNSAddr()
	out := dig(t, a, "big.example.test", "TXT", "+noedns", "+ignore")
	if !strings.Contains(out, " tc ") && !strings.Contains(out, "flags: qr aa tc") {
		t.Fatalf("large UDP answer not truncated:\n%s", out)
	}
	out = dig(t, a, "big.example.test", "TXT", "+noedns")
	if !strings.Contains(out, "ANSWER: 40") {
		t.Fatalf("no TCP fallback to the full answer:\n%s", out)
	}
	for _, tc := range []struct{ args, want string }{
		{"nope.example.test A", "status: NXDOMAIN"},
		{"w.example.test MX", "status: NOERROR"},
		{"example.org A", "status: REFUSED"},
		{"W.EXAMPLE.TEST A", "ANSWER: 1"},
		{"example.test SOA", "flags: qr aa rd;"},
		{"example.test ANY", "IN\tSOA"},
		{"example.test AXFR", "Transfer failed"},
	} {
		if out := dig(t, a, strings.Fields(tc.args)...); !strings.Contains(out, tc.want) {
			t.Errorf("dig %s: want %q in\n%s", tc.args, tc.want, out)
		}
	}
	if out := dig(t, a, "nope.example.test", "A"); !strings.Contains(out, "AUTHORITY: 1") {
		t.Fatalf("NXDOMAIN without SOA:\n%s", out)
	}
}

// TestMalformedPackets sends garbage and bad headers to the real server: it
// answers FORMERR or nothing, and keeps serving.
func TestMalformedPackets(t *testing.T) {
	s := startRoutingServer(t)
	conn, err := net.Dial("udp", s.DNSAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	two := new(dns.Msg)
	two.SetQuestion("w.example.test.", dns.TypeA)
	two.Question = append(two.Question, two.Question[0])
	b, _ := two.Pack()
	bad := b[:len(b)-3] // header claims more than the packet holds
	for _, p := range [][]byte{{0xde, 0xad}, make([]byte, 12), bad, b} {
		if _, err := conn.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no FORMERR reply: %v", err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(buf[:n]); err != nil || r.Rcode != dns.RcodeFormatError {
		t.Fatalf("reply %v, %v", r, err)
	}
	if got := exchangeA(t, s.DNSAddr(), "sn.example.test."); len(got) != 1 {
		t.Fatalf("server stopped answering: %v", got)
	}
}

// TestReloadRejectsInvalidConfig: a broken file is refused with line and
// field, and the old config keeps serving; a good one takes effect.
func TestReloadRejectsInvalidConfig(t *testing.T) {
	y := `listen: 127.0.0.1:0
zones:
  - name: example.test
    records:
      - {name: www, type: A, value: 127.0.0.9}
`
	s := startServer(t, y)
	write := func(y string) {
		if err := os.WriteFile(s.path, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(strings.Replace(y, "value: 127.0.0.9", "value: 127.0.0.999", 1))
	err := s.ReloadFile()
	if err == nil || !strings.Contains(err.Error(), "line 5: zones[0].records[0].value") {
		t.Fatalf("reload error %v", err)
	}
	if got := digShort(t, s.DNSAddr(), "www.example.test"); !slices.Equal(got, []string{"127.0.0.9"}) {
		t.Fatalf("old config not serving: %v", got)
	}
	write(strings.Replace(y, "value: 127.0.0.9", "value: 127.0.0.10", 1))
	if err := s.ReloadFile(); err != nil {
		t.Fatal(err)
	}
	if got := digShort(t, s.DNSAddr(), "www.example.test"); !slices.Equal(got, []string{"127.0.0.10"}) {
		t.Fatalf("new config not serving: %v", got)
	}
}
