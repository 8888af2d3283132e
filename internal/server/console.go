package server

import (
	"crypto/rand"
	"embed"
	"io/fs"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/httpauth"
)

// The console is static HTML and vanilla JS compiled into the binary; it
// calls the same /v1 API as the CLI, authenticated by a session cookie
// instead of a bearer token.
//
//go:embed web
var webFiles embed.FS

// ConsoleRoutes are the web console's routes. They are no part of the
// JSON API (Routes, openapi.yaml): they serve HTML and hold sessions.
var ConsoleRoutes = []string{
	"GET /{$}",
	"GET /ui/{$}",
	"GET /ui/login",
	"POST /ui/login",
	"POST /ui/logout",
	"GET /ui/session",
	"GET /ui/static/",
}

const (
	sessionCookie = "haven_session"
	csrfHeader    = "X-CSRF-Token"
	sessionTTL    = 12 * time.Hour
	roleAdmin     = "admin"
	roleViewer    = "viewer"
)

type session struct {
	role    string
	csrf    string
	expires time.Time
}

// sessions live in memory: a server restart logs everyone out, which
// costs a login and keeps no session secret on disk.
type sessions struct {
	mu sync.Mutex
	m  map[string]*session
}

func newSessions() *sessions { return &sessions{m: map[string]*session{}} }

func (ss *sessions) create(role string) (string, *session) {
	id := rand.Text() + rand.Text()
	s := &session{role: role, csrf: rand.Text() + rand.Text(), expires: time.Now().Add(sessionTTL)}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for k, v := range ss.m {
		if time.Now().After(v.expires) {
			delete(ss.m, k)
		}
	}
	ss.m[id] = s
	return id, s
}

func (ss *sessions) get(r *http.Request) (string, *session) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return "", nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[c.Value]
	if s == nil || time.Now().After(s.expires) {
		delete(ss.m, c.Value)
		return "", nil
	}
	return c.Value, s
}

// dropRole ends every session of role and says how many there were.
func (ss *sessions) dropRole(role string) int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	n := 0
	for id, v := range ss.m {
		if v.role == role {
			delete(ss.m, id)
			n++
		}
	}
	return n
}

// session is the live session r's cookie names. The token hashes are
// looked at first, so a rotation since the last request has ended its
// role's sessions before this one is let in.
func (s *Server) session(r *http.Request) (string, *session) {
	_ = s.tokens.reload()
	return s.sessions.get(r)
}

func (ss *sessions) drop(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, id)
}

// caller is who sent an API request: the role, or an error status and
// message. A bearer token is the CLI's way and needs no CSRF token (a
// browser never adds one by itself); a session cookie is the console's
// and must carry its CSRF token on anything but a read.
func (s *Server) caller(r *http.Request) (role string, status int, msg string) {
	const how = "missing or wrong token (Authorization: Bearer <token from the server's token file>)"
	if tok := httpauth.Bearer(r); tok != "" || r.Header.Get("Authorization") != "" {
		if role := s.tokens.role(tok); role != "" {
			return role, 0, ""
		}
		if tok != "" && s.isAgentToken(r, tok) {
			return "", http.StatusForbidden, "an agent's token may only send that agent's heartbeats"
		}
		return "", http.StatusUnauthorized, how
	}
	_, ses := s.session(r)
	if ses == nil {
		return "", http.StatusUnauthorized, how
	}
	if !readOnly(r.Method) && !httpauth.Equal(r.Header.Get(csrfHeader), ses.csrf) {
		return "", http.StatusForbidden, "missing or wrong " + csrfHeader + " header for this session"
	}
	return ses.role, 0, ""
}

func readOnly(method string) bool { return method == http.MethodGet || method == http.MethodHead }

func (s *Server) consoleHandlers() map[string]http.HandlerFunc {
	static, _ := fs.Sub(webFiles, "web")
	files := http.StripPrefix("/ui/static/", http.FileServerFS(static))
	return map[string]http.HandlerFunc{
		"GET /{$}": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		},
		"GET /ui/{$}":     s.consolePage("index.html", true),
		"GET /ui/login":   s.consolePage("login.html", false),
		"POST /ui/login":  s.login,
		"POST /ui/logout": s.logout,
		"GET /ui/session": s.sessionInfo,
		"GET /ui/static/": func(w http.ResponseWriter, r *http.Request) { secure(w); files.ServeHTTP(w, r) },
	}
}

// secure sets headers that keep the console's pages out of frames and
// forbid any script but its own files.
func secure(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: with no-referrer a browser sends
	// "Origin: null" on form posts, which the login check refuses.
	h.Set("Referrer-Policy", "same-origin")
}

func (s *Server) consolePage(name string, needSession bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, ses := s.session(r); needSession && ses == nil {
			http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
			return
		}
		b, err := webFiles.ReadFile("web/" + name)
		if err != nil {
			writeErr(w, http.StatusInternalServerError, err.Error())
			return
		}
		secure(w)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(b)
	}
}

// sameOrigin refuses a cross-site form post (login CSRF): a browser
// names the page's origin on every POST.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true // not a browser, or one that sends none: no ambient cookie is at stake
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if !sameOrigin(r) || r.ParseForm() != nil {
		writeErr(w, http.StatusForbidden, "login must come from the console's own page")
		return
	}
	tok := r.PostForm.Get("token")
	role := s.tokens.role(tok)
	if role == "" {
		s.log.Warn("console login refused", "remote", r.RemoteAddr)
		http.Redirect(w, r, "/ui/login?failed=1", http.StatusSeeOther)
		return
	}
	id, _ := s.sessions.create(role)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int(sessionTTL.Seconds())})
	s.log.Info("console login", "role", role, "remote", r.RemoteAddr)
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	id, ses := s.session(r)
	if ses == nil {
		writeErr(w, http.StatusUnauthorized, "no session")
		return
	}
	if !httpauth.Equal(r.Header.Get(csrfHeader), ses.csrf) {
		writeErr(w, http.StatusForbidden, "missing or wrong "+csrfHeader+" header for this session")
		return
	}
	s.sessions.drop(id)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) sessionInfo(w http.ResponseWriter, r *http.Request) {
	_, ses := s.session(r)
	if ses == nil {
		writeErr(w, http.StatusUnauthorized, "no session")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, api.SessionInfo{Role: ses.role, CSRF: ses.csrf})
}
