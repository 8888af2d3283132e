package dns

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/haven-dr/haven/internal/testenv"
)

// DNSSEC end to end: a validating Unbound that trusts only the test zone's
// key asks haven dns (directly, through a proxy that can tamper with
// answers, and through a Knot secondary) and must find every answer secure.

func dnssecConfig(httpPort int, keyDir, secret string) string {
	return dnssecConfigAlg(httpPort, keyDir, secret, "ecdsap256sha256")
}

func dnssecConfigAlg(httpPort int, keyDir, secret, alg string) string {
	return xfrConfig("127.0.0.1:0", httpPort, secret, "",
		fmt.Sprintf("dnssec: {algorithm: %s, key_dir: %s}\n", alg, keyDir))
}

// validated asks a validating resolver; it returns the rcode, the AD bit
// and the addresses.
func validated(t *testing.T, resolver, name string, qtype uint16) (int, bool, []string) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(1232, true)
	r, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(m, resolver)
	if err != nil {
		t.Fatal(err)
	}
	return r.Rcode, r.AuthenticatedData, addrsOf(r)
}

func anchorOf(s *Server) string {
	return s.table.Load().signer.keys["example.test."].pub.String()
}

func portOf(t *testing.T, addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	fmt.Sscan(p, &n)
	return n
}

// TestDNSSECSecureThroughFailover: before, during and after the primary's
// HTTP server stops, every answer Unbound gives is secure; so are NODATA
// and the "black lie" for a name that does not exist.
func TestDNSSECSecureThroughFailover(t *testing.T) {
	ls, port := testenv.LoopbackListeners(t, "127.0.0.1", "127.0.0.2")
	primary := testenv.NewHTTPEndpoint(t, ls[0], healthHandler())
	testenv.NewHTTPEndpoint(t, ls[1], healthHandler())
	s := startServer(t, dnssecConfig(port, t.TempDir(), newSecret(t)))
	resolver := testenv.UnboundValidating(t, "example.test.", portOf(t, s.DNSAddr()), anchorOf(s))
	secure := func(name string, qtype uint16, wantRcode int) []string {
		t.Helper()
		rc, ad, got := validated(t, resolver, name, qtype)
		if rc != wantRcode || !ad {
			t.Fatalf("%s %s: rcode %s, AD %v (want %s, secure)", name, dns.TypeToString[qtype], dns.RcodeToString[rc], ad, dns.RcodeToString[wantRcode])
		}
		return got
	}
	testenv.Eventually(t, 20*time.Second, "the primary to be answered", func() bool { return answerA(t, s) == "127.0.0.1" })
	if got := secure("app.example.test.", dns.TypeA, dns.RcodeSuccess); !slices.Equal(got, []string{"127.0.0.1"}) {
		t.Fatalf("before failover: %v", got)
	}
	secure("www.example.test.", dns.TypeA, dns.RcodeSuccess)
	secure("app.example.test.", dns.TypeAAAA, dns.RcodeSuccess)  // NODATA
	secure("nothere.example.test.", dns.TypeA, dns.RcodeSuccess) // black lie: NODATA
	secure("a.b.nothere.example.test.", dns.TypeTXT, dns.RcodeSuccess)
	primary.Stop()
	testenv.Eventually(t, 30*time.Second, "Unbound to answer the recovery site, securely", func() bool {
		got := secure("app.example.test.", dns.TypeA, dns.RcodeSuccess)
		return slices.Equal(got, []string{"127.0.0.2"})
	})
	secure("www.example.test.", dns.TypeA, dns.RcodeSuccess)
}

// tamperProxy relays UDP between a resolver and haven dns; while tamper is
// set it changes the address of every A record in replies (the RRSIG stays
// as signed), as an attacker on the path would.
type tamperProxy struct {
	pc     net.PacketConn
	tamper atomic.Bool
}

func startTamperProxy(t *testing.T, upstream string) *tamperProxy {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tamperProxy{pc: pc}
	t.Cleanup(func() { pc.Close() })
	go p.run(upstream)
	return p
}

func (p *tamperProxy) run(upstream string) {
	buf := make([]byte, 65535)
	for {
		n, from, err := p.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		q := slices.Clone(buf[:n])
		go p.relay(q, from, upstream)
	}
}

func (p *tamperProxy) relay(q []byte, from net.Addr, upstream string) {
	c, err := net.Dial("udp", upstream)
	if err != nil {
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write(q); err != nil {
		return
	}
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		return
	}
	out := buf[:n]
	if p.tamper.Load() {
		m := new(dns.Msg)
		if m.Unpack(out) == nil {
			for _, rr := range m.Answer {
				if a, ok := rr.(*dns.A); ok {
					ip := slices.Clone(a.A.To4())
					ip[3] ^= 1 // flip one bit of the address
					a.A = ip
				}
			}
			if b, err := m.Pack(); err == nil {
				out = b
			}
		}
	}
	p.pc.WriteTo(out, from)
}

// TestDNSSECTamperedAnswerRefused: through the proxy, answers validate;
// once it flips a bit of the A records, Unbound refuses them (SERVFAIL).
// Both algorithms.
func TestDNSSECTamperedAnswerRefused(t *testing.T) {
	for _, alg := range []string{"ecdsap256sha256", "ed25519"} {
		t.Run(alg, func(t *testing.T) { tamperedRefused(t, alg) })
	}
}

func tamperedRefused(t *testing.T, alg string) {
	s := startServer(t, dnssecConfigAlg(9, t.TempDir(), newSecret(t), alg))
	proxy := startTamperProxy(t, s.DNSAddr())
	resolver := testenv.UnboundValidating(t, "example.test.", portOf(t, proxy.pc.LocalAddr().String()), anchorOf(s))
	if rc, ad, got := validated(t, resolver, "www.example.test.", dns.TypeA); rc != dns.RcodeSuccess || !ad || !slices.Equal(got, []string{"127.0.0.9"}) {
		t.Fatalf("untampered: %s AD %v %v", dns.RcodeToString[rc], ad, got)
	}
	proxy.tamper.Store(true)
	if rc, _, got := validated(t, resolver, "app.example.test.", dns.TypeA); rc != dns.RcodeServerFailure {
		t.Fatalf("tampered answer accepted: %s %v", dns.RcodeToString[rc], got)
	}
}

// TestDNSSECThroughKnotSecondary: the signed zone (NSEC chain and RRSIGs)
// reaches a plain Knot secondary by transfer; Unbound asking Knot finds its
// answers secure, a name that does not exist included (real NXDOMAIN with
// the chain's proof), and after a failover Knot's new answer is secure too.
func TestDNSSECThroughKnotSecondary(t *testing.T) {
	secret := newSecret(t)
	dir := t.TempDir()
	path := writeConfig(t, dnssecConfig(9, dir, secret))
	s := startFrom(t, path)
	knot := testenv.KnotSecondary(t, "example.test.", portOf(t, s.DNSAddr()), testenv.TSIGKey{Name: xfrKeyName, Algorithm: "hmac-sha256", Secret: secret})
	y := xfrConfig(s.DNSAddr(), 9, secret, knot.Addr, fmt.Sprintf("dnssec: {key_dir: %s}\n", dir))
	if err := writeFile(path, y); err != nil {
		t.Fatal(err)
	}
	if err := s.ReloadFile(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "Knot to load the zone", func() bool {
		_, _, ok := askA(knot.Addr, "www.example.test.")
		return ok
	})
	resolver := testenv.UnboundValidating(t, "example.test.", portOf(t, knot.Addr), anchorOf(s))
	for _, q := range []struct {
		name  string
		rcode int
	}{{"www.example.test.", dns.RcodeSuccess}, {"app.example.test.", dns.RcodeSuccess}, {"nothere.example.test.", dns.RcodeNameError}} {
		if rc, ad, got := validated(t, resolver, q.name, dns.TypeA); rc != q.rcode || !ad {
			t.Fatalf("%s via Knot: %s AD %v %v", q.name, dns.RcodeToString[rc], ad, got)
		}
	}
	if _, err := apiClient(t, s).SetEnabled(t.Context(), "app.example.test", "primary", false); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "Knot's answer to move, securely", func() bool {
		rc, ad, got := validated(t, resolver, "app.example.test.", dns.TypeA)
		if rc != dns.RcodeSuccess || !ad {
			t.Fatalf("via Knot during failover: %s AD %v %v", dns.RcodeToString[rc], ad, got)
		}
		return slices.Equal(got, []string{"127.0.0.2"})
	})
}

// TestDNSSECRollover follows the documented rollover: a resolver that
// trusts the old key stays secure while the next key is published; after
// the swap a resolver trusting both (the parent's double DS) or only the
// new key is secure, and one trusting only the old key is not, which is
// why the new DS must be at the parent before the swap.
func TestDNSSECRollover(t *testing.T) {
	dir := t.TempDir()
	path := writeConfig(t, dnssecConfig(9, dir, newSecret(t)))
	s := startFrom(t, path)
	oldAnchor := anchorOf(s)
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NextKey(cfg); err != nil {
		t.Fatal(err)
	}
	if err := s.ReloadFile(); err != nil {
		t.Fatal(err)
	}
	ask := func(when string, secure bool, anchors ...string) {
		t.Helper()
		r := testenv.UnboundValidating(t, "example.test.", portOf(t, s.DNSAddr()), anchors...)
		rc, ad, _ := validated(t, r, "www.example.test.", dns.TypeA)
		if ok := rc == dns.RcodeSuccess && ad; ok != secure {
			t.Fatalf("%s: %s AD %v, want secure=%v", when, dns.RcodeToString[rc], ad, secure)
		}
	}
	ask("next key published, old anchor", true, oldAnchor)
	for _, f := range [][2]string{{"example.test.key", "example.test.old.key"}, {"example.test.private", "example.test.old.private"},
		{"example.test.next.key", "example.test.key"}, {"example.test.next.private", "example.test.private"}} {
		if err := os.Rename(filepath.Join(dir, f[0]), filepath.Join(dir, f[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.ReloadFile(); err != nil {
		t.Fatal(err)
	}
	newAnchor := anchorOf(s)
	if newAnchor == oldAnchor {
		t.Fatal("the swap did not change the signing key")
	}
	ask("after the swap, double DS", true, oldAnchor, newAnchor)
	ask("after the swap, new DS only", true, newAnchor)
	ask("after the swap, old DS only", false, oldAnchor)
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }
