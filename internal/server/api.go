package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Routes are the API's routes; the OpenAPI document (openapi.yaml) lists
// the same set, which a test checks.
var Routes = []string{
	"GET /healthz",
	"GET /metrics",
	"GET /v1/openapi.yaml",
	"POST /v1/apply",
	"GET /v1/config",
	"GET /v1/status",
	"GET /v1/plans/{plan}",
	"POST /v1/plans/{plan}/jobs",
	"GET /v1/jobs",
	"GET /v1/jobs/{id}",
	"GET /v1/jobs/{id}/logs",
	"GET /v1/jobs/{id}/report",
	"POST /v1/jobs/{id}/retry",
	"POST /v1/jobs/{id}/cancel",
	"POST /v1/jobs/{id}/approve",
	"GET /v1/drills",
	"GET /v1/machines/{machine}/points",
	"GET /v1/traffic",
	"GET /v1/audit",
	"POST /v1/agents/{agent}/heartbeat",
}

// Handler serves the API and the web console (console.go). Every API
// route but /healthz needs the admin token (the viewer token or a console
// session may read), except an agent's heartbeat, which needs that
// agent's token.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	h := map[string]http.HandlerFunc{
		"GET /healthz":                      func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) },
		"GET /metrics":                      promhttp.HandlerFor(s.orch.Registry(), promhttp.HandlerOpts{}).ServeHTTP,
		"GET /v1/openapi.yaml":              serveOpenAPI,
		"POST /v1/apply":                    s.apply,
		"GET /v1/config":                    s.getConfig,
		"GET /v1/status":                    s.status,
		"GET /v1/plans/{plan}":              s.planState,
		"POST /v1/plans/{plan}/jobs":        s.submit,
		"GET /v1/jobs":                      s.jobs,
		"GET /v1/jobs/{id}":                 s.job,
		"GET /v1/jobs/{id}/logs":            s.logs,
		"GET /v1/jobs/{id}/report":          s.report,
		"POST /v1/jobs/{id}/retry":          s.jobAction(s.orch.Retry),
		"POST /v1/jobs/{id}/cancel":         s.jobAction(s.orch.Cancel),
		"POST /v1/jobs/{id}/approve":        s.jobAction(s.orch.Approve),
		"GET /v1/drills":                    s.drills,
		"GET /v1/machines/{machine}/points": s.machinePoints,
		"GET /v1/traffic":                   s.traffic,
		"GET /v1/audit":                     s.auditLog,
		"POST /v1/agents/{agent}/heartbeat": s.heartbeat,
	}
	for _, route := range Routes {
		fn := h[route]
		switch route {
		case "GET /healthz":
			mux.HandleFunc(route, fn)
		case "POST /v1/agents/{agent}/heartbeat":
			mux.HandleFunc(route, fn) // checks the agent's own token
		default:
			mux.HandleFunc(route, s.admin(fn))
		}
	}
	for route, fn := range s.consoleHandlers() {
		mux.HandleFunc(route, fn)
	}
	return s.audited(mux)
}

func (s *Server) admin(fn http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		role, status, msg := s.caller(r)
		if status == 0 && role != roleAdmin && !readOnly(r.Method) {
			status, msg = http.StatusForbidden, "the "+role+" role is read-only"
		}
		if status != 0 {
			writeErr(w, status, msg)
			return
		}
		fn(w, r)
	}
}

// APIError is the body of every error answer.
type APIError struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"` // conflict, precondition, invalid, not_found
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeErr(w http.ResponseWriter, status int, msg string) {
	code := map[int]string{http.StatusConflict: "conflict", http.StatusPreconditionFailed: "precondition",
		http.StatusBadRequest: "invalid", http.StatusNotFound: "not_found", http.StatusUnauthorized: "unauthorized",
		http.StatusForbidden: "forbidden"}[status]
	writeJSON(w, status, APIError{Error: msg, Code: code})
}

func writeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, store.ErrConflict):
		writeErr(w, http.StatusConflict, err.Error())
	case errors.Is(err, orchestrator.ErrPrecondition):
		writeErr(w, http.StatusPreconditionFailed, err.Error())
	case errors.Is(err, protection.ErrInvalid), errors.Is(err, orchestrator.ErrBadRequest):
		writeErr(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, store.ErrNotFound):
		writeErr(w, http.StatusNotFound, err.Error())
	default:
		writeErr(w, http.StatusInternalServerError, err.Error())
	}
}

// ApplyResult answers POST /v1/apply.
type ApplyResult struct {
	Version  int64 `json:"version"`
	Machines int   `json:"machines"`
	Plans    int   `json:"plans"`
}

func (s *Server) apply(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		writeErr(w, http.StatusBadRequest, err.Error())
		return
	}
	v, c, err := s.orch.Apply(r.Context(), b)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ApplyResult{Version: v, Machines: len(c.Machines), Plans: len(c.Plans)})
}

// ConfigResult answers GET /v1/config.
type ConfigResult struct {
	Version int64              `json:"version"`
	Config  *protection.Config `json:"config"`
}

func (s *Server) getConfig(w http.ResponseWriter, r *http.Request) {
	c, v, err := s.orch.Config(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ConfigResult{Version: v, Config: c})
}

func (s *Server) planState(w http.ResponseWriter, r *http.Request) {
	c, _, err := s.orch.Config(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	if c.Plan(r.PathValue("plan")) == nil {
		writeErr(w, http.StatusNotFound, "no plan "+r.PathValue("plan")+" in the applied config")
		return
	}
	st, err := s.store.PlanState(r.Context(), r.PathValue("plan"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// SubmitRequest is the body of POST /v1/plans/{plan}/jobs.
type SubmitRequest struct {
	Type   string              `json:"type"`
	Params orchestrator.Params `json:"params"`
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request) {
	var req SubmitRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	j, err := s.orch.Submit(r.Context(), req.Type, r.PathValue("plan"), req.Params)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, j)
}

func (s *Server) jobs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	js, err := s.store.Jobs(r.Context(), store.JobFilter{Plan: q.Get("plan"), Active: q.Get("active") == "true", Limit: limit})
	if err != nil {
		writeError(w, err)
		return
	}
	if js == nil {
		js = []*store.Job{}
	}
	writeJSON(w, http.StatusOK, js)
}

func (s *Server) job(w http.ResponseWriter, r *http.Request) {
	j, err := s.store.Job(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

func (s *Server) report(w http.ResponseWriter, r *http.Request) {
	j, err := s.store.Job(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	rep, err := orchestrator.BuildReport(j)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (s *Server) logs(w http.ResponseWriter, r *http.Request) {
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	ls, err := s.store.Logs(r.Context(), r.PathValue("id"), after)
	if err != nil {
		writeError(w, err)
		return
	}
	if ls == nil {
		ls = []store.LogLine{}
	}
	writeJSON(w, http.StatusOK, ls)
}

func (s *Server) jobAction(fn func(context.Context, string) (*store.Job, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		j, err := fn(r.Context(), r.PathValue("id"))
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusAccepted, j)
	}
}

func (s *Server) drills(w http.ResponseWriter, r *http.Request) {
	ds, err := s.store.Drills(r.Context(), r.URL.Query().Get("plan"))
	if err != nil {
		writeError(w, err)
		return
	}
	if ds == nil {
		ds = []store.Drill{}
	}
	writeJSON(w, http.StatusOK, ds)
}

func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("agent")
	c, _, err := s.orch.Config(r.Context())
	if errors.Is(err, store.ErrNotFound) {
		writeErr(w, http.StatusUnauthorized, "unknown agent or no token configured for it")
		return
	} else if err != nil {
		writeError(w, err)
		return
	}
	a := c.AgentByName(name)
	if a == nil || a.TokenFile == "" {
		writeErr(w, http.StatusUnauthorized, "unknown agent or no token configured for it")
		return
	}
	tok, err := ReadToken(a.TokenFile)
	if err != nil || !tokenEqual(bearer(r), tok) {
		writeErr(w, http.StatusUnauthorized, "wrong agent token")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil || !json.Valid(body) {
		writeErr(w, http.StatusBadRequest, "body must be the agent's JSON report")
		return
	}
	if err := s.store.PutHeartbeat(r.Context(), store.Heartbeat{Agent: name, Time: time.Now().UTC(), Report: body}); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
