package agent

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

type beat struct {
	path, auth string
	report     Report
	err        error
}

// TestHeartbeats runs the heartbeat loop against a real HTTP server on
// loopback: each beat carries the agent's report to the agent's route with
// its token, and a server that fails (500, then a wrong-token 401) does
// not stop the beats.
func TestHeartbeats(t *testing.T) {
	beats := make(chan beat, 16)
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := beat{path: r.Method + " " + r.URL.Path, auth: r.Header.Get("Authorization")}
		b.err = json.NewDecoder(r.Body).Decode(&b.report)
		switch n.Add(1) {
		case 1:
			w.WriteHeader(http.StatusInternalServerError)
		case 2:
			w.WriteHeader(http.StatusUnauthorized)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
		select {
		case beats <- b:
		default:
		}
	}))
	defer srv.Close()
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("s3cret-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(t.TempDir(), "disk.img")
	writeRandom(t, disk, 1<<20)
	cfg, err := ParseConfig(fmt.Sprintf(`
vault: /unused
state_dir: %s
server: {url: %s/, agent: site-a, token_file: %s, interval: 1s}
machines: [{name: m1, provider: none, disks: [{name: d0, path: %s}]}]
`, t.TempDir(), srv.URL, tok, disk))
	if err != nil {
		t.Fatal(err)
	}
	a := newAgent(cfg, newVault(t, nil))
	if err := a.Cycle(context.Background(), "m1"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Heartbeats(ctx) }()
	for range 3 {
		b := <-beats
		if b.path != "POST /v1/agents/site-a/heartbeat" || b.auth != "Bearer s3cret-0123456789abcdef" || b.err != nil {
			t.Fatalf("heartbeat %+v", b)
		}
		if len(b.report.Machines) != 1 || b.report.Machines[0].LastPoint == nil ||
			b.report.Machines[0].LastPoint.ID != a.Status().Machines[0].LastPoint.ID {
			t.Fatalf("heartbeat report %+v", b.report)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestHeartbeatsOff: without a server section the loop returns at once.
func TestHeartbeatsOff(t *testing.T) {
	disk := filepath.Join(t.TempDir(), "disk.img")
	a := newAgent(testConfig(t, ProviderNone, disk), newVault(t, nil))
	if err := a.Heartbeats(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestHeartbeatLogIsRateLimited(t *testing.T) {
	h := &heartbeat{cfg: &ServerConfig{URL: "http://127.0.0.1:1"}}
	h.note(fmt.Errorf("refused"))
	first := h.logged
	h.note(fmt.Errorf("refused"))
	if h.failing != 2 || h.logged != first || first.IsZero() {
		t.Fatalf("failing %d, logged %v then %v", h.failing, first, h.logged)
	}
	h.note(nil)
	if h.failing != 0 {
		t.Fatal("recovery not noted")
	}
}

// TestHeartbeatsTLSCAFile: with server.ca_file the agent trusts a server
// whose certificate that CA signed (haven server in tls mode auto); a
// ca_file that holds no certificate is refused at parse time.
func TestHeartbeatsTLSCAFile(t *testing.T) {
	got := make(chan string, 4)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
		select {
		case got <- r.URL.Path:
		default:
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("s3cret-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(dir, "disk.img")
	writeRandom(t, disk, 1<<20)
	doc := func(caFile string) string {
		return fmt.Sprintf(`
vault: /unused
state_dir: %s
server: {url: %s, agent: site-a, token_file: %s, interval: 1s, ca_file: %s}
machines: [{name: m1, provider: none, disks: [{name: d0, path: %s}]}]
`, t.TempDir(), srv.URL, tok, caFile, disk)
	}
	if _, err := ParseConfig(doc(tok)); err == nil || !strings.Contains(err.Error(), "ca_file") {
		t.Errorf("a ca_file with no certificate: %v, want an error naming server.ca_file", err)
	}
	cfg, err := ParseConfig(doc(ca))
	if err != nil {
		t.Fatal(err)
	}
	a := newAgent(cfg, newVault(t, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Heartbeats(ctx) }()
	if p := <-got; p != "/v1/agents/site-a/heartbeat" {
		t.Errorf("heartbeat to %s", p)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
