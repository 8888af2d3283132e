package dns

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Client is the typed client of the traffic manager's API, for the
// orchestrator and the CLI.
type Client struct {
	base string
	hc   *http.Client
}

// NewClient talks to the API at base ("http://127.0.0.1:8053"); hc may be nil.
func NewClient(base string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &Client{base: strings.TrimSuffix(base, "/"), hc: hc}
}

// Profiles lists every profile with its endpoints.
func (c *Client) Profiles(ctx context.Context) ([]ProfileStatus, error) {
	var out []ProfileStatus
	return out, c.do(ctx, http.MethodGet, "/v1/profiles", nil, &out)
}

// Profile reads one profile.
func (c *Client) Profile(ctx context.Context, name string) (ProfileStatus, error) {
	var out ProfileStatus
	return out, c.do(ctx, http.MethodGet, "/v1/profiles/"+url.PathEscape(name), nil, &out)
}

// Endpoint reads one endpoint.
func (c *Client) Endpoint(ctx context.Context, profile, endpoint string) (EndpointStatus, error) {
	var out EndpointStatus
	return out, c.do(ctx, http.MethodGet, endpointPath(profile, endpoint), nil, &out)
}

// UpdateEndpoint changes an endpoint; the next DNS query sees the change.
func (c *Client) UpdateEndpoint(ctx context.Context, profile, endpoint string, p EndpointPatch) (EndpointStatus, error) {
	var out EndpointStatus
	return out, c.do(ctx, http.MethodPatch, endpointPath(profile, endpoint), p, &out)
}

// SetEnabled enables or disables an endpoint.
func (c *Client) SetEnabled(ctx context.Context, profile, endpoint string, on bool) (EndpointStatus, error) {
	return c.UpdateEndpoint(ctx, profile, endpoint, EndpointPatch{Enabled: &on})
}

// SetPriority changes an endpoint's priority (lower wins).
func (c *Client) SetPriority(ctx context.Context, profile, endpoint string, prio int) (EndpointStatus, error) {
	return c.UpdateEndpoint(ctx, profile, endpoint, EndpointPatch{Priority: &prio})
}

// Reload makes the server re-read its config file.
func (c *Client) Reload(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/reload", nil, nil)
}

func endpointPath(profile, endpoint string) string {
	return "/v1/profiles/" + url.PathEscape(profile) + "/endpoints/" + url.PathEscape(endpoint)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return decodeErr(resp)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func decodeErr(resp *http.Response) error {
	var e apiError
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&e)
	switch resp.StatusCode {
	case http.StatusNotFound:
		return fmt.Errorf("%s: %w", e.Error, ErrNotFound)
	case http.StatusBadRequest:
		return fmt.Errorf("%s: %w", e.Error, ErrBadRequest)
	}
	return fmt.Errorf("dns api: %s: %s", resp.Status, e.Error)
}
