package dns

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/dns/health"
	"github.com/haven-dr/haven/internal/testenv"
)

// Health across reloads and unprobed endpoints: real HTTP endpoints on
// loopback (the primary answers 503), real DNS queries.

const healthProfile = `listen: 127.0.0.1:0
zones: [{name: example.test}]
profiles:
  - name: app.example.test
    ttl: 5
    monitor: {protocol: http, port: %d, path: /health, interval: %s, tolerated_failures: %d%s}
    endpoints:
      - {name: primary, target: 127.0.0.1, priority: 1}
      - {name: recovery, target: 127.0.0.2, priority: 2}
`

func deadHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	})
}

// heldHandler answers 200 at once, except to probes with an X-Hold header,
// which it holds until release: a probe in flight that the test controls.
type heldHandler struct{ release chan struct{} }

func (g heldHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Hold") == "" {
		return
	}
	select {
	case <-g.release:
	case <-r.Context().Done():
	}
}

func endpointState(s *Server, ep string) string {
	_, e, err := s.table.Load().endpoint("app.example.test", ep)
	if err != nil {
		return err.Error()
	}
	p := s.table.Load().profile("app.example.test")
	return e.state(p).String()
}

// TestReloadKeepsKnownHealth: a reload that changes the monitor used to
// restart every endpoint in CheckingEndpoint, so the dead primary was served
// again. The recovery's new probe is held in flight, so the answer right
// after the reload can only come from the health known before it.
func TestReloadKeepsKnownHealth(t *testing.T) {
	ls, port := testenv.LoopbackListeners(t, "127.0.0.1", "127.0.0.2")
	testenv.NewHTTPEndpoint(t, ls[0], deadHandler())
	gate := heldHandler{release: make(chan struct{})}
	testenv.NewHTTPEndpoint(t, ls[1], gate)
	defer close(gate.release)
	s := startServer(t, fmt.Sprintf(healthProfile, port, "1s", 0, ""))
	testenv.Eventually(t, 20*time.Second, "primary Degraded and recovery Online", func() bool {
		return endpointState(s, "primary") == "Degraded" && endpointState(s, "recovery") == "Online"
	})
	if got := exchangeA(t, s.DNSAddr(), "app.example.test."); !slices.Equal(got, []string{"127.0.0.2"}) {
		t.Fatalf("before reload: %v", got)
	}
	// A new monitor: every checker is replaced, and the new ones' probes of
	// the recovery are held. Two tolerated failures and a long interval keep
	// a fresh primary checker in CheckingEndpoint.
	y := fmt.Sprintf(healthProfile, port, "300s", 2, ", headers: {X-Hold: '1'}")
	if err := os.WriteFile(s.path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.ReloadFile(); err != nil {
		t.Fatal(err)
	}
	if got := exchangeA(t, s.DNSAddr(), "app.example.test."); !slices.Equal(got, []string{"127.0.0.2"}) {
		t.Fatalf("right after the reload: %v (primary %s, recovery %s)", got,
			endpointState(s, "primary"), endpointState(s, "recovery"))
	}
	if st := endpointState(s, "primary"); st != "Degraded" {
		t.Fatalf("primary after reload: %s", st)
	}
}

// TestUnprobedNotPreferred: a primary whose probes failed but not yet often
// enough for a verdict (CheckingEndpoint) must not be answered while the
// recovery has passed its probe.
func TestUnprobedNotPreferred(t *testing.T) {
	ls, port := testenv.LoopbackListeners(t, "127.0.0.1", "127.0.0.2")
	testenv.NewHTTPEndpoint(t, ls[0], deadHandler())
	testenv.NewHTTPEndpoint(t, ls[1], healthHandler())
	s := startServer(t, fmt.Sprintf(healthProfile, port, "300s", 3, ""))
	testenv.Eventually(t, 20*time.Second, "recovery Online and the primary's first probe failed", func() bool {
		return endpointState(s, "recovery") == "Online" && probeCount(t, s, "primary", "failure") >= 1
	})
	if st := endpointState(s, "primary"); st != "CheckingEndpoint" {
		t.Fatalf("primary: %s, want CheckingEndpoint (3 tolerated failures)", st)
	}
	if got := exchangeA(t, s.DNSAddr(), "app.example.test."); !slices.Equal(got, []string{"127.0.0.2"}) {
		t.Fatalf("answered %v, want the probed recovery", got)
	}
}

// TestNestedUnprobedChild: a nested endpoint whose child has only unprobed
// endpoints is itself unprobed (CheckingEndpoint), so it loses to a proven
// sibling instead of counting as Online.
func TestNestedUnprobedChild(t *testing.T) {
	s := newTestServer(t, `zones: [{name: example.test}]
profiles:
  - name: child.example.test
    endpoints:
      - {name: c1, target: 127.0.0.11}
  - name: app.example.test
    endpoints:
      - {name: nested, profile: child.example.test, priority: 1}
      - {name: direct, target: 127.0.0.12, priority: 2}
`)
	_, c1, err := s.table.Load().endpoint("child.example.test", "c1")
	if err != nil {
		t.Fatal(err)
	}
	c1.checker = health.NewChecker("child.example.test.", "c1", "127.0.0.11", health.Spec{}, nil, health.Hooks{})
	setHealth(t, s, "app.example.test", "direct", true)
	a, err := s.Answer("app.example.test", "A", "")
	if err != nil || !slices.Equal(a.Endpoints, []string{"direct"}) {
		t.Fatalf("answer %+v, %v", a, err)
	}
	if st, _ := s.Answer("child.example.test", "A", ""); !slices.Equal(st.Endpoints, []string{"c1"}) {
		t.Fatalf("the child alone still answers its unprobed endpoint (nothing proven there): %+v", st)
	}
	if got := endpointStateOf(s, "app.example.test", "nested"); got != "CheckingEndpoint" {
		t.Fatalf("nested endpoint state %s", got)
	}
}

func endpointStateOf(s *Server, profile, ep string) string {
	p, e, err := s.table.Load().endpoint(profile, ep)
	if err != nil {
		return err.Error()
	}
	return e.state(p).String()
}
