package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/httpauth"
	"github.com/haven-dr/haven/internal/server"
)

// browser is a cookie-keeping client that does not follow redirects, so
// a test sees where the console sends it.
type browser struct {
	r  *running
	hc *http.Client
}

func newBrowser(t *testing.T, r *running) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{r: r, hc: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(t *testing.T, method, path string, hdr map[string]string, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, b.r.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, out
}

func (b *browser) login(t *testing.T, token string, hdr map[string]string) *http.Response {
	t.Helper()
	h := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	for k, v := range hdr {
		h[k] = v
	}
	resp, _ := b.do(t, "POST", "/ui/login", h, url.Values{"token": {token}}.Encode())
	return resp
}

func (b *browser) session(t *testing.T) api.SessionInfo {
	t.Helper()
	resp, body := b.do(t, "GET", "/ui/session", nil, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /ui/session: %d %s", resp.StatusCode, body)
	}
	var si api.SessionInfo
	if err := json.Unmarshal(body, &si); err != nil || si.CSRF == "" {
		t.Fatalf("session %q: %v", body, err)
	}
	return si
}

// TestConsoleLogin: the console needs a login; the admin token makes an
// HttpOnly, SameSite=Strict session that reads the API, and a write
// through it needs the session's CSRF token.
func TestConsoleLogin(t *testing.T) {
	e := newEnv(t, nil)
	r := e.start(t)
	r.mustApply(t, e.doc())
	b := newBrowser(t, r)

	if resp, _ := b.do(t, "GET", "/ui/", nil, ""); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login" {
		t.Fatalf("GET /ui/ without a session: %d to %q, want 303 to /ui/login", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp := b.login(t, "x"+r.token[1:], nil); resp.Header.Get("Location") != "/ui/login?failed=1" || len(resp.Cookies()) != 0 {
		t.Fatalf("wrong token: to %q with cookies %v", resp.Header.Get("Location"), resp.Cookies())
	}
	if resp := b.login(t, r.token, map[string]string{"Origin": "http://evil.example"}); resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
		t.Fatalf("cross-site login: %d, cookies %v; want 403 and none", resp.StatusCode, resp.Cookies())
	}
	resp := b.login(t, r.token, map[string]string{"Origin": r.base})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" {
		t.Fatalf("login: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	cs := resp.Cookies()
	if len(cs) != 1 || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteStrictMode || cs[0].Value == "" {
		t.Fatalf("session cookie %+v: want one HttpOnly SameSite=Strict cookie", cs)
	}
	if strings.Contains(cs[0].Value, r.token) {
		t.Fatal("the session cookie carries the admin token")
	}
	si := b.session(t)
	if si.Role != "admin" {
		t.Fatalf("role %q, want admin", si.Role)
	}
	if resp, body := b.do(t, "GET", "/ui/", nil, ""); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "app.js") ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Fatalf("GET /ui/ with a session: %d, CSP %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}
	if resp, body := b.do(t, "GET", "/v1/status", nil, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/status with the session: %d %s", resp.StatusCode, body)
	}
	// A job type no plan accepts answers 400 once past authentication:
	// the 403s below are the CSRF check, not the handler.
	submit := `{"type":"no-such-job"}`
	for name, hdr := range map[string]map[string]string{"no CSRF token": nil,
		"wrong CSRF token": {"X-CSRF-Token": "x" + si.CSRF[1:]}, "admin token as CSRF": {"X-CSRF-Token": r.token}} {
		if resp, body := b.do(t, "POST", "/v1/plans/shop/jobs", hdr, submit); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d %s, want 403", name, resp.StatusCode, body)
		}
	}
	if resp, body := b.do(t, "POST", "/v1/plans/shop/jobs", map[string]string{"X-CSRF-Token": si.CSRF}, submit); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("with the CSRF token: %d %s, want 400 (unknown job type)", resp.StatusCode, body)
	}
	if resp, _ := b.do(t, "POST", "/ui/logout", nil, ""); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("logout without CSRF: %d, want 403", resp.StatusCode)
	}
	if resp, _ := b.do(t, "POST", "/ui/logout", map[string]string{"X-CSRF-Token": si.CSRF}, ""); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	b.hc.Jar.SetCookies(resp.Request.URL, cs) // a copied cookie outlives no logout
	if resp, _ := b.do(t, "GET", "/v1/status", nil, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after logout: %d, want 401", resp.StatusCode)
	}
}

// TestConsoleViewer: the viewer token (made 0600 at first start) reads
// everything and changes nothing, as a bearer token and as a session.
func TestConsoleViewer(t *testing.T) {
	e := newEnv(t, nil)
	r := e.start(t)
	r.mustApply(t, e.doc())
	fi, err := os.Stat(e.cfg.ViewerTokenFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("viewer token file: %v, %v; want mode 0600", fi, err)
	}
	viewer, err := httpauth.ReadTokenFile(e.cfg.ViewerTokenFile)
	if err != nil || viewer == r.token {
		t.Fatalf("viewer token %v, equal to admin's: %v", err, viewer == r.token)
	}
	b := newBrowser(t, r)
	b.login(t, viewer, nil)
	si := b.session(t)
	if si.Role != "viewer" {
		t.Fatalf("role %q, want viewer", si.Role)
	}
	for _, rt := range server.Routes() {
		route := rt.Pattern
		method, path := concrete(route)
		if rt.Auth == server.AuthAgent || rt.Auth == server.AuthNone {
			continue
		}
		body := "{}"
		if route == "POST /v1/plans/{plan}/jobs" {
			body = `{"type":"test-failover"}`
		}
		bearerAns := r.call(t, method, path, viewer, []byte(body))
		resp, sesBody := b.do(t, method, path, map[string]string{"X-CSRF-Token": si.CSRF}, body)
		if rt.Auth == server.AuthAdmin {
			if bearerAns.status != http.StatusForbidden || resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s as viewer: bearer %d, session %d; want 403", route, bearerAns.status, resp.StatusCode)
			}
			continue
		}
		if method == "GET" {
			if bearerAns.status == http.StatusUnauthorized || bearerAns.status == http.StatusForbidden || resp.StatusCode != bearerAns.status {
				t.Errorf("%s as viewer: bearer %d, session %d; want the same, past authentication", route, bearerAns.status, resp.StatusCode)
			}
			continue
		}
		if bearerAns.status != http.StatusForbidden || bearerAns.apiError(t).Code != "forbidden" || resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s as viewer: bearer %d %s, session %d %s; want 403 forbidden", route, bearerAns.status, bearerAns.body, resp.StatusCode, sesBody)
		}
	}
	var jobs []json.RawMessage
	r.admin(t, "GET", "/v1/jobs", nil).decode(t, &jobs)
	if len(jobs) != 0 {
		t.Fatalf("the viewer's refused POSTs left %d jobs", len(jobs))
	}
}

// TestConsoleRotationEndsSessions: rotating a role's token ends the
// console sessions made with it at once (they lived 12 hours before);
// the other role's sessions stay.
func TestConsoleRotationEndsSessions(t *testing.T) {
	e := newEnv(t, nil)
	r := e.start(t)
	viewer, err := httpauth.ReadTokenFile(e.cfg.ViewerTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	admin, other := newBrowser(t, r), newBrowser(t, r)
	admin.login(t, r.token, nil)
	other.login(t, viewer, nil)
	for _, b := range []*browser{admin, other} {
		if resp, body := b.do(t, "GET", "/ui/session", nil, ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("before rotation: %d %s", resp.StatusCode, body)
		}
	}
	// Rotation rewrites tokens.json; a new inode is seen at once, but
	// make sure the mtime differs too on coarse file systems.
	time.Sleep(10 * time.Millisecond)
	if err := server.RotateToken(e.cfg, "admin"); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/status", "/ui/session"} {
		if resp, body := admin.do(t, "GET", path, nil, ""); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("admin session after rotating the admin token: GET %s %d %s, want 401", path, resp.StatusCode, body)
		}
	}
	if resp, _ := admin.do(t, "GET", "/ui/", nil, ""); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("console page after rotation: %d, want a redirect to the login", resp.StatusCode)
	}
	if resp, body := other.do(t, "GET", "/ui/session", nil, ""); resp.StatusCode != http.StatusOK {
		t.Errorf("viewer session after rotating the admin token: %d %s, want 200", resp.StatusCode, body)
	}
}
