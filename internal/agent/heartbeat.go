package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/vault"

	"github.com/haven-dr/haven/internal/httpauth"
)

// ServerConfig sends heartbeats to `haven server`: the agent's Report to
// POST {url}/v1/agents/{agent}/heartbeat, as Bearer the token in
// token_file (which may be the control token file too).
type ServerConfig struct {
	URL       string        `yaml:"url"`
	Agent     string        `yaml:"agent"` // this agent's name in the server's protection config
	TokenFile string        `yaml:"token_file"`
	Interval  time.Duration `yaml:"interval"`
	// CAFile is the CA the server's TLS certificate is checked against
	// (its state_dir/tls/ca.crt in tls mode auto); empty: system roots.
	CAFile string `yaml:"ca_file"`
}

// heartbeatLogEvery bounds how often failed heartbeats are logged.
const heartbeatLogEvery = time.Minute

func (s *ServerConfig) validate() error {
	u, err := url.Parse(s.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("server.url %q: want http(s)://host:port", s.URL)
	}
	if err := vault.ValidName("server.agent", s.Agent); err != nil {
		return err
	}
	if !filepath.IsAbs(s.TokenFile) {
		return fmt.Errorf("server.token_file %q: missing or not absolute", s.TokenFile)
	}
	if s.Interval == 0 {
		s.Interval = 10 * time.Second
	}
	if s.Interval < time.Second {
		return fmt.Errorf("server.interval %v is below 1s", s.Interval)
	}
	if s.CAFile != "" {
		if _, err := s.httpClient(); err != nil {
			return err
		}
	}
	return nil
}

func (s *ServerConfig) httpClient() (*http.Client, error) {
	if s.CAFile == "" {
		return &http.Client{}, nil
	}
	b, err := os.ReadFile(s.CAFile)
	if err != nil {
		return nil, fmt.Errorf("server.ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("server.ca_file %s: no PEM certificate in it", s.CAFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr}, nil
}

// Heartbeats reports the status to the server every interval until ctx
// ends (at once when no server is configured). Each beat is bounded by the
// interval, and failures are only logged: replication never waits on it.
func (a *Agent) Heartbeats(ctx context.Context) error {
	s := a.cfg.Server
	if s == nil {
		return nil
	}
	hc, err := s.httpClient()
	if err != nil {
		return err
	}
	hb := &heartbeat{cfg: s, hc: hc}
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	for {
		hb.note(hb.send(ctx, a.Status()))
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

type heartbeat struct {
	cfg     *ServerConfig
	hc      *http.Client
	failing int       // consecutive failures
	logged  time.Time // last failure logged
}

func (h *heartbeat) send(ctx context.Context, r *Report) error {
	tok, err := httpauth.ReadTokenFile(h.cfg.TokenFile)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Interval)
	defer cancel()
	req, err := HeartbeatRequest(ctx, h.cfg, tok, r)
	if err != nil {
		return err
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 500))
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// HeartbeatRequest is the request the agent sends the server for one
// report; the upgrade tests record it as the protocol an older agent
// speaks (internal/upgrade).
func HeartbeatRequest(ctx context.Context, cfg *ServerConfig, tok string, r *Report) (*http.Request, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	u := strings.TrimSuffix(cfg.URL, "/") + "/v1/agents/" + url.PathEscape(cfg.Agent) + "/heartbeat"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set(api.AgentVersionHeader, api.AgentAPIVersion())
	return req, nil
}

// note logs the first failure, then at most one a heartbeatLogEvery, and
// the recovery.
func (h *heartbeat) note(err error) {
	switch {
	case err == nil && h.failing > 0:
		slog.Info("heartbeats delivered again", "server", h.cfg.URL, "failed", h.failing)
		h.failing = 0
	case err != nil && errors.Is(err, context.Canceled):
	case err != nil:
		h.failing++
		if now := time.Now(); now.Sub(h.logged) >= heartbeatLogEvery {
			slog.Warn("heartbeat to the server failed", "server", h.cfg.URL, "agent", h.cfg.Agent, "failed", h.failing, "err", err)
			h.logged = now
		}
	}
}
