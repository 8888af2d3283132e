package server_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/httpauth"
	"github.com/haven-dr/haven/internal/server"
)

// TestAuthEveryRoute: each route but /healthz refuses a request without
// a token or with a wrong one (401), and one with a token meant for
// another role (403: an agent's token is no admin token, and the admin
// token is no agent's).
func TestAuthEveryRoute(t *testing.T) {
	e := newEnv(t, nil)
	r := e.start(t)
	// With a config applied, the heartbeat route knows its agent: a 401
	// there is the token check, not a missing config.
	r.mustApply(t, e.doc())
	agentTok := e.agentTok["dc1-agent"]
	for _, rt := range server.Routes() {
		route := rt.Pattern
		method, path := concrete(route)
		t.Run(route, func(t *testing.T) {
			if rt.Auth == server.AuthNone {
				a := r.call(t, method, path, "", nil)
				if a.status != http.StatusOK || string(a.body) != "ok\n" {
					t.Fatalf("without a token: %d %q, want 200 ok", a.status, a.body)
				}
				return
			}
			right, wrongRole := r.token, agentTok
			if rt.Auth == server.AuthAgent {
				right, wrongRole = agentTok, r.token
			}
			// httpauth's one rule: a missing or unknown token is 401, a
			// known one that lacks the role 403.
			for name, tok := range map[string]string{"no token": "", "wrong token": "x" + right[1:],
				"other role's token": wrongRole, "token prefix": right[:len(right)-1]} {
				want, code := http.StatusUnauthorized, "unauthorized"
				if name == "other role's token" {
					want, code = http.StatusForbidden, "forbidden"
				}
				a := r.call(t, method, path, tok, []byte("{}"))
				if a.status != want {
					t.Errorf("%s: status %d, want %d (%s)", name, a.status, want, a.body)
					continue
				}
				if c := a.apiError(t).Code; c != code {
					t.Errorf("%s: code %q, want %s", name, c, code)
				}
			}
			// The right token passes the check (whatever the handler
			// then makes of the request), so the 401s above are the
			// token check and not a route that refuses everyone.
			if a := r.call(t, method, path, right, []byte("{}")); a.status == http.StatusUnauthorized ||
				a.status == http.StatusNotFound && bytes.Contains(a.body, []byte("404 page not found")) {
				t.Errorf("right token: status %d %s", a.status, a.body)
			}
		})
	}
}

// TestAdminTokenFile: the first start makes the token file (mode 0600),
// the next start reuses it, and a token file others can read is refused.
func TestAdminTokenFile(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := os.Stat(e.cfg.TokenFile); !os.IsNotExist(err) {
		t.Fatalf("token file before the first start: %v", err)
	}
	first := startStop(t, e)
	fi, err := os.Stat(e.cfg.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("token file mode %v, want 0600", perm)
	}
	if len(first) < 32 {
		t.Errorf("token %q is too short to be a secret", first)
	}
	second := startStop(t, e)
	if second != first {
		t.Errorf("second start: token %q, want the first one %q", second, first)
	}

	r := e.start(t)
	if a := r.call(t, "GET", "/v1/jobs", first, nil); a.status != http.StatusOK {
		t.Errorf("the first start's token on a later start: %d %s", a.status, a.body)
	}

	if err := os.Chmod(e.cfg.TokenFile, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := server.New(context.Background(), e.cfg, server.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil {
		s.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("start with a token file mode 0644: err = %v, want a refusal naming the mode", err)
	}
	b, _ := os.ReadFile(e.cfg.TokenFile)
	if strings.TrimSpace(string(b)) != first {
		t.Errorf("the refused token file was changed: %q", b)
	}
}

// startStop starts and stops a server, returning the token in its file.
func startStop(t *testing.T, e *env) string {
	t.Helper()
	s, err := server.New(context.Background(), e.cfg, server.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	tok, err := httpauth.ReadTokenFile(e.cfg.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
