package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/dns"
	"github.com/haven-dr/haven/internal/testenv"
)

// startDNS runs a real traffic manager (in process) answering
// app.example.test with dc1 (127.0.0.1) before dc2 (127.0.0.2).
func startDNS(t *testing.T, dir, name string) (*dns.Server, string) {
	t.Helper()
	tok := filepath.Join(dir, name+".token")
	if err := os.WriteFile(tok, []byte(strings.Repeat("k", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".yaml")
	doc := fmt.Sprintf(`listen: 127.0.0.1:0
api: 127.0.0.1:0
api_token_file: %s
zones: [{name: example.test}]
profiles:
  - name: app.example.test
    ttl: 1
    endpoints:
      - {name: dc1, target: 127.0.0.1, priority: 1}
      - {name: dc2, target: 127.0.0.2, priority: 2}
`, tok)
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := dns.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := dns.New(cfg, dns.Options{ConfigPath: path, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, fmt.Sprintf(`{name: %s, api: "%s", token_file: %s, resolve: "%s"}`, name, s.APIURL(), tok, s.DNSAddr())
}

// TestStatusShowsDNSServers: with two traffic manager servers, the
// server's traffic loop re-pushes a change one of them missed, and
// /v1/status shows each server's reachability, generation and answer;
// a stopped server is shown unreachable.
func TestStatusShowsDNSServers(t *testing.T) {
	e := newEnv(t, nil)
	e.cfg.TrafficInterval = 200 * time.Millisecond
	r := e.start(t)
	dir := t.TempDir()
	a, aDoc := startDNS(t, dir, "dnsa")
	b, bDoc := startDNS(t, dir, "dnsb")
	doc := e.doc() + "traffic: {servers: [" + aDoc + ", " + bDoc + "]}\n"
	doc = strings.Replace(doc, "        machines: [web]\n",
		"        machines: [web]\n        after: [{type: dns, profile: app.example.test, endpoint: dc2}]\n", 1)
	r.mustApply(t, doc)

	// A change that reached server a only (b was cut off at the time).
	c, err := dns.NewClient(a.APIURL(), dns.ClientOptions{TokenFile: filepath.Join(dir, "dnsa.token")})
	if err != nil {
		t.Fatal(err)
	}
	off := false
	if _, err := c.UpdateEndpoint(dns.WithGeneration(context.Background(), 42), "app.example.test", "dc1",
		dns.EndpointPatch{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	var st api.Status
	testenv.Eventually(t, 10*time.Second, "both servers at generation 42 answering dc2", func() bool {
		r.admin(t, "GET", "/v1/status", nil).decode(t, &st)
		if len(st.DNSServers) != 2 {
			return false
		}
		for _, d := range st.DNSServers {
			if !d.Reachable || d.Generation != 42 || len(d.Answers) != 1 || !slices.Equal(d.Answers[0].Answers, []string{"127.0.0.2"}) {
				return false
			}
		}
		return true
	})
	if st.DNSServers[0].Name != "dnsa" || st.DNSServers[1].Name != "dnsb" || st.DNSServers[0].Answers[0].Profile != "app.example.test" {
		t.Fatalf("status: %+v", st.DNSServers)
	}
	b.Close()
	testenv.Eventually(t, 10*time.Second, "dnsb shown unreachable", func() bool {
		r.admin(t, "GET", "/v1/status", nil).decode(t, &st)
		return len(st.DNSServers) == 2 && st.DNSServers[0].Reachable && !st.DNSServers[1].Reachable && st.DNSServers[1].Error != ""
	})
}
