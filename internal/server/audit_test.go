package server_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/haven-dr/haven/internal/httpauth"
	"github.com/haven-dr/haven/internal/server"
	"github.com/haven-dr/haven/internal/store"
)

// syncBuffer is a log sink the server's goroutines may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (r *running) auditLog(t *testing.T, token string) []store.AuditEntry {
	t.Helper()
	a := r.call(t, "GET", "/v1/audit", token, nil)
	if a.status != http.StatusOK {
		t.Fatalf("GET /v1/audit: %d %s", a.status, a.body)
	}
	var es []store.AuditEntry
	if err := json.Unmarshal(a.body, &es); err != nil {
		t.Fatal(err)
	}
	return es
}

// TestAuditLog: each state-changing request, refused ones included, is in
// the audit log with who sent it, from where, what, on which target and
// the status answered; reads are not; only the admin may read the log.
// The server's log output, through all of it, holds none of the secrets
// it handled.
func TestAuditLog(t *testing.T) {
	e := newEnv(t, nil)
	logs := &syncBuffer{}
	r := e.startWith(t, server.Options{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	viewer, err := httpauth.ReadTokenFile(e.cfg.ViewerTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		who, action, target string
		status              int
	}
	var wants []want
	rec := func(who, action, target string, status int) { wants = append(wants, want{who, action, target, status}) }

	a := r.admin(t, "POST", "/v1/apply", []byte(e.doc()))
	rec("admin", "apply", "", a.status)
	a = r.call(t, "POST", "/v1/plans/shop/jobs", viewer, []byte(`{"type":"test-failover"}`))
	if a.status != http.StatusForbidden {
		t.Fatalf("viewer submit: %d, want 403", a.status)
	}
	rec("viewer", "job.submit", "shop", a.status)
	a = r.admin(t, "POST", "/v1/jobs/j-none/cancel", nil)
	rec("admin", "job.cancel", "j-none", a.status)
	a = r.call(t, "POST", "/v1/jobs/j-none/retry", "wrong-token-0123456789abcdef", nil)
	rec("-", "job.retry", "j-none", a.status)
	r.admin(t, "GET", "/v1/status", nil) // a read: not recorded

	b := newBrowser(t, r)
	b.login(t, "wrong-console-token-0123456789", map[string]string{"Origin": r.base})
	rec("-", "console.login", "", http.StatusSeeOther)
	b.login(t, viewer, map[string]string{"Origin": r.base})
	rec("viewer", "console.login", "", http.StatusSeeOther)
	ses := b.session(t)
	resp, _ := b.do(t, "POST", "/ui/logout", map[string]string{"X-CSRF-Token": ses.CSRF}, "")
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	rec("session:", "console.logout", "", http.StatusNoContent)

	if a := r.call(t, "GET", "/v1/audit", viewer, nil); a.status != http.StatusForbidden {
		t.Errorf("viewer reads the audit log: %d, want 403", a.status)
	}
	if err := server.RotateToken(e.cfg, "viewer"); err != nil {
		t.Fatal(err)
	}
	got := r.auditLog(t, r.token) // this request sees tokens.json change
	rec("cli", "token.rotate", "viewer", http.StatusOK)

	if len(got) != len(wants) {
		t.Fatalf("audit log has %d entries, want %d: %+v", len(got), len(wants), got)
	}
	for i, w := range wants {
		g := got[len(got)-1-i] // newest first
		whoOK := g.Who == w.who || (w.who == "session:" && strings.HasPrefix(g.Who, "session:") && strings.HasSuffix(g.Who, "(viewer)"))
		if !whoOK || g.Action != w.action || g.Target != w.target || g.Status != w.status || g.Time.IsZero() {
			t.Errorf("entry %d = %+v, want %+v", i, g, w)
		}
		if w.who != "cli" && !strings.HasPrefix(g.Remote, "127.0.0.1:") {
			t.Errorf("entry %d remote %q, want the client's loopback address", i, g.Remote)
		}
	}
	if es := r.auditLog(t, r.token); len(es) != len(got) {
		t.Errorf("reading the log was recorded: %d entries, then %d", len(got), len(es))
	}
	if a := r.admin(t, "GET", "/v1/audit?limit=2", nil); a.status != http.StatusOK || strings.Count(string(a.body), `"action"`) != 2 {
		t.Errorf("limit=2: %d %s", a.status, a.body)
	}

	newViewer, err := httpauth.ReadTokenFile(e.cfg.ViewerTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "console login") {
		t.Fatalf("the captured log is not the server's: %q", out)
	}
	for name, secret := range map[string]string{"admin token": r.token, "viewer token": viewer, "rotated viewer token": newViewer,
		"wrong token": "wrong-token-0123456789abcdef", "wrong console token": "wrong-console-token-0123456789",
		"vault password": testPassword, "agent token": e.agentTok["dc1-agent"], "csrf token": ses.CSRF} {
		if strings.Contains(out, secret) {
			t.Errorf("the server logged the %s", name)
		}
	}
	for _, es := range got {
		if strings.Contains(es.Who, ses.CSRF) || strings.Contains(es.Who, viewer) {
			t.Errorf("audit entry holds a secret: %+v", es)
		}
	}
}
