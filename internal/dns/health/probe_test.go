package health

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// Real HTTP, HTTPS and TCP servers on loopback as endpoints.

func hostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return h, n
}

func probe(t *testing.T, s Spec, host string) error {
	t.Helper()
	p, err := NewProber(s)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.Probe(ctx, host)
}

func TestHTTPProbe(t *testing.T) {
	var gotHost, gotHeader string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHost, gotHeader = r.Host, r.Header.Get("X-Check")
		switch r.URL.Path {
		case "/health":
			w.Write([]byte("status: ready"))
		case "/moved":
			http.Redirect(w, r, "/health", http.StatusFound)
		default:
			http.Error(w, "nope", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	host, port := hostPort(t, srv.Listener.Addr().String())
	base := Spec{Protocol: "http", Port: port, Path: "/health", Host: "app.example.test",
		Headers: map[string]string{"X-Check": "1"}}
	if err := probe(t, base, host); err != nil {
		t.Fatal(err)
	}
	if gotHost != "app.example.test" || gotHeader != "1" {
		t.Fatalf("server saw Host %q X-Check %q", gotHost, gotHeader)
	}
	bad := []Spec{
		with(base, func(s *Spec) { s.Path = "/down" }),
		with(base, func(s *Spec) { s.Body = "not there" }),
		with(base, func(s *Spec) { s.Path = "/moved" }),
		with(base, func(s *Spec) { s.ExpectedStatus = []StatusRange{{300, 399}} }),
	}
	for i, s := range bad {
		if err := probe(t, s, host); !errors.Is(err, ErrProbe) {
			t.Errorf("case %d: err = %v, want ErrProbe", i, err)
		}
	}
	ok := []Spec{
		with(base, func(s *Spec) { s.Body = "ready" }),
		with(base, func(s *Spec) { s.Path = "/moved"; s.ExpectedStatus = []StatusRange{{200, 200}, {301, 302}} }),
	}
	for i, s := range ok {
		if err := probe(t, s, host); err != nil {
			t.Errorf("ok case %d: %v", i, err)
		}
	}
}

func with(s Spec, f func(*Spec)) Spec { f(&s); return s }

func TestHTTPSProbeVerify(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	host, port := hostPort(t, srv.Listener.Addr().String())
	s := Spec{Protocol: "https", Port: port, Path: "/", TLSVerify: true}
	if err := probe(t, s, host); err == nil {
		t.Fatal("self-signed certificate accepted with verification on")
	}
	s.TLSVerify = false
	if err := probe(t, s, host); err != nil {
		t.Fatal(err)
	}
}

func TestTCPProbe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host, port := hostPort(t, l.Addr().String())
	s := Spec{Protocol: "tcp", Port: port}
	if err := probe(t, s, host); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if err := probe(t, s, host); err == nil {
		t.Fatal("probe of a closed port succeeded")
	}
}

func TestPoolKeepsUnchangedCheckers(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port := hostPort(t, l.Addr().String())
	p := NewPool(Hooks{})
	defer p.Close()
	spec := Spec{Protocol: "tcp", Port: port, Interval: time.Hour, Timeout: time.Second}
	a := Target{Profile: "p", Endpoint: "a", Host: "127.0.0.1", Spec: spec}
	first, err := p.Sync([]Target{a})
	if err != nil {
		t.Fatal(err)
	}
	b := a
	b.Endpoint = "b"
	second, err := p.Sync([]Target{b, a})
	if err != nil {
		t.Fatal(err)
	}
	if second[1] != first[0] || second[0] == first[0] {
		t.Fatal("unchanged target got a new checker, or a new target reused one")
	}
}
