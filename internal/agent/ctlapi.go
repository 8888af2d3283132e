package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/haven-dr/haven/internal/fence"

	"github.com/haven-dr/haven/internal/httpauth"
)

// validateControl checks the control and heartbeat settings. Without a
// control token nothing on the API is authenticated, so it may only listen
// on loopback; with one, clients off loopback need the token everywhere.
func (c *Config) validateControl() error {
	if c.ControlTokenFile == "" {
		if err := loopbackOnly(c.Listen); err != nil {
			return fmt.Errorf("%w (or set control_token_file: other clients then need its token)", err)
		}
	} else if !filepath.IsAbs(c.ControlTokenFile) {
		return fmt.Errorf("control_token_file %q is not absolute", c.ControlTokenFile)
	}
	if c.Server != nil {
		return c.Server.validate()
	}
	return nil
}

// controlToken is the control API's token, or why the API is disabled.
func (a *Agent) controlToken() (token string, disabled string) {
	if a.cfg.ControlTokenFile == "" {
		return "", "the control API is disabled: set control_token_file in the agent's config"
	}
	tok, err := httpauth.ReadTokenFile(a.cfg.ControlTokenFile)
	if err != nil {
		return "", "the control API is disabled: control_token_file: " + err.Error()
	}
	return tok, ""
}

// auth answers 401 without the token or with a wrong one (httpauth's
// rule), and 403 while the control API is disabled.
func auth(token, disabled string, fn http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if disabled != "" {
			writeCtlErr(w, http.StatusForbidden, disabled)
			return
		}
		if ref := httpauth.Check(r, token, "token of control_token_file"); ref != nil {
			writeCtlErr(w, ref.Status, ref.Msg)
			return
		}
		fn(w, r)
	}
}

// localOr serves loopback clients as is and the others only with the token.
func localOr(token, disabled string, fn http.HandlerFunc) http.HandlerFunc {
	guarded := auth(token, disabled, fn)
	return func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			fn(w, r)
			return
		}
		guarded(w, r)
	}
}

// controlRoutes adds the control API (docs/agent.md, "Control API").
// Every order passes the leader-epoch guard after the token check (an
// unauthenticated caller must not raise the epoch), so a deposed HA
// leader's late order is refused with 409.
func (a *Agent) controlRoutes(mux *http.ServeMux, token, disabled string) {
	err := os.MkdirAll(a.cfg.StateDir, 0o700)
	var g *fence.Guard
	if err == nil {
		g, err = fence.Open(filepath.Join(a.cfg.StateDir, "leader-epoch"))
	}
	if err != nil && disabled == "" {
		disabled = "the control API is disabled: " + err.Error()
	}
	order := func(fn http.HandlerFunc) http.HandlerFunc {
		if g == nil {
			return auth(token, disabled, fn)
		}
		return auth(token, disabled, g.Wrap(fn).ServeHTTP)
	}
	mux.HandleFunc("POST /v1/machines/{name}/stop", order(func(w http.ResponseWriter, r *http.Request) {
		writeCtl(w, nil, a.StopMachine(r.Context(), r.PathValue("name")))
	}))
	mux.HandleFunc("POST /v1/machines/{name}/start", order(func(w http.ResponseWriter, r *http.Request) {
		writeCtl(w, nil, a.StartMachine(r.Context(), r.PathValue("name")))
	}))
	mux.HandleFunc("POST /v1/machines/{name}/snapshot", order(func(w http.ResponseWriter, r *http.Request) {
		pts, err := a.SnapshotMachine(r.Context(), r.PathValue("name"))
		writeCtl(w, &SnapshotResult{Points: pts}, err)
	}))
	mux.HandleFunc("POST /v1/machines/{name}/restore", order(func(w http.ResponseWriter, r *http.Request) {
		var req RestoreRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeCtlErr(w, http.StatusBadRequest, "body must be {\"point\": ID, \"preserve\": bool, \"preserve_key\": KEY}: "+err.Error())
			return
		}
		res, err := a.RestoreMachine(r.Context(), r.PathValue("name"), req)
		if err != nil && res != nil && res.Preserved != "" {
			writeCtlPartial(w, err, res.Preserved)
			return
		}
		writeCtl(w, res, err)
	}))
}

// writeCtl answers out, or err with the status its ctlError carries (500
// otherwise).
func writeCtl(w http.ResponseWriter, out any, err error) {
	if err != nil {
		code := http.StatusInternalServerError
		var ce *ctlError
		if errors.As(err, &ce) {
			code = ce.code
		}
		slog.Warn("control request failed", "status", code, "err", err)
		writeCtlErr(w, code, err.Error())
		return
	}
	if out == nil {
		out = struct{}{}
	}
	writeCtlJSON(w, http.StatusOK, out)
}

// writeCtlPartial answers a failed restore with the point that keeps the
// disks' previous state, so the caller records it.
func writeCtlPartial(w http.ResponseWriter, err error, preserved string) {
	code := http.StatusInternalServerError
	var ce *ctlError
	if errors.As(err, &ce) {
		code = ce.code
	}
	slog.Warn("control request failed", "status", code, "err", err, "preserved", preserved)
	writeCtlJSON(w, code, map[string]string{"error": err.Error(), "preserved": preserved})
}

func writeCtlErr(w http.ResponseWriter, code int, msg string) {
	writeCtlJSON(w, code, map[string]string{"error": msg})
}

func writeCtlJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
