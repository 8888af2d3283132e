// Package client is the typed Go client of `haven server`'s API, used by
// the CLI and by anyone scripting Haven. It speaks the wire types of
// package api and nothing of the server's own: importing it pulls in no
// database, vault or networking code (TestClientDependencies).
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/haven-dr/haven/internal/api"
)

// Error is an error answer of the server.
type Error struct {
	Status int
	Code   string // conflict, precondition, invalid, not_found, unauthorized, unavailable (retried for up to 30 s)
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// ErrUnreachable: the server did not answer.
var ErrUnreachable = errors.New("haven server unreachable")

// Client talks to one server.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// New makes a client for base ("http://127.0.0.1:7780") with the admin
// token. Every call is bounded by timeout (default 30s).
func New(base, token string, timeout time.Duration) *Client {
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	return &Client{base: strings.TrimSuffix(base, "/"), token: token, hc: &http.Client{Timeout: timeout}}
}

// unavailableFor bounds how long a call waits out a change of leader
// (code unavailable: nothing was written, so sending it again is safe).
var unavailableFor = 30 * time.Second

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, out any) error {
	var b []byte
	if body != nil {
		var err error
		if b, err = io.ReadAll(body); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(unavailableFor)
	for {
		err := c.once(ctx, method, path, b, body != nil, out)
		var e *Error
		if !errors.As(err, &e) || e.Code != api.CodeUnavailable || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
	}
}

func (c *Client) once(ctx context.Context, method, path string, body []byte, hasBody bool, out any) error {
	var r io.Reader
	if hasBody {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%w at %s: %w", ErrUnreachable, c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e api.Error
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = resp.Status + ": " + strings.TrimSpace(string(b))
		}
		return &Error{Status: resp.StatusCode, Code: e.Code, Msg: e.Error}
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (c *Client) getJSON(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, out)
}

func (c *Client) postJSON(ctx context.Context, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	return c.do(ctx, http.MethodPost, path, body, out)
}

// Apply sends a protection document (YAML).
func (c *Client) Apply(ctx context.Context, doc []byte) (*api.ApplyResult, error) {
	var out api.ApplyResult
	return &out, c.do(ctx, http.MethodPost, "/v1/apply", bytes.NewReader(doc), &out)
}

// Config reads the applied config.
func (c *Client) Config(ctx context.Context) (*api.ConfigResult, error) {
	var out api.ConfigResult
	return &out, c.getJSON(ctx, "/v1/config", &out)
}

// Status reads machines, agents, plans, jobs and alerts.
func (c *Client) Status(ctx context.Context) (*api.Status, error) {
	var out api.Status
	return &out, c.getJSON(ctx, "/v1/status", &out)
}

// Plan reads a plan's state.
func (c *Client) Plan(ctx context.Context, plan string) (*api.PlanState, error) {
	var out api.PlanState
	return &out, c.getJSON(ctx, "/v1/plans/"+url.PathEscape(plan), &out)
}

// Submit starts a job of typ (test-failover, failback, ...: docs/api.md) on plan.
func (c *Client) Submit(ctx context.Context, plan, typ string, p api.Params) (*api.Job, error) {
	var out api.Job
	return &out, c.postJSON(ctx, "/v1/plans/"+url.PathEscape(plan)+"/jobs", api.SubmitRequest{Type: typ, Params: p}, &out)
}

// Jobs lists jobs, newest first.
func (c *Client) Jobs(ctx context.Context, plan string, active bool, limit int) ([]*api.Job, error) {
	q := url.Values{}
	if plan != "" {
		q.Set("plan", plan)
	}
	if active {
		q.Set("active", "true")
	}
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	var out []*api.Job
	return out, c.getJSON(ctx, "/v1/jobs?"+q.Encode(), &out)
}

// Job reads one job.
func (c *Client) Job(ctx context.Context, id string) (*api.Job, error) {
	var out api.Job
	return &out, c.getJSON(ctx, "/v1/jobs/"+url.PathEscape(id), &out)
}

// Report reads a job's report (partial while it runs).
func (c *Client) Report(ctx context.Context, id string) (*api.Report, error) {
	var out api.Report
	return &out, c.getJSON(ctx, "/v1/jobs/"+url.PathEscape(id)+"/report", &out)
}

// Logs reads a job's log lines after seq.
func (c *Client) Logs(ctx context.Context, id string, after int64) ([]api.LogLine, error) {
	var out []api.LogLine
	return out, c.getJSON(ctx, fmt.Sprintf("/v1/jobs/%s/logs?after=%d", url.PathEscape(id), after), &out)
}

// Retry, Cancel and Approve act on a job.
func (c *Client) Retry(ctx context.Context, id string) (*api.Job, error) {
	return c.jobAction(ctx, id, "retry")
}
func (c *Client) Cancel(ctx context.Context, id string) (*api.Job, error) {
	return c.jobAction(ctx, id, "cancel")
}
func (c *Client) Approve(ctx context.Context, id string) (*api.Job, error) {
	return c.jobAction(ctx, id, "approve")
}

func (c *Client) jobAction(ctx context.Context, id, action string) (*api.Job, error) {
	var out api.Job
	return &out, c.postJSON(ctx, "/v1/jobs/"+url.PathEscape(id)+"/"+action, nil, &out)
}

// Drills lists the drill history ("" plan: all).
func (c *Client) Drills(ctx context.Context, plan string) ([]api.Drill, error) {
	var out []api.Drill
	return out, c.getJSON(ctx, "/v1/drills?plan="+url.QueryEscape(plan), &out)
}

// SLAReport is plan's monthly report (month YYYY-MM; "" for the current
// one).
func (c *Client) SLAReport(ctx context.Context, plan, month string) (*api.SLAReport, error) {
	var out api.SLAReport
	return &out, c.getJSON(ctx, "/v1/plans/"+url.PathEscape(plan)+"/report?month="+url.QueryEscape(month), &out)
}

// Audit is the newest limit audit entries, newest first (admin only).
func (c *Client) Audit(ctx context.Context, limit int) ([]api.AuditEntry, error) {
	var out []api.AuditEntry
	return out, c.getJSON(ctx, "/v1/audit?limit="+strconv.Itoa(limit), &out)
}

// Watch follows a job until it is no longer running, calling onLog for
// each new log line; it returns the job as it ended (or waits).
func (c *Client) Watch(ctx context.Context, id string, onLog func(api.LogLine)) (*api.Job, error) {
	var seq int64
	for {
		ls, err := c.Logs(ctx, id, seq)
		if err != nil {
			return nil, err
		}
		for _, l := range ls {
			seq = l.Seq
			if onLog != nil {
				onLog(l)
			}
		}
		j, err := c.Job(ctx, id)
		if err != nil {
			return nil, err
		}
		if j.State != api.JobRunning && j.State != api.JobCanceling {
			ls, _ := c.Logs(ctx, id, seq)
			for _, l := range ls {
				if onLog != nil {
					onLog(l)
				}
			}
			return j, nil
		}
		select {
		case <-ctx.Done():
			return j, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// CloseEncryptionAlert closes machine's encryption alert named by its
// first suspect point (or a unique prefix of it).
func (c *Client) CloseEncryptionAlert(ctx context.Context, machine, alert, note string) (*api.EncryptionAlert, error) {
	var out api.EncryptionAlert
	path := "/v1/machines/" + url.PathEscape(machine) + "/encryption-alerts/" + url.PathEscape(alert) + "/close"
	return &out, c.postJSON(ctx, path, api.CloseAlert{Note: note}, &out)
}
