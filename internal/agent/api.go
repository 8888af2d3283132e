package agent

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves the status API and the control API (ctlapi.go):
//
//	GET /v1/status  the Report as JSON
//	GET /metrics    Prometheus metrics
//	GET /healthz    "ok"
//
// Status and metrics need the control token from clients off loopback.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	a.loadCtl()
	token, disabled := a.controlToken()
	mux.HandleFunc("GET /v1/status", localOr(token, disabled, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(a.Status())
	}))
	mux.Handle("GET /metrics", localOr(token, disabled, promhttp.HandlerFor(a.Registry(), promhttp.HandlerOpts{}).ServeHTTP))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	a.controlRoutes(mux, token, disabled)
	return mux
}

// Serve listens on ln until ctx ends.
func (a *Agent) Serve(ctx context.Context, ln net.Listener) error {
	if _, disabled := a.controlToken(); disabled != "" && a.cfg.ControlTokenFile != "" {
		return errors.New(disabled) // configured but unusable: say so at start, not at failover
	}
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	slog.Info("status API listening", "addr", ln.Addr().String())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
