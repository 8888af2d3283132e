package server

import (
	"cmp"
	"net/http"

	"github.com/haven-dr/haven/internal/api"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Auth is who may call a route.
type Auth string

const (
	// AuthNone: anyone (/healthz).
	AuthNone Auth = "none"
	// AuthAgent: the agent the path names, with its own token.
	AuthAgent Auth = "agent"
	// AuthRead: the admin; the viewer (token or console session) may
	// read (GET, HEAD) but not change.
	AuthRead Auth = "read"
	// AuthAdmin: the admin only, even to read.
	AuthAdmin Auth = "admin"
)

// Route is one API route: its pattern, who may call it, and its handler.
// A JSON route's handler returns (value, error) and writeAnswer encodes
// both; a raw one writes its own answer (text, YAML, metrics).
type Route struct {
	Pattern string
	Auth    Auth
	// Status answers a JSON route's success (200 when 0); a nil value
	// answers 204.
	Status int
	json   func(*Server, *http.Request) (any, error)
	raw    func(*Server, http.ResponseWriter, *http.Request)
}

// apiRoutes is the API: Handler serves exactly these, openapi.yaml
// documents the same set with the same security (openapi_test.go).
var apiRoutes = []Route{
	{Pattern: "GET /healthz", Auth: AuthNone, raw: func(_ *Server, w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) }},
	{Pattern: "GET /metrics", Auth: AuthRead, raw: (*Server).metrics},
	{Pattern: "GET /v1/openapi.yaml", Auth: AuthRead, raw: func(_ *Server, w http.ResponseWriter, r *http.Request) { serveOpenAPI(w, r) }},
	{Pattern: "POST /v1/apply", Auth: AuthRead, json: (*Server).apply},
	{Pattern: "GET /v1/config", Auth: AuthRead, json: (*Server).getConfig},
	{Pattern: "GET /v1/status", Auth: AuthRead, json: (*Server).status},
	{Pattern: "GET /v1/plans/{plan}", Auth: AuthRead, json: (*Server).planState},
	{Pattern: "POST /v1/plans/{plan}/jobs", Auth: AuthRead, Status: http.StatusAccepted, json: (*Server).submit},
	{Pattern: "GET /v1/jobs", Auth: AuthRead, json: (*Server).jobs},
	{Pattern: "GET /v1/jobs/{id}", Auth: AuthRead, json: (*Server).job},
	{Pattern: "GET /v1/jobs/{id}/logs", Auth: AuthRead, json: (*Server).logs},
	{Pattern: "GET /v1/jobs/{id}/report", Auth: AuthRead, json: (*Server).report},
	{Pattern: "POST /v1/jobs/{id}/retry", Auth: AuthRead, Status: http.StatusAccepted, json: (*Server).retry},
	{Pattern: "POST /v1/jobs/{id}/cancel", Auth: AuthRead, Status: http.StatusAccepted, json: (*Server).cancel},
	{Pattern: "POST /v1/jobs/{id}/approve", Auth: AuthRead, Status: http.StatusAccepted, json: (*Server).approve},
	{Pattern: "GET /v1/drills", Auth: AuthRead, json: (*Server).drills},
	{Pattern: "GET /v1/plans/{plan}/report", Auth: AuthRead, raw: (*Server).slaReport},
	{Pattern: "GET /v1/machines/{machine}/points", Auth: AuthRead, json: (*Server).machinePoints},
	{Pattern: "GET /v1/machines/{machine}/rpo.svg", Auth: AuthRead, raw: (*Server).rpoChart},
	{Pattern: "GET /v1/jobs/{id}/timeline.svg", Auth: AuthRead, raw: (*Server).timelineChart},
	{Pattern: "GET /v1/sitemap.svg", Auth: AuthRead, raw: (*Server).siteMapChart},
	{Pattern: "POST /v1/machines/{machine}/encryption-alerts/{alert}/close", Auth: AuthRead, json: (*Server).closeEncryptionAlert},
	{Pattern: "GET /v1/traffic", Auth: AuthRead, json: (*Server).traffic},
	{Pattern: "GET /v1/audit", Auth: AuthAdmin, json: (*Server).auditLog},
	{Pattern: "POST /v1/agents/{agent}/heartbeat", Auth: AuthAgent, json: (*Server).heartbeat},
}

// Routes is the API's route table (a copy).
func Routes() []Route { return append([]Route(nil), apiRoutes...) }

// Handler serves the API and the web console (console.go).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range apiRoutes {
		mux.Handle(rt.Pattern, s.guard(rt.Auth, s.answer(rt)))
	}
	for route, fn := range s.consoleHandlers() {
		mux.HandleFunc(route, fn)
	}
	return s.audited(mux)
}

// answer runs a route's handler and writes what it returns.
func (s *Server) answer(rt Route) http.HandlerFunc {
	if rt.raw != nil {
		return func(w http.ResponseWriter, r *http.Request) { rt.raw(s, w, r) }
	}
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := rt.json(s, r)
		switch {
		case err != nil:
			writeError(w, err)
		case v == nil:
			w.WriteHeader(http.StatusNoContent)
		default:
			writeJSON(w, cmp.Or(rt.Status, http.StatusOK), v)
		}
	}
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	promhttp.HandlerFor(s.orch.Registry(), promhttp.HandlerOpts{}).ServeHTTP(w, r)
}

// guard lets a request through to fn when its credential meets rule.
// One rule everywhere: a missing or unknown credential is 401, a known
// one that lacks the role is 403.
func (s *Server) guard(rule Auth, fn http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch rule {
		case AuthNone:
			fn(w, r)
			return
		case AuthAgent:
			if err := s.agentAuth(r); err != nil {
				writeError(w, err)
				return
			}
			// After the token: only a known agent learns the versions.
			if err := api.CheckAgentVersion(r.Header.Get(api.AgentVersionHeader)); err != nil {
				writeError(w, errStatus(http.StatusBadRequest, "%v", err))
				return
			}
			fn(w, r)
			return
		}
		role, status, msg := s.caller(r)
		if status == 0 && role != roleAdmin {
			switch {
			case rule == AuthAdmin:
				status, msg = http.StatusForbidden, "this route is for the admin only; the "+role+" role may not use it"
			case !readOnly(r.Method):
				status, msg = http.StatusForbidden, "the "+role+" role is read-only"
			}
		}
		if status != 0 {
			writeErr(w, status, msg)
			return
		}
		fn(w, r)
	}
}
