package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/httpauth"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
)

// maxApply bounds a protection document; a bigger one is refused whole
// (413), never cut and applied in part.
const maxApply = 4 << 20

// APIError is the body of every error answer.
type APIError = api.Error

// httpError is an error answer a handler chose the status of.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errStatus(status int, format string, args ...any) error {
	return &httpError{status, fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

var errorCodes = map[int]string{
	http.StatusBadRequest: api.CodeInvalid, http.StatusUnauthorized: api.CodeUnauthorized,
	http.StatusForbidden: api.CodeForbidden, http.StatusNotFound: api.CodeNotFound,
	http.StatusConflict: api.CodeConflict, http.StatusPreconditionFailed: api.CodePrecondition,
	http.StatusRequestEntityTooLarge: api.CodeTooLarge, http.StatusServiceUnavailable: api.CodeUnavailable,
}

func writeErr(w http.ResponseWriter, status int, msg string) {
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, api.Error{Error: msg, Code: errorCodes[status]})
}

// errorStatus maps an error to the status every route answers it with.
func errorStatus(err error) int {
	var he *httpError
	var ref *httpauth.Refusal
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		return he.status
	case errors.As(err, &ref):
		return ref.Status
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrStale):
		// Stale: another writer changed the job or plan since it was
		// read (a cancel racing an approve); the caller reads again.
		return http.StatusConflict
	case errors.Is(err, store.ErrNotLeader):
		// The write was fenced off before it committed: the lease is
		// changing hands, and the caller retries against the new leader.
		return http.StatusServiceUnavailable
	case errors.Is(err, orchestrator.ErrPrecondition):
		return http.StatusPreconditionFailed
	case errors.Is(err, protection.ErrInvalid), errors.Is(err, orchestrator.ErrBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

func writeError(w http.ResponseWriter, err error) {
	writeErr(w, errorStatus(err), err.Error())
}

// readBody reads a request body of at most limit bytes; a longer one is
// an error (413), so no handler acts on a prefix.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, errStatus(http.StatusBadRequest, "body: %v", err)
	}
	if int64(len(b)) > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	return b, nil
}

func (s *Server) apply(r *http.Request) (any, error) {
	b, err := readBody(r, maxApply)
	if err != nil {
		return nil, err
	}
	a, err := s.orch.ApplyDoc(r.Context(), b)
	if err != nil {
		return nil, err
	}
	return api.ApplyResult{Version: a.Version, Machines: len(a.Config.Machines), Plans: len(a.Config.Plans),
		Placement: a.Placement, Warnings: a.Warnings}, nil
}

func (s *Server) getConfig(r *http.Request) (any, error) {
	c, v, err := s.orch.Config(r.Context())
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	return api.ConfigResult{Version: v, Config: b}, nil
}

func (s *Server) planState(r *http.Request) (any, error) {
	c, _, err := s.orch.Config(r.Context())
	if err != nil {
		return nil, err
	}
	if c.Plan(r.PathValue("plan")) == nil {
		return nil, errStatus(http.StatusNotFound, "no plan %s in the applied config", r.PathValue("plan"))
	}
	st, err := s.store.PlanState(r.Context(), r.PathValue("plan"))
	if err != nil {
		return nil, err
	}
	return wire[api.PlanState](st)
}

func (s *Server) submit(r *http.Request) (any, error) {
	var req api.SubmitRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, errStatus(http.StatusBadRequest, "body: %v", err)
	}
	p, err := wire[orchestrator.Params](req.Params)
	if err != nil {
		return nil, err
	}
	return wireJob(s.orch.Submit(r.Context(), orchestrator.JobType(req.Type), r.PathValue("plan"), p))
}

func (s *Server) jobs(r *http.Request) (any, error) {
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	js, err := s.store.Jobs(r.Context(), store.JobFilter{Plan: q.Get("plan"), Active: q.Get("active") == "true", Limit: limit})
	if err != nil {
		return nil, err
	}
	return wireList[api.Job](js)
}

func (s *Server) job(r *http.Request) (any, error) {
	return wireJob(s.store.Job(r.Context(), r.PathValue("id")))
}

func (s *Server) report(r *http.Request) (any, error) {
	j, err := s.store.Job(r.Context(), r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	rep, err := orchestrator.BuildReport(j)
	if err != nil {
		return nil, err
	}
	return wire[api.Report](rep)
}

func (s *Server) logs(r *http.Request) (any, error) {
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	ls, err := s.store.Logs(r.Context(), r.PathValue("id"), after)
	if err != nil {
		return nil, err
	}
	return wireList[api.LogLine](ls)
}

func (s *Server) retry(r *http.Request) (any, error) {
	return wireJob(s.orch.Retry(r.Context(), r.PathValue("id")))
}

func (s *Server) cancel(r *http.Request) (any, error) {
	return wireJob(s.orch.Cancel(r.Context(), r.PathValue("id")))
}

func (s *Server) approve(r *http.Request) (any, error) {
	return wireJob(s.orch.Approve(r.Context(), r.PathValue("id")))
}

func (s *Server) drills(r *http.Request) (any, error) {
	ds, err := s.store.Drills(r.Context(), r.URL.Query().Get("plan"))
	if err != nil {
		return nil, err
	}
	return wireList[api.Drill](ds)
}

// agentAuth lets an agent's heartbeat in with that agent's own token. The
// admin's, the viewer's or another agent's token is known but not this
// agent's: 403, as everywhere.
func (s *Server) agentAuth(r *http.Request) error {
	unknown := httpauth.Unauthorized("unknown agent or no token configured for it")
	c, _, err := s.orch.Config(r.Context())
	if errors.Is(err, store.ErrNotFound) {
		return unknown
	} else if err != nil {
		return err
	}
	a := c.AgentByName(r.PathValue("agent"))
	if a == nil || a.TokenFile == "" {
		return unknown
	}
	tok, err := httpauth.ReadTokenFile(a.TokenFile)
	if err != nil {
		return httpauth.Unauthorized("agent " + a.Name + " has no readable token file on the server")
	}
	if ref := httpauth.Check(r, tok, "the token of agent "+a.Name+"'s token_file"); ref != nil {
		if tok := httpauth.Bearer(r); tok != "" && (s.tokens.role(tok) != "" || s.isAgentToken(r, tok)) {
			return httpauth.Forbidden("this token is not agent " + a.Name + "'s: send heartbeats with the agent's own token")
		}
		return ref
	}
	return nil
}

// isAgentToken tells whether tok is some configured agent's token: known
// to the server, but good for heartbeats only.
func (s *Server) isAgentToken(r *http.Request, tok string) bool {
	c, _, err := s.orch.Config(r.Context())
	if err != nil {
		return false
	}
	for _, a := range c.Agents {
		if a.TokenFile == "" {
			continue
		}
		if at, err := httpauth.ReadTokenFile(a.TokenFile); err == nil && httpauth.Equal(tok, at) {
			return true
		}
	}
	return false
}

func (s *Server) heartbeat(r *http.Request) (any, error) {
	body, err := readBody(r, 4<<20)
	if err != nil {
		return nil, err
	}
	if !json.Valid(body) {
		return nil, errStatus(http.StatusBadRequest, "body must be the agent's JSON report")
	}
	hb := store.Heartbeat{Agent: r.PathValue("agent"), Time: time.Now().UTC(), Report: body}
	err = s.store.PutHeartbeat(r.Context(), hb)
	s.alerts.poke() // a new point may need judging (encryption.go)
	return nil, err
}
