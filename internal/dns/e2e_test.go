package dns

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/haven-dr/haven/internal/testenv"
)

// End-to-end tests: the real server on 127.0.0.1 port 0, queried with dig
// and a miekg/dns client, probing real HTTP and TCP servers on loopback.

func startServer(t *testing.T, y string) *Server {
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
	if err := s.Start(); err != nil {
		s.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// apiClient is the orchestrator's view: the typed client with the token
// the server created next to its config.
func apiClient(t *testing.T, s *Server) *Client {
	t.Helper()
	c, err := NewClient(s.APIURL(), ClientOptions{TokenFile: s.table.Load().files.token})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// dig runs the real dig against the server and returns its output.
func dig(t *testing.T, server string, args ...string) string {
	t.Helper()
	bin := testenv.LookPath(t, "dig")
	host, port, _ := net.SplitHostPort(server)
	all := append([]string{"@" + host, "-p", port, "+time=2", "+tries=1"}, args...)
	out, err := exec.Command(bin, all...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %v: %v\n%s", all, err, out)
	}
	return string(out)
}

// digShort returns dig's +short answer. dig reports a stray datagram that
// reaches its socket (e.g. a query some other program on this host sent to
// a port dig now uses) as ";; Warning: ..." and may print no answer then;
// that is the host's noise, not the server's answer, so it asks again.
func digShort(t *testing.T, server string, args ...string) []string {
	t.Helper()
	for try := 0; ; try++ {
		out := dig(t, server, append(args, "+short")...)
		var fields []string
		noise := false
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, ";;") {
				noise = true
				continue
			}
			fields = append(fields, strings.Fields(l)...)
		}
		if !noise || try == 2 {
			return fields
		}
		t.Logf("dig noise, asking again: %q", out)
	}
}

func healthHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			http.NotFound(w, r)
		}
	})
}

func failoverConfig(port int) string {
	y := strings.Replace(issueSample, "listen: 127.0.0.1:5353", "listen: 127.0.0.1:0", 1)
	y = strings.Replace(y, "api: 127.0.0.1:8053", "api: 127.0.0.1:0", 1)
	y = strings.Replace(y, "port: 18080", fmt.Sprintf("port: %d", port), 1)
	return strings.Replace(y, "tolerated_failures: 1}", "tolerated_failures: 1, required_successes: 2}", 1)
}

// TestFailoverWithDig is the issue's scenario: stop the primary's HTTP
// server, watch dig answers move to the recovery site, start it again and
// watch them come back after the required successes.
func TestFailoverWithDig(t *testing.T) {
	ls, port := testenv.LoopbackListeners(t, "127.0.0.1", "127.0.0.2")
	primary := testenv.NewHTTPEndpoint(t, ls[0], healthHandler())
	testenv.NewHTTPEndpoint(t, ls[1], healthHandler())
	s := startServer(t, failoverConfig(port))
	c := apiClient(t, s)
	addr := s.DNSAddr()
	ask := func() string { return strings.Join(digShort(t, addr, "app.example.test", "A"), " ") }
	if got := ask(); got != "127.0.0.1" {
		t.Fatalf("before failure: %q", got)
	}
	primary.Stop()
	testenv.Eventually(t, 20*time.Second, "answers to move to the recovery site", func() bool { return ask() == "127.0.0.2" })
	ep, err := c.Endpoint(context.Background(), "app.example.test", "primary")
	if err != nil || ep.State != "Degraded" || ep.LastError == "" {
		t.Fatalf("primary = %+v, %v", ep, err)
	}
	primary.Start()
	testenv.Eventually(t, 20*time.Second, "answers to come back", func() bool { return ask() == "127.0.0.1" })
	successes := probeCount(t, s, "primary", "success")
	if successes < 3 { // the first probe, then 2 after the restart
		t.Fatalf("came back after %v successful probes in all", successes)
	}
}

func probeCount(t *testing.T, s *Server, ep, result string) float64 {
	t.Helper()
	mfs, err := s.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "haven_dns_probes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labels(m.GetLabel())["endpoint"] == ep && labels(m.GetLabel())["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func labels[L interface {
	GetName() string
	GetValue() string
}](ls []L) map[string]string {
	m := map[string]string{}
	for _, l := range ls {
		m[l.GetName()] = l.GetValue()
	}
	return m
}

// TestTCPMonitorAndAPI uses TCP probes and drives a cut-over through the
// typed API client, as the orchestrator will.
func TestTCPMonitorAndAPI(t *testing.T) {
	ls, port := testenv.LoopbackListeners(t, "127.0.0.3", "127.0.0.4")
	go acceptAll(ls[0])
	go acceptAll(ls[1])
	y := fmt.Sprintf(`listen: 127.0.0.1:0
api: 127.0.0.1:0
zones: [{name: example.test}]
profiles:
  - name: app.example.test
    ttl: 5
    monitor: {protocol: tcp, port: %d, interval: 1s, timeout: 500ms}
    endpoints:
      - {name: primary, target: 127.0.0.3, priority: 1}
      - {name: recovery, target: 127.0.0.4, priority: 2}
`, port)
	s := startServer(t, y)
	ctx := context.Background()
	c := apiClient(t, s)
	testenv.Eventually(t, 20*time.Second, "both endpoints Online", func() bool {
		p, err := c.Profile(ctx, "app.example.test")
		return err == nil && p.State == "Online" && p.Endpoints[0].State == "Online" && p.Endpoints[1].State == "Online"
	})
	if got := exchangeA(t, s.DNSAddr(), "app.example.test."); !slices.Equal(got, []string{"127.0.0.3"}) {
		t.Fatalf("got %v", got)
	}
	if _, err := c.SetEnabled(ctx, "app.example.test", "primary", false); err != nil {
		t.Fatal(err)
	}
	if got := exchangeA(t, s.DNSAddr(), "app.example.test."); !slices.Equal(got, []string{"127.0.0.4"}) {
		t.Fatalf("after disabling primary: %v", got)
	}
	if _, err := c.SetEnabled(ctx, "app.example.test", "primary", true); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetPriority(ctx, "app.example.test", "recovery", 0+1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetPriority(ctx, "app.example.test", "primary", 5); err != nil {
		t.Fatal(err)
	}
	if got := exchangeA(t, s.DNSAddr(), "app.example.test."); !slices.Equal(got, []string{"127.0.0.4"}) {
		t.Fatalf("after priority change: %v", got)
	}
	// The API change survives a reload of the unchanged file.
	if err := c.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got := exchangeA(t, s.DNSAddr(), "app.example.test."); !slices.Equal(got, []string{"127.0.0.4"}) {
		t.Fatalf("after reload: %v", got)
	}
	if _, err := c.Endpoint(ctx, "app.example.test", "nope"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("unknown endpoint: %v", err)
	}
	if _, err := c.SetPriority(ctx, "app.example.test", "primary", 0); err == nil {
		t.Fatal("priority 0 accepted")
	}
	ls[0].Close()
	testenv.Eventually(t, 20*time.Second, "primary Degraded by the TCP probe", func() bool {
		ep, err := c.Endpoint(ctx, "app.example.test", "primary")
		return err == nil && ep.State == "Degraded"
	})
}

func acceptAll(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// exchangeA queries with the miekg/dns client over UDP.
func exchangeA(t *testing.T, server, name string) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	r, err := dns.Exchange(m, server)
	if err != nil {
		t.Fatal(err)
	}
	return addrsOf(r)
}
