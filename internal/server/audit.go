package server

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/httpauth"
	"github.com/haven-dr/haven/internal/store"
)

// auditActions are the requests the audit log records, by route. An
// agent's heartbeat changes state too, but every few seconds: it would
// bury the operators' actions.
var auditActions = map[string]struct{ action, target string }{
	"POST /v1/apply":                                              {"apply", ""},
	"POST /v1/plans/{plan}/jobs":                                  {"job.submit", "plan"},
	"POST /v1/jobs/{id}/retry":                                    {"job.retry", "id"},
	"POST /v1/jobs/{id}/cancel":                                   {"job.cancel", "id"},
	"POST /v1/jobs/{id}/approve":                                  {"job.approve", "id"},
	"POST /v1/machines/{machine}/encryption-alerts/{alert}/close": {"encryption-alert.close", "machine"},
	"POST /ui/login":                                              {"console.login", ""},
	"POST /ui/logout":                                             {"console.logout", ""},
}

// statusWriter keeps the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// audited records every state-changing request that reaches a route in
// auditActions, refused ones included.
func (s *Server) audited(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if readOnly(r.Method) {
			mux.ServeHTTP(w, r)
			return
		}
		// Before serving: a logout ends the session it names.
		who := s.who(r)
		sw := &statusWriter{ResponseWriter: w}
		mux.ServeHTTP(sw, r)
		a, ok := auditActions[r.Pattern]
		if !ok {
			return
		}
		if r.Pattern == "POST /ui/login" {
			// The form is parsed by now; its token is hashed, never kept.
			if who = s.tokens.role(r.PostForm.Get("token")); who == "" {
				who = "-"
			}
		}
		e := store.AuditEntry{Time: time.Now().UTC(), Who: who, Remote: r.RemoteAddr, Action: a.action, Status: sw.status}
		if a.target != "" {
			e.Target = r.PathValue(a.target)
		}
		s.audit(r.Context(), e)
	})
}

// who names the sender of r without any secret: a role for a bearer
// token, a session id prefix (and its role) for the console.
func (s *Server) who(r *http.Request) string {
	if r.Header.Get("Authorization") != "" {
		if role := s.tokens.role(httpauth.Bearer(r)); role != "" {
			return role
		}
		return "-"
	}
	if id, ses := s.session(r); ses != nil {
		return "session:" + id[:8] + " (" + ses.role + ")"
	}
	return "-"
}

func (s *Server) audit(ctx context.Context, e store.AuditEntry) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.store.AppendAudit(ctx, e); err != nil {
		s.log.Warn("audit log: entry not recorded", "action", e.Action, "who", e.Who, "err", err)
	}
}

// tokenRotated records a rotation by `haven server token rotate`, seen
// when tokens.json changed under the running server.
// The role's console sessions end with it: a session made with the old
// token must not outlive the token (a rotation is often a revocation).
func (s *Server) tokenRotated(role string) {
	n := s.sessions.dropRole(role)
	s.log.Info("token rotated", "role", role, "sessions_ended", n)
	s.audit(context.Background(), store.AuditEntry{Time: time.Now().UTC(), Who: "cli", Remote: "local",
		Action: "token.rotate", Target: role, Status: http.StatusOK})
}

// auditLog answers GET /v1/audit: the admin's only (the viewer may read
// everything else, but who did what is the admin's business); the route
// table holds that rule.
func (s *Server) auditLog(r *http.Request) (any, error) {
	limit := 100
	if q := r.URL.Query().Get("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 {
			return nil, errStatus(http.StatusBadRequest, "limit: want a positive integer")
		}
		limit = n
	}
	es, err := s.store.Audit(r.Context(), limit)
	if err != nil {
		return nil, err
	}
	return wireList[api.AuditEntry](es)
}
