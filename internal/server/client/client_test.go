package client_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/blob/fileblob"
	"github.com/haven-dr/haven/internal/httpauth"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/server"
	"github.com/haven-dr/haven/internal/server/client"
	"github.com/haven-dr/haven/internal/server/servertest"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/vault"
)

const doc = `sites: {primary: dc1, recovery: dc2}
networks:
  primary: [{name: prod, subnet: 10.1.0.0/24, gateway: 10.1.0.1}]
  recovery: [{name: rec, subnet: 10.1.0.0/24, gateway: 10.1.0.1}]
  test: [{name: drill, subnet: 10.1.0.0/24, gateway: 10.1.0.1}]
mapping: {recovery: {prod: rec}, test: {prod: drill}}
machines:
  - name: db
    disks: [{name: root, path: /nonexistent/db.img}]
    nics: [{name: eth0, network: prod, address: 10.1.0.10/24}]
    health: {tcp_port: 5432}
plans:
  - name: shop
    groups: [{machines: [db]}]
`

// startServer runs a real server (file vault, SQLite state) on loopback
// with doc applied, and returns it with a client holding the admin token.
func startServer(t *testing.T) (*server.Server, *client.Client, string) {
	t.Helper()
	dir := t.TempDir()
	be, err := fileblob.New(filepath.Join(dir, "vault"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.Init(context.Background(), be, "pw", vault.Options{KDF: vault.KDFParams{N: 1 << 10, R: 8, P: 1}})
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte("pw"), 0o600); err != nil {
		t.Fatal(err)
	}
	off := false
	cfg := &server.Config{StateDir: filepath.Join(dir, "state"), Vault: "file://" + filepath.Join(dir, "vault"),
		PasswordFile: pw, Standby: &off}
	if err := cfg.Defaults(); err != nil {
		t.Fatal(err)
	}
	r := servertest.Start(t, cfg, server.Options{})
	tok, err := httpauth.ReadTokenFile(cfg.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(r.Addr, tok, 10*time.Second)
	if _, err := c.Apply(context.Background(), []byte(doc)); err != nil {
		t.Fatal(err)
	}
	return r.Server, c, r.Addr
}

func wantAPIError(t *testing.T, what string, err error, status int, code string, says string) {
	t.Helper()
	var ce *client.Error
	if !errors.As(err, &ce) {
		t.Errorf("%s: err = %v (%T), want a *client.Error", what, err, err)
		return
	}
	if ce.Status != status || ce.Code != code || !strings.Contains(ce.Msg, says) {
		t.Errorf("%s: %+v, want status %d, code %q, a message saying %q", what, ce, status, code, says)
	}
	if errors.Is(err, client.ErrUnreachable) {
		t.Errorf("%s: an answer of the server is reported as unreachable", what)
	}
}

// TestErrorCodes: each kind of refusal reaches the caller as a
// *client.Error with the server's status, code and message.
func TestErrorCodes(t *testing.T) {
	s, c, addr := startServer(t)
	ctx := context.Background()

	_, err := c.Apply(ctx, []byte(strings.Replace(doc, "machines: [db]", "machines: [db, cache]", 1)))
	wantAPIError(t, "apply naming an unknown machine", err, 400, "invalid", `unknown machine "cache"`)
	_, err = c.Submit(ctx, "nope", string(orchestrator.TestFailover), api.Params{})
	wantAPIError(t, "submit on an unknown plan", err, 400, "invalid", `no plan "nope"`)
	_, err = c.Submit(ctx, "shop", string(orchestrator.Commit), api.Params{})
	wantAPIError(t, "commit before any failover", err, 412, "precondition", "only an uncommitted failover")
	_, err = c.Job(ctx, "nojob")
	wantAPIError(t, "unknown job", err, 404, "not_found", "nojob")
	_, err = c.Report(ctx, "nojob")
	wantAPIError(t, "report of an unknown job", err, 404, "not_found", "nojob")

	// A job stopped at a failed step holds the plan. It is put in the
	// store directly so that no failover runs in this test.
	held := &store.Job{ID: "held-1", Plan: "shop", Type: orchestrator.TestFailover, State: store.Failed,
		Created: time.Now().UTC(), Config: []byte("{}"), Outputs: []byte("{}")}
	if err := s.Orchestrator().Store.CreateJob(ctx, held); err != nil {
		t.Fatal(err)
	}
	_, err = c.Submit(ctx, "shop", string(orchestrator.TestFailover), api.Params{})
	wantAPIError(t, "a second job on a busy plan", err, 409, "conflict", "job held-1")
	_, err = c.Approve(ctx, "held-1")
	wantAPIError(t, "approve of a job not waiting", err, 412, "precondition", "not waiting for approval")
	if js, err := c.Jobs(ctx, "shop", false, 0); err != nil || len(js) != 1 || js[0].ID != "held-1" || js[0].State != api.JobFailed {
		t.Errorf("jobs after the refusals: %+v, %v; want only held-1, still failed", js, err)
	}

	_, err = client.New(addr, "not-the-token-0123456789", 10*time.Second).Status(ctx)
	wantAPIError(t, "wrong token", err, 401, "unauthorized", "token")
}

// TestUnreachable: a server that accepts connections and never answers
// (a hung host) costs the caller at most the client's timeout, and a
// closed port fails at once; both are ErrUnreachable, not an API error.
func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	stop := make(chan struct{})
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() { <-stop; conn.Close() }() // read nothing, answer nothing
		}
	}()
	t.Cleanup(func() { close(stop); ln.Close() })

	got := make(chan error, 1)
	go func() {
		// No deadline on ctx: only the client's own timeout can end it.
		_, err := client.New(ln.Addr().String(), "tok", 200*time.Millisecond).Status(context.Background())
		got <- err
	}()
	select {
	case err = <-got:
	case <-time.After(time.Minute):
		t.Fatal("the call to a silent server did not return: the client's timeout does not bound it")
	}
	var ce *client.Error
	if !errors.Is(err, client.ErrUnreachable) || errors.As(err, &ce) {
		t.Fatalf("silent server: err = %v, want ErrUnreachable", err)
	}
	if !strings.Contains(err.Error(), "Timeout") {
		t.Errorf("silent server: err = %v, want the client's timeout as the cause", err)
	}
	if accepted.Load() == 0 {
		t.Errorf("the silent server never got the connection: the test did not test a hung server")
	}

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := closed.Addr().String()
	closed.Close()
	_, err = client.New(addr, "tok", 10*time.Second).Status(context.Background())
	if !errors.Is(err, client.ErrUnreachable) {
		t.Errorf("closed port: err = %v, want ErrUnreachable", err)
	}
}

// TestWaitsOutLeaderChange: an answer 503 `unavailable` (HA: the lease is
// changing hands, nothing was written) is sent again with the same body
// until the new leader takes it; any other error is returned at once.
func TestWaitsOutLeaderChange(t *testing.T) {
	var calls atomic.Int32
	var bodies []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch n := calls.Add(1); {
		case r.URL.Path == "/v1/plans/busy/jobs":
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, `{"error":"another job holds the plan","code":"conflict"}`)
		case n <= 2:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error":"no leader server right now","code":"unavailable"}`)
		default:
			io.WriteString(w, `{"id":"j1","plan":"shop","type":"test-failover","state":"running"}`)
		}
	}))
	defer srv.Close()
	c := client.New(srv.URL, "tok", 10*time.Second)
	j, err := c.Submit(context.Background(), "shop", string(orchestrator.TestFailover), api.Params{})
	if err != nil || j.ID != "j1" {
		t.Fatalf("submit through a change of leader: %+v, %v", j, err)
	}
	if calls.Load() != 3 || bodies[0] == "" || bodies[0] != bodies[1] || bodies[1] != bodies[2] {
		t.Fatalf("%d calls with bodies %q: want 3 with the same body", calls.Load(), bodies)
	}
	calls.Store(0)
	_, err = c.Submit(context.Background(), "busy", string(orchestrator.TestFailover), api.Params{})
	wantAPIError(t, "a conflict", err, 409, "conflict", "another job")
	if calls.Load() != 1 {
		t.Fatalf("a conflict was sent %d times, want once", calls.Load())
	}
}
