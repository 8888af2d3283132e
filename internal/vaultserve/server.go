// Package vaultserve is `haven vault serve`: a small repository server that
// keeps vaults in a local directory and hands them out over HTTPS to agents
// that may only add objects. The server enforces it by itself, whatever the
// client does: an agent token may create, read and list; a write over an
// existing name with other content and every delete are refused (403). Only
// the admin token deletes, and with a delete delay only objects older than
// it, so a stolen admin token still cannot destroy a recent point at once.
//
// The wire protocol is internal/blob/httpblob's client, and nothing else:
//
//	GET    /v1/objects/NAME?offset=N&length=N   read (length -1: to the end)
//	HEAD   /v1/objects/NAME                     stat (X-Haven-Size, X-Haven-Modtime)
//	PUT    /v1/objects/NAME                     create (Content-Length required)
//	DELETE /v1/objects/NAME                     admin only
//	GET    /v1/list?prefix=P                    JSON lines, then {"end":true}
package vaultserve

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"sync"
	"time"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/fileblob"
	"github.com/haven-dr/haven/internal/httpauth"
)

// MaxObject bounds one upload: packs are 8 MiB by default and at most
// 256 MiB (vault pack_size); anything larger is refused before it is read.
const MaxObject = 512 << 20

// Config is what a server needs.
type Config struct {
	Dir         string        // where the objects live (a fileblob directory)
	AgentTokens []string      // create, read, list
	AdminTokens []string      // also delete and overwrite
	DeleteDelay time.Duration // admin deletes only objects older than this
}

// Server serves one store.
type Server struct {
	cfg   Config
	be    blob.Backend
	names [64]sync.Mutex // striped by name: check-then-create is one step
	now   func() time.Time
}

type role int

const (
	roleNone role = iota
	roleAgent
	roleAdmin
)

// New opens (creating if needed) the store directory.
func New(cfg Config) (*Server, error) {
	if len(cfg.AgentTokens)+len(cfg.AdminTokens) == 0 {
		return nil, errors.New("vault serve: no tokens configured")
	}
	for _, t := range append(append([]string{}, cfg.AgentTokens...), cfg.AdminTokens...) {
		if len(t) < httpauth.MinTokenLen {
			return nil, fmt.Errorf("vault serve: a token is shorter than %d characters", httpauth.MinTokenLen)
		}
	}
	be, err := fileblob.New(cfg.Dir)
	if err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, be: be, now: time.Now}, nil
}

// Handler is the HTTP API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/objects/{name...}", s.auth(roleAgent, s.get))
	mux.HandleFunc("HEAD /v1/objects/{name...}", s.auth(roleAgent, s.stat))
	mux.HandleFunc("PUT /v1/objects/{name...}", s.auth(roleAgent, s.put))
	mux.HandleFunc("DELETE /v1/objects/{name...}", s.auth(roleAdmin, s.delete))
	mux.HandleFunc("GET /v1/list", s.auth(roleAgent, s.list))
	return mux
}

func (s *Server) roleOf(r *http.Request) role {
	got := httpauth.Bearer(r)
	// Every token is compared, so timing does not tell which list matched.
	found := roleNone
	for _, t := range s.cfg.AdminTokens {
		if httpauth.Equal(got, t) {
			found = roleAdmin
		}
	}
	for _, t := range s.cfg.AgentTokens {
		if httpauth.Equal(got, t) && found == roleNone {
			found = roleAgent
		}
	}
	return found
}

type handler func(w http.ResponseWriter, r *http.Request, name string, admin bool) error

// auth refuses a request without a known token (401) or without the role
// (403), checks the object name, and maps the handler's error to a status.
func (s *Server) auth(need role, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		got := s.roleOf(r)
		if got == roleNone {
			http.Error(w, "missing or unknown token (Authorization: Bearer <token>)", http.StatusUnauthorized)
			return
		}
		if got < need {
			http.Error(w, blob.Refused(r.Method, r.PathValue("name")).Error(), http.StatusForbidden)
			return
		}
		name := r.PathValue("name")
		if r.URL.Path != "/v1/list" {
			if err := blob.CheckName(name); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		if err := h(w, r, name, got == roleAdmin); err != nil {
			writeErr(w, err)
		}
	}
}

func writeErr(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, blob.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, blob.ErrAppendOnly):
		code = http.StatusForbidden
	case errors.Is(err, blob.ErrInvalidName), errors.Is(err, errBadRequest):
		code = http.StatusBadRequest
	case errors.Is(err, errTooLarge):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, context.Canceled):
		return // the client is gone
	}
	http.Error(w, err.Error(), code)
}

var (
	errBadRequest = errors.New("bad request")
	errTooLarge   = errors.New("object too large")
)

// lockName serialises writes and deletes of one name, so that two agents
// creating the same name cannot both see it absent and overwrite each other.
func (s *Server) lockName(name string) func() {
	h := fnv.New32a()
	h.Write([]byte(name))
	m := &s.names[h.Sum32()%uint32(len(s.names))]
	m.Lock()
	return m.Unlock
}

// Close releases the store.
func (s *Server) Close() error { return s.be.Close() }
