package dns

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ErrNotFound is returned for an unknown profile or endpoint.
var ErrNotFound = errors.New("not found")

// ErrBadRequest is returned for a change the API refuses.
var ErrBadRequest = errors.New("bad request")

// ErrUnauthorized is returned when the API refuses the client's token.
var ErrUnauthorized = errors.New("unauthorized")

// Handler returns the HTTP API: profiles and endpoints as JSON, run-time
// endpoint changes, reload, and /metrics. Everything under /v1/ needs the
// bearer token; /healthz (liveness, reveals nothing) never does; /metrics
// does unless the API listens on loopback.
func (s *Server) Handler() http.Handler {
	v1 := http.NewServeMux()
	v1.HandleFunc("GET /v1/profiles", s.getProfiles)
	v1.HandleFunc("GET /v1/profiles/{profile}", s.getProfile)
	v1.HandleFunc("GET /v1/profiles/{profile}/answer", s.getAnswer)
	v1.HandleFunc("GET /v1/profiles/{profile}/endpoints/{endpoint}", s.getEndpoint)
	// Endpoint changes are what a haven server's leader orders: a deposed
	// one's late order is refused (409) after the token check.
	v1.Handle("PATCH /v1/profiles/{profile}/endpoints/{endpoint}", s.epoch.Wrap(http.HandlerFunc(s.patchEndpoint)))
	v1.Handle("DELETE /v1/profiles/{profile}/endpoints/{endpoint}/override", s.epoch.Wrap(http.HandlerFunc(s.deleteOverride)))
	v1.Handle("PATCH /v1/profiles/{profile}", s.epoch.Wrap(http.HandlerFunc(s.patchProfile)))
	v1.Handle("DELETE /v1/profiles/{profile}/override", s.epoch.Wrap(http.HandlerFunc(s.deleteProfileOverride)))
	v1.HandleFunc("POST /v1/reload", s.postReload)
	v1.HandleFunc("GET /v1/state", s.getState)
	v1.Handle("POST /v1/state", s.epoch.Wrap(http.HandlerFunc(s.postState)))
	mux := http.NewServeMux()
	mux.Handle("/v1/", s.requireToken(v1))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("GET /metrics", s.metricsAuth(promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})))
	return mux
}

func (s *Server) startAPI(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("dns api listen: %w", err)
	}
	if s.auth.Load().cert != nil {
		l, s.apiTLS = tls.NewListener(l, s.tlsConfig()), true
	}
	s.apiL = l
	s.api = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	s.wg.Go(func() {
		if err := s.api.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("dns api ended", "err", err)
		}
	})
	return nil
}

func (s *Server) getProfiles(w http.ResponseWriter, _ *http.Request) {
	out := []ProfileStatus{}
	ov := s.overrides()
	for _, p := range s.table.Load().profiles {
		out = append(out, ov.profileStatus(p))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getProfile(w http.ResponseWriter, r *http.Request) {
	p := s.table.Load().profile(r.PathValue("profile"))
	if p == nil {
		writeErr(w, fmt.Errorf("profile %q: %w", r.PathValue("profile"), ErrNotFound))
		return
	}
	writeJSON(w, http.StatusOK, s.overrides().profileStatus(p))
}

func (s *Server) getEndpoint(w http.ResponseWriter, r *http.Request) {
	p, e, err := s.table.Load().endpoint(r.PathValue("profile"), r.PathValue("endpoint"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.overrides().endpointStatus(p, e))
}

func (s *Server) patchEndpoint(w http.ResponseWriter, r *http.Request) {
	var patch EndpointPatch
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&patch); err != nil {
		writeErr(w, fmt.Errorf("%w: %w", ErrBadRequest, err))
		return
	}
	gen, err := parseGeneration(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	st, err := s.UpdateEndpointAt(r.PathValue("profile"), r.PathValue("endpoint"), patch, gen)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) patchProfile(w http.ResponseWriter, r *http.Request) {
	var patch ProfilePatch
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&patch); err != nil {
		writeErr(w, fmt.Errorf("%w: %w", ErrBadRequest, err))
		return
	}
	gen, err := parseGeneration(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	st, err := s.UpdateProfileAt(r.PathValue("profile"), patch, gen)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) deleteProfileOverride(w http.ResponseWriter, r *http.Request) {
	gen, err := parseGeneration(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	st, err := s.ResetProfileAt(r.PathValue("profile"), gen)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) deleteOverride(w http.ResponseWriter, r *http.Request) {
	gen, err := parseGeneration(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	st, err := s.ResetEndpointAt(r.PathValue("profile"), r.PathValue("endpoint"), gen)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) getAnswer(w http.ResponseWriter, r *http.Request) {
	a, err := s.Answer(r.PathValue("profile"), r.URL.Query().Get("type"), r.URL.Query().Get("client"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (s *Server) postReload(w http.ResponseWriter, _ *http.Request) {
	if err := s.ReloadFile(); err != nil {
		writeErr(w, fmt.Errorf("%w: %w", ErrBadRequest, err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "reloaded"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrBadRequest), errors.Is(err, ErrConfig):
		code = http.StatusBadRequest
	case errors.Is(err, ErrStaleGeneration):
		code = http.StatusPreconditionFailed
	}
	writeJSON(w, code, apiError{Error: err.Error()})
}
