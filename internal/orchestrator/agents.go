package orchestrator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/haven-dr/haven/internal/agent"
	"github.com/haven-dr/haven/internal/fence"
	"github.com/haven-dr/haven/internal/httpauth"
	"github.com/haven-dr/haven/internal/protection"
)

// AgentClient is what the orchestrator asks of a primary site's agent.
// Every call is bounded by the agent's timeout: a dead primary is an
// error, never a hang.
type AgentClient interface {
	Status(ctx context.Context) (*agent.Report, error)
	// Stop runs the machine's stop hook and pauses its replication.
	Stop(ctx context.Context, machine string) error
	// Start runs the start hook and resumes replication.
	Start(ctx context.Context, machine string) error
	// Snapshot takes a point of the machine's group now, all members at
	// one instant, and returns each member's point ID (the machine's
	// always among them): one call serves a whole group.
	Snapshot(ctx context.Context, machine string) (map[string]string, error)
	// Restore writes req.Point onto the machine's own disks (only chunks
	// that differ), after keeping their current state as a point when
	// req.Preserve (once per req.PreserveKey). A failed restore may still
	// answer a result naming the preserved point.
	Restore(ctx context.Context, machine string, req agent.RestoreRequest) (*agent.RestoreResult, error)
}

// UnreachableError: the agent could not be reached at all (no HTTP
// answer). It is told apart from an agent that answers and refuses,
// because only the latter proves the primary is alive.
type UnreachableError struct {
	Agent string
	Err   error
}

func (e *UnreachableError) Error() string {
	return "agent " + e.Agent + " unreachable: " + e.Err.Error()
}
func (e *UnreachableError) Unwrap() error { return e.Err }

// AgentDialer connects to a configured agent.
type AgentDialer func(a protection.Agent) (AgentClient, error)

// HTTPAgents dials agents over their HTTP control API.
func HTTPAgents(a protection.Agent) (AgentClient, error) {
	tok := ""
	if a.TokenFile != "" {
		var err error
		if tok, err = httpauth.ReadTokenFile(a.TokenFile); err != nil {
			return nil, fmt.Errorf("agent %s: token: %w", a.Name, err)
		}
	}
	t := a.Timeout
	if t == 0 {
		t = 5 * time.Second
	}
	return &httpAgent{name: a.Name, base: strings.TrimSuffix(a.URL, "/"), token: tok, timeout: t,
		hc: &http.Client{}}, nil
}

type httpAgent struct {
	name, base, token string
	timeout           time.Duration
	hc                *http.Client
}

// call bounds short calls by the agent's timeout; long ones (snapshot,
// restore) by long, since they move data.
func (c *httpAgent) call(ctx context.Context, method, path string, limit time.Duration, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	fence.SetHeader(req)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return &UnreachableError{Agent: c.name, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 2000))
		if out != nil {
			json.Unmarshal(b, out) // an error answer may carry a partial result
		}
		err := fmt.Errorf("agent %s: %s %s: %s: %s", c.name, method, path, resp.Status, strings.TrimSpace(string(b)))
		if resp.StatusCode == http.StatusConflict && strings.Contains(string(b), fence.ErrStale.Error()) {
			err = fmt.Errorf("%w (%w)", err, fence.ErrStale)
		}
		return err
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

func mpath(machine, action string) string {
	return "/v1/machines/" + url.PathEscape(machine) + "/" + action
}

func (c *httpAgent) Status(ctx context.Context) (*agent.Report, error) {
	var r agent.Report
	return &r, c.call(ctx, http.MethodGet, "/v1/status", c.timeout, nil, &r)
}

func (c *httpAgent) Stop(ctx context.Context, m string) error {
	return c.call(ctx, http.MethodPost, mpath(m, "stop"), c.timeout+5*time.Minute, nil, nil)
}

func (c *httpAgent) Start(ctx context.Context, m string) error {
	return c.call(ctx, http.MethodPost, mpath(m, "start"), c.timeout+5*time.Minute, nil, nil)
}

func (c *httpAgent) Snapshot(ctx context.Context, m string) (map[string]string, error) {
	var out agent.SnapshotResult
	if err := c.call(ctx, http.MethodPost, mpath(m, "snapshot"), 6*time.Hour, nil, &out); err != nil {
		return nil, err
	}
	if out.Points[m] == "" {
		return nil, fmt.Errorf("agent %s: snapshot of %s answered no point of it", c.name, m)
	}
	return out.Points, nil
}

func (c *httpAgent) Restore(ctx context.Context, m string, in agent.RestoreRequest) (*agent.RestoreResult, error) {
	var out agent.RestoreResult
	return &out, c.call(ctx, http.MethodPost, mpath(m, "restore"), 24*time.Hour, in, &out)
}
