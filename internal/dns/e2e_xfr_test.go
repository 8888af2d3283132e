package dns

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
	dto "github.com/prometheus/client_model/go"

	"github.com/haven-dr/haven/internal/testenv"
)

// Zone transfer end to end: a real Knot DNS secondary transfers the zone
// from haven dns with TSIG and follows failovers by NOTIFY/IXFR.

const xfrKeyName = "xfr.example.test."

func newSecret(t *testing.T) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// xfrConfig is a priority profile under HTTP probing, a static record, and
// zone transfer to 127.0.0.1 with TSIG; notify lists the secondaries.
func xfrConfig(listen string, httpPort int, secret, notify, extra string) string {
	return fmt.Sprintf(`listen: %s
api: 127.0.0.1:0
tsig_keys: [{name: %s, algorithm: hmac-sha256, secret: "%s"}]
zone_transfer: {key: %s, allow: [127.0.0.1], notify: [%s]}
%szones:
  - name: example.test
    serial: 100
    records: [{name: www, type: A, value: 127.0.0.9}]
profiles:
  - name: app.example.test
    ttl: 5
    monitor: {protocol: http, port: %d, path: /health, interval: 1s, timeout: 500ms, tolerated_failures: 1, required_successes: 2}
    endpoints:
      - {name: primary, target: 127.0.0.1, priority: 1}
      - {name: recovery, target: 127.0.0.2, priority: 2}
`, listen, xfrKeyName, secret, xfrKeyName, notify, extra, httpPort)
}

// askA asks server for name's A records; ok is false when there is no
// successful answer (the secondary has no zone yet).
func askA(server, name string) (addrs []string, serial uint32, ok bool) {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, server)
	if err != nil || r.Rcode != dns.RcodeSuccess {
		return nil, 0, false
	}
	m.SetQuestion("example.test.", dns.TypeSOA)
	if s, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, server); err == nil && len(s.Answer) == 1 {
		serial = s.Answer[0].(*dns.SOA).Serial
	}
	return addrsOf(r), serial, true
}

func transfers(s *Server, kind, result string) float64 {
	var m dto.Metric
	if err := s.versions.count.WithLabelValues(kind, result).Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// TestKnotSecondaryFollowsFailover: Knot transfers the zone, then after the
// primary's HTTP server stops, after it comes back, and after it is disabled
// through the API, Knot answers what haven dns answers, with a higher serial
// each time. Knot's SOA refresh is an hour, so only NOTIFY can move it.
func TestKnotSecondaryFollowsFailover(t *testing.T) {
	ls, port := testenv.LoopbackListeners(t, "127.0.0.1", "127.0.0.2")
	primary := testenv.NewHTTPEndpoint(t, ls[0], healthHandler())
	testenv.NewHTTPEndpoint(t, ls[1], healthHandler())
	secret := newSecret(t)
	path := writeConfig(t, xfrConfig("127.0.0.1:0", port, secret, "", ""))
	s := startFrom(t, path)
	_, hport, _ := net.SplitHostPort(s.DNSAddr())
	var hp int
	fmt.Sscan(hport, &hp)
	knot := testenv.KnotSecondary(t, "example.test.", hp, testenv.TSIGKey{Name: xfrKeyName, Algorithm: "hmac-sha256", Secret: secret})
	if err := os.WriteFile(path, []byte(xfrConfig(s.DNSAddr(), port, secret, knot.Addr, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.ReloadFile(); err != nil {
		t.Fatal(err)
	}
	var last uint32
	follow := func(want string) {
		t.Helper()
		testenv.Eventually(t, 30*time.Second, "haven dns to answer "+want, func() bool { return answerA(t, s) == want })
		testenv.Eventually(t, 30*time.Second, "Knot to answer "+want, func() bool {
			got, serial, ok := askA(knot.Addr, "app.example.test.")
			if ok && slices.Equal(got, []string{want}) {
				if int32(serial-last) <= 0 {
					t.Fatalf("Knot serves serial %d after %d", serial, last)
				}
				last = serial
				return true
			}
			return false
		})
	}
	follow("127.0.0.1")
	if got, _, _ := askA(knot.Addr, "www.example.test."); !slices.Equal(got, []string{"127.0.0.9"}) {
		t.Fatalf("static record on Knot: %v", got)
	}
	primary.Stop()
	follow("127.0.0.2")
	primary.Start()
	follow("127.0.0.1")
	if _, err := apiClient(t, s).SetEnabled(context.Background(), "app.example.test", "primary", false); err != nil {
		t.Fatal(err)
	}
	follow("127.0.0.2")
	if n := transfers(s, "notify", "ok"); n < 3 {
		t.Errorf("NOTIFY taken %v times, want >= 3", n)
	}
	if n := transfers(s, "ixfr", "ok"); n < 1 {
		t.Errorf("Knot never used IXFR (%v)", n)
	}
}
