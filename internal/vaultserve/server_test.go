package vaultserve_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/vaultserve"
	"github.com/haven-dr/haven/internal/vaultserve/servetest"
)

// raw sends one request the way an attacker would, bypassing httpblob, and
// returns the status.
func raw(t *testing.T, srv *servetest.Served, method, path, token string, body []byte) int {
	t.Helper()
	pem, err := os.ReadFile(srv.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, err := http.NewRequest(method, srv.Base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func stored(t *testing.T, srv *servetest.Served, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(srv.Dir, name))
	if err != nil {
		return "<absent>"
	}
	return string(b)
}

// TestServerRefusesAgent: the server alone refuses an agent token's deletes
// and overwrites (403) and unknown tokens (401); the admin may delete.
func TestServerRefusesAgent(t *testing.T) {
	srv := servetest.Start(t, vaultserve.Config{})
	agent, admin := servetest.AgentToken, servetest.AdminToken
	obj := "/v1/objects/points/m/p1"
	steps := []struct {
		method, path, token, body string
		want                      int
		after                     string // the stored content afterwards
	}{
		{"PUT", obj, "", "x", 401, "<absent>"},
		{"PUT", obj, "wrong-token-0123456789", "x", 401, "<absent>"},
		{"PUT", obj, agent, "first", 201, "first"},
		{"PUT", obj, agent, "first", 200, "first"}, // a retry of the same write
		{"PUT", obj, agent, "other", 403, "first"},
		{"PUT", obj, agent, "", 403, "first"},
		{"DELETE", obj, agent, "", 403, "first"},
		{"DELETE", "/v1/objects/points/m/absent", agent, "", 403, "first"},
		{"PUT", "/v1/objects/points/../../../escape", agent, "x", 404, "first"}, // cleaned by the mux: no route
		{"PUT", "/v1/objects/a%2F..%2F..%2Fescape", agent, "x", 400, "first"},
		{"GET", obj, agent, "", 200, "first"},
		{"GET", "/v1/list?prefix=points/", agent, "", 200, "first"},
		{"GET", obj, "", "", 401, "first"},
		{"DELETE", obj, admin, "", 204, "<absent>"},
	}
	for i, s := range steps {
		if got := raw(t, srv, s.method, s.path, s.token, []byte(s.body)); got != s.want {
			t.Errorf("step %d %s %s (token %q): status %d, want %d", i, s.method, s.path, s.token, got, s.want)
		}
		if got := stored(t, srv, "points/m/p1"); got != s.after {
			t.Errorf("step %d: stored %q, want %q", i, got, s.after)
		}
	}
	for _, p := range []string{"escape", "../escape", "../../escape"} {
		if _, err := os.Stat(filepath.Join(srv.Dir, p)); err == nil {
			t.Errorf("a traversal wrote %s", p)
		}
	}
}

// TestDeleteDelay: with a delete delay, even the admin cannot delete or
// overwrite an object younger than it, and can once it is older.
func TestDeleteDelay(t *testing.T) {
	srv := servetest.Start(t, vaultserve.Config{DeleteDelay: time.Hour})
	admin := servetest.AdminToken
	obj := "/v1/objects/data/ab/pack"
	if got := raw(t, srv, "PUT", obj, admin, []byte("young")); got != 201 {
		t.Fatalf("put: %d", got)
	}
	if got := raw(t, srv, "DELETE", obj, admin, nil); got != 403 {
		t.Errorf("admin delete of a young object: %d, want 403", got)
	}
	if got := raw(t, srv, "PUT", obj, admin, []byte("over")); got != 403 {
		t.Errorf("admin overwrite of a young object: %d, want 403", got)
	}
	if got := stored(t, srv, "data/ab/pack"); got != "young" {
		t.Fatalf("stored %q after refused delete", got)
	}
	old := time.Now().Add(-time.Hour - time.Minute)
	if err := os.Chtimes(filepath.Join(srv.Dir, "data/ab/pack"), old, old); err != nil {
		t.Fatal(err)
	}
	if got := raw(t, srv, "DELETE", obj, admin, nil); got != 204 {
		t.Errorf("admin delete of an object older than the delay: %d, want 204", got)
	}
	if got := stored(t, srv, "data/ab/pack"); !strings.Contains(got, "absent") {
		t.Errorf("stored %q after delete", got)
	}
}
