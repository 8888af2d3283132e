package dns

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
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

// axfr transfers example.test from server, dialling from the local
// address given, signed with the key (name, secret) unless name is "".
func axfr(server, from, name, secret string) ([]dns.RR, error) {
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", server)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	tr := &dns.Transfer{Conn: &dns.Conn{Conn: c}, ReadTimeout: 2 * time.Second}
	m := new(dns.Msg)
	m.SetAxfr("example.test.")
	if name != "" {
		tr.TsigSecret = map[string]string{name: secret}
		m.SetTsig(name, dns.HmacSHA256, 300, time.Now().Unix())
	}
	ch, err := tr.In(m, server)
	if err != nil {
		return nil, err
	}
	var out []dns.RR
	for env := range ch {
		if env.Error != nil {
			return out, env.Error
		}
		out = append(out, env.RR...)
	}
	return out, nil
}

// TestTransferRefused: a transfer without TSIG, with a wrong secret, with
// an unknown key or from an address not allowed gets nothing; the right
// key from an allowed address gets the zone. A real Knot with a wrong
// secret never loads the zone, and haven dns counts its refused attempts.
func TestTransferRefused(t *testing.T) {
	secret := newSecret(t)
	s := startServer(t, xfrConfig("127.0.0.1:0", 9, secret, "", ""))
	addr := s.DNSAddr()
	testenv.Eventually(t, 10*time.Second, "the first zone version", func() bool { return len(s.versions.history("example.test.")) > 0 })
	for _, tc := range []struct{ what, from, name, secret string }{
		{"no TSIG", "127.0.0.1", "", ""},
		{"wrong secret", "127.0.0.1", xfrKeyName, newSecret(t)},
		{"unknown key", "127.0.0.1", "other.example.test.", secret},
		{"address not allowed", "127.0.0.2", xfrKeyName, secret},
	} {
		if rrs, err := axfr(addr, tc.from, tc.name, tc.secret); err == nil || len(rrs) > 0 {
			t.Errorf("%s: transferred %d records, err %v", tc.what, len(rrs), err)
		}
	}
	if n := transfers(s, "axfr", "refused"); n != 4 {
		t.Errorf("refused %v transfers, want 4", n)
	}
	rrs, err := axfr(addr, "127.0.0.1", xfrKeyName, secret)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, rr := range rrs {
		names = append(names, rr.Header().Name+" "+dns.TypeToString[rr.Header().Rrtype])
	}
	for _, want := range []string{"example.test. SOA", "www.example.test. A", "app.example.test. A"} {
		if !slices.Contains(names, want) {
			t.Errorf("zone has no %s: %v", want, names)
		}
	}

	_, hport, _ := net.SplitHostPort(addr)
	var hp int
	fmt.Sscan(hport, &hp)
	knot := testenv.KnotSecondary(t, "example.test.", hp, testenv.TSIGKey{Name: xfrKeyName, Algorithm: "hmac-sha256", Secret: newSecret(t)})
	testenv.Eventually(t, 30*time.Second, "Knot's transfer with the wrong key to be refused", func() bool {
		return transfers(s, "axfr", "refused")+transfers(s, "ixfr", "refused") > 4
	})
	if got, _, ok := askA(knot.Addr, "www.example.test."); ok {
		t.Fatalf("Knot with the wrong key serves the zone: %v", got)
	}
}

// TestSerialSurvivesRestart: every change raises the serial, and a restart
// serves the last serial again (content unchanged) rather than the config's.
func TestSerialSurvivesRestart(t *testing.T) {
	path := writeConfig(t, xfrConfig("127.0.0.1:0", 9, newSecret(t), "", ""))
	s := startFrom(t, path)
	serial := func(s *Server) uint32 {
		var got uint32
		testenv.Eventually(t, 10*time.Second, "a serial", func() bool {
			_, got, _ = askA(s.DNSAddr(), "www.example.test.")
			return got != 0
		})
		return got
	}
	first := serial(s)
	if _, err := apiClient(t, s).SetEnabled(context.Background(), "app.example.test", "primary", false); err != nil {
		t.Fatal(err)
	}
	var second uint32
	testenv.Eventually(t, 10*time.Second, "the serial to rise", func() bool {
		_, second, _ = askA(s.DNSAddr(), "www.example.test.")
		return int32(second-first) > 0
	})
	s.Close()
	s2 := startFrom(t, path)
	if got := serial(s2); got != second {
		t.Fatalf("after restart serial %d, before %d (config says 100)", got, second)
	}
}

// TestIXFRIsADifference: asked from the previous serial, IXFR answers the
// difference (the new answer replaces the old), not the whole zone.
func TestIXFRIsADifference(t *testing.T) {
	secret := newSecret(t)
	s := startServer(t, xfrConfig("127.0.0.1:0", 9, secret, "", ""))
	testenv.Eventually(t, 10*time.Second, "the first zone version", func() bool { return len(s.versions.history("example.test.")) > 0 })
	old := s.versions.history("example.test.")[0].serial
	if _, err := apiClient(t, s).SetEnabled(context.Background(), "app.example.test", "primary", false); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "a second version", func() bool { return len(s.versions.history("example.test.")) > 1 })
	m := new(dns.Msg)
	m.SetIxfr("example.test.", old, "ns1.example.test.", "hostmaster.example.test.")
	m.SetTsig(xfrKeyName, dns.HmacSHA256, 300, time.Now().Unix())
	tr := &dns.Transfer{TsigSecret: map[string]string{xfrKeyName: secret}}
	ch, err := tr.In(m, s.DNSAddr())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for env := range ch {
		if env.Error != nil {
			t.Fatal(env.Error)
		}
		for _, rr := range env.RR {
			got = append(got, strings.Join(strings.Fields(rr.String()), " "))
		}
	}
	if len(got) != 6 || !strings.Contains(got[2], "app.example.test. 5 IN A 127.0.0.1") ||
		!strings.Contains(got[4], "app.example.test. 5 IN A 127.0.0.2") {
		t.Fatalf("IXFR from %d:\n%s", old, strings.Join(got, "\n"))
	}
}

// TestKnotFollowsRestart: haven dns stops, its config changes while it is
// down, and it starts again on the same address: the new version is
// announced after the restart (its NOTIFY is held until the sockets are
// open) and Knot, whose SOA refresh is an hour, transfers it.
func TestKnotFollowsRestart(t *testing.T) {
	secret := newSecret(t)
	path := writeConfig(t, xfrConfig("127.0.0.1:0", 9, secret, "", ""))
	s := startFrom(t, path)
	addr := s.DNSAddr()
	knot := testenv.KnotSecondary(t, "example.test.", portOf(t, addr), testenv.TSIGKey{Name: xfrKeyName, Algorithm: "hmac-sha256", Secret: secret})
	y := xfrConfig(addr, 9, secret, knot.Addr, "")
	if err := writeFile(path, y); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "Knot to load the zone", func() bool {
		got, _, _ := askA(knot.Addr, "www.example.test.")
		return slices.Equal(got, []string{"127.0.0.9"})
	})
	s.Close()
	if err := writeFile(path, strings.Replace(y, "127.0.0.9", "127.0.0.10", 1)); err != nil {
		t.Fatal(err)
	}
	startFrom(t, path)
	testenv.Eventually(t, 30*time.Second, "Knot to serve the record changed while haven dns was down", func() bool {
		got, _, _ := askA(knot.Addr, "www.example.test.")
		return slices.Equal(got, []string{"127.0.0.10"})
	})
}

// TestTTLOverrideIsANewVersion: a TTL lowered through the API (a planned
// failover does it) is a new zone version with a higher serial, so
// secondaries are told and answer with it too.
func TestTTLOverrideIsANewVersion(t *testing.T) {
	s := startServer(t, xfrConfig("127.0.0.1:0", 9, newSecret(t), "", ""))
	testenv.Eventually(t, 10*time.Second, "the first zone version", func() bool { return len(s.versions.history("example.test.")) > 0 })
	old := s.versions.history("example.test.")[0].serial
	if _, err := apiClient(t, s).UpdateProfile(context.Background(), "app.example.test", ProfilePatch{TTL: ptr(uint32(0))}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "a second version", func() bool { return len(s.versions.history("example.test.")) > 1 })
	h := s.versions.history("example.test.")
	last := h[len(h)-1]
	if int32(last.serial-old) <= 0 {
		t.Fatalf("serial %d after the TTL change, %d before", last.serial, old)
	}
	var app []string
	for _, rr := range last.rrs {
		if rr.Header().Name == "app.example.test." {
			app = append(app, strings.Join(strings.Fields(rr.String()), " "))
		}
	}
	if len(app) != 1 || app[0] != "app.example.test. 0 IN A 127.0.0.1" {
		t.Fatalf("the new version's profile records: %q", app)
	}
}
