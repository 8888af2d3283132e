package hostapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/haven-dr/haven/internal/buildinfo"
	"github.com/haven-dr/haven/internal/fence"
	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/host/backrep"
	"github.com/haven-dr/haven/internal/httpauth"
	"github.com/haven-dr/haven/internal/machine"
)

// Backend is what the server serves: host.Local.
type Backend interface {
	host.OverlayHost
	host.RunningChecker
	host.Fencer
	host.MemoryChecker
	host.StandbyKeeper
	StandbyPoint(machine, disk string) string
	ID() string
}

// Server answers the API for one Backend.
type Server struct {
	B       Backend
	Token   string
	Edge    string // the host's uplink for sites that want one; "" refuses them
	DiskDir string // disk paths on the wire are relative to it
	Info    Info
	Log     *slog.Logger
	// Back replicates back the machines this host runs (nil without a
	// vault: such orders are refused).
	Back *backrep.Manager
	// Grace is how long a disk call goes on after its last caller left
	// (a dropped connection), so the retry joins it; default 2 minutes.
	Grace   time.Duration
	flights flights
}

type handlerFunc func(ctx context.Context, r *http.Request) (any, error)

// Handler is the API: one route table, one auth rule (the host's token).
func (s *Server) Handler() http.Handler {
	s.flights.grace = s.Grace
	if s.flights.grace == 0 {
		s.flights.grace = 2 * time.Minute
	}
	if s.Log == nil {
		s.Log = slog.Default()
	}
	mux := http.NewServeMux()
	for route, h := range map[string]handlerFunc{
		"GET /v1/info":                                  s.info,
		"PUT /v1/epoch":                                 s.fence,
		"PUT /v1/sites/{site}":                          s.ensureSite,
		"DELETE /v1/sites/{site}":                       s.removeSite,
		"PUT /v1/sites/{site}/overlay":                  s.ensureOverlay,
		"PUT /v1/sites/{site}/published/{name}":         s.publish,
		"DELETE /v1/sites/{site}/published/{name}":      s.unpublish,
		"PUT /v1/sites/{site}/machines/{name}":          s.startMachine,
		"DELETE /v1/sites/{site}/machines/{name}":       s.stopMachine,
		"GET /v1/sites/{site}/machines/{name}":          s.running,
		"POST /v1/sites/{site}/machines/{name}/healthy": s.waitHealthy,
		"GET /v1/sites/{site}/machines/{name}/memory":   s.memory,
		"PUT /v1/replication/{plan}":                    s.ensureReplication,
		"DELETE /v1/replication/{plan}":                 s.dropReplication,
		"POST /v1/replication/{plan}/cycle":             s.cycleReplication,
		"POST /v1/replication/{plan}/snapshot":          s.snapshotReplication,
		"PUT /v1/replication/{plan}/running":            s.startReplication,
		"DELETE /v1/replication/{plan}/running":         s.stopReplication,
		"POST /v1/disks/prepare":                        s.prepareDisk,
		"POST /v1/disks/remove":                         s.removeDisk,
		"POST /v1/standby/update":                       s.updateStandby,
		"GET /v1/standby/{machine}/{disk}":              s.standbyPoint,
		"GET /v1/standby":                               s.standbys,
		"DELETE /v1/standby/{machine}/{disk}":           s.removeStandby,
	} {
		mux.Handle(route, s.wrap(h))
	}
	return mux
}

// wrap authenticates, puts the caller's epoch and deadline into the
// context, and writes the answer or the error as JSON.
func (s *Server) wrap(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ref := httpauth.Check(r, s.Token, "host token"); ref != nil {
			writeJSON(w, ref.Status, errorResp{Error: ref.Msg})
			return
		}
		ctx, cancel, err := requestContext(r)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errorResp{Error: err.Error(), Kind: "bad_request"})
			return
		}
		defer cancel()
		v, err := h(ctx, r)
		if err != nil {
			kind, code := kindOf(err)
			if code >= 500 {
				s.Log.Warn("host call failed", "call", r.Method+" "+r.URL.Path, "err", err)
			}
			writeJSON(w, code, errorResp{Error: err.Error(), Kind: kind})
			return
		}
		if v == nil {
			v = struct{}{}
		}
		writeJSON(w, http.StatusOK, v)
	})
}

// requestContext carries the epoch of fence.Header (an operator's mark
// counts as none) and the caller's deadline.
func requestContext(r *http.Request) (context.Context, context.CancelFunc, error) {
	ctx := r.Context()
	if v := strings.TrimSpace(r.Header.Get(fence.Header)); v != "" && v != fence.Operator {
		e, err := strconv.ParseInt(v, 10, 64)
		if err != nil || e <= 0 {
			return nil, nil, fmt.Errorf("%w: %q is not a positive epoch", fence.ErrBadHeader, v)
		}
		ctx = fence.WithEpoch(ctx, e)
	}
	if v := r.Header.Get(TimeoutHeader); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms <= 0 {
			return nil, nil, fmt.Errorf("bad %s header %q", TimeoutHeader, v)
		}
		c, cancel := context.WithTimeout(ctx, time.Duration(ms)*time.Millisecond)
		return c, cancel, nil
	}
	return ctx, func() {}, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", errBadRequest, err)
	}
	return nil
}

func (s *Server) info(context.Context, *http.Request) (any, error) {
	i := s.Info
	i.ID, i.Edge, i.Version = s.B.ID(), s.Edge, buildinfo.Read().Version
	return i, nil
}

func (s *Server) ensureSite(ctx context.Context, r *http.Request) (any, error) {
	var req siteReq
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	edge := ""
	if req.Uplink {
		if s.Edge == "" {
			return nil, fmt.Errorf("%w: site %s wants an uplink, but this host has none (edge: in its config): designate another host for the edge",
				errBadRequest, r.PathValue("site"))
		}
		edge = s.Edge
	}
	return nil, s.B.EnsureSite(ctx, r.PathValue("site"), req.Networks, edge)
}

// fence takes the caller's epoch (a new leader's, before its orders).
func (s *Server) fence(ctx context.Context, _ *http.Request) (any, error) {
	return nil, s.B.Fence(ctx)
}

func (s *Server) removeSite(ctx context.Context, r *http.Request) (any, error) {
	return nil, s.B.RemoveSite(ctx, r.PathValue("site"))
}

func (s *Server) ensureOverlay(ctx context.Context, r *http.Request) (any, error) {
	var req host.Overlay
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return nil, s.B.EnsureOverlay(ctx, r.PathValue("site"), req)
}

func (s *Server) publish(ctx context.Context, r *http.Request) (any, error) {
	var req publishReq
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return nil, s.B.Publish(ctx, r.PathValue("site"), r.PathValue("name"), req.Rules)
}

func (s *Server) unpublish(ctx context.Context, r *http.Request) (any, error) {
	return nil, s.B.Unpublish(ctx, r.PathValue("site"), r.PathValue("name"))
}

func (s *Server) startMachine(ctx context.Context, r *http.Request) (any, error) {
	var req startReq
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Spec.Name != r.PathValue("name") {
		return nil, fmt.Errorf("%w: spec name %q is not the path's %q", errBadRequest, req.Spec.Name, r.PathValue("name"))
	}
	if err := s.localDisks(&req.Spec); err != nil {
		return nil, err
	}
	return nil, s.B.StartMachine(ctx, r.PathValue("site"), req.Driver, req.Spec)
}

func (s *Server) stopMachine(ctx context.Context, r *http.Request) (any, error) {
	return nil, s.B.StopMachine(ctx, r.PathValue("site"), r.PathValue("name"))
}

func (s *Server) running(ctx context.Context, r *http.Request) (any, error) {
	ok, err := s.B.CheckRunning(ctx, r.PathValue("site"), r.PathValue("name"))
	return runningResp{ok}, err
}

func (s *Server) memory(ctx context.Context, r *http.Request) (any, error) {
	return s.B.MachineMemory(ctx, r.PathValue("site"), r.PathValue("name"))
}

func (s *Server) waitHealthy(ctx context.Context, r *http.Request) (any, error) {
	var req startReq
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return nil, s.B.WaitHealthy(ctx, r.PathValue("site"), req.Spec)
}

func (s *Server) prepareDisk(ctx context.Context, r *http.Request) (any, error) {
	var req host.DiskRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if !s.Info.Vault {
		return nil, errors.New("this host has no vault configured (vault: in its config): it cannot prepare disks")
	}
	t, err := s.localPath(req.Target)
	if err != nil {
		return nil, err
	}
	req.Target = t
	return s.flights.do(ctx, "prepare", req, func(ctx context.Context) (any, error) { return s.B.PrepareDisk(ctx, req) })
}

func (s *Server) removeDisk(ctx context.Context, r *http.Request) (any, error) {
	var req pathReq
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	p, err := s.localPath(req.Path)
	if err != nil {
		return nil, err
	}
	return nil, s.B.RemoveDisk(ctx, p)
}

func (s *Server) updateStandby(ctx context.Context, r *http.Request) (any, error) {
	var req standbyReq
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if !s.Info.Vault {
		return nil, errors.New("this host has no vault configured (vault: in its config): it keeps no standby images")
	}
	return s.flights.do(ctx, "standby", req, func(ctx context.Context) (any, error) {
		return s.B.UpdateStandby(ctx, req.Machine, req.Disk, req.Point)
	})
}

func (s *Server) standbyPoint(_ context.Context, r *http.Request) (any, error) {
	return standbyResp{s.B.StandbyPoint(r.PathValue("machine"), r.PathValue("disk"))}, nil
}

func (s *Server) standbys(ctx context.Context, _ *http.Request) (any, error) {
	imgs, err := s.B.Standbys(ctx)
	return standbysResp{imgs}, err
}

func (s *Server) removeStandby(ctx context.Context, r *http.Request) (any, error) {
	return nil, s.B.RemoveStandby(ctx, r.PathValue("machine"), r.PathValue("disk"))
}

// localPath resolves a wire disk path (relative to the disk directory)
// and refuses one that leaves it: a token is no licence to touch any
// file of the host.
func (s *Server) localPath(rel string) (string, error) {
	c := filepath.Clean(rel)
	if rel == "" || filepath.IsAbs(rel) || c == "." || c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%w: disk path %q: want a path inside the host's disk directory, relative to it", errBadRequest, rel)
	}
	return filepath.Join(s.DiskDir, c), nil
}

// localDisks resolves a machine's disk paths; its console log stays in
// the host's own machine state (a path of the server's means nothing
// here).
func (s *Server) localDisks(spec *machine.Spec) error {
	for i, d := range spec.Disks {
		p, err := s.localPath(d.Path)
		if err != nil {
			return fmt.Errorf("machine %s disk %s: %w", spec.Name, d.Name, err)
		}
		spec.Disks[i].Path = p
	}
	spec.ConsoleLog = ""
	return nil
}
