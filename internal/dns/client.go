package dns

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/haven-dr/haven/internal/fence"
	"github.com/haven-dr/haven/internal/httpauth"
)

// Client is the typed client of the traffic manager's API, for the
// orchestrator and the CLI. Every call ends at its context's deadline or
// after ClientOptions.Timeout, whichever is first.
type Client struct {
	base      string
	hc        *http.Client
	token     string
	tokenFile string
	timeout   time.Duration
	operator  bool
}

// ClientOptions configure a Client; the server refuses calls without the
// token of its api_token_file.
type ClientOptions struct {
	Token      string        // sent as "Authorization: Bearer"
	TokenFile  string        // read at every call when Token is empty (rotation needs no new client)
	CAFile     string        // PEM roots for an https API; default: the system's
	Timeout    time.Duration // per call; default DefaultClientTimeout
	HTTPClient *http.Client  // replaces the transport (CAFile is then ignored)
	// Operator marks changes as an operator's own (the CLI), which the
	// server takes whatever HA leader epoch it has seen; without it a
	// change carries the epoch of its context (package fence).
	Operator bool
}

// DefaultClientTimeout bounds a call whose context has no earlier deadline.
const DefaultClientTimeout = 10 * time.Second

// NewClient talks to the API at base: "127.0.0.1:8053" (http),
// "http://host:port" or "https://host:port".
func NewClient(base string, o ClientOptions) (*Client, error) {
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	c := &Client{base: strings.TrimSuffix(base, "/"), hc: o.HTTPClient, token: o.Token,
		timeout: orDefault(o.Timeout, DefaultClientTimeout), operator: o.Operator}
	if c.token == "" && o.TokenFile != "" {
		if _, err := httpauth.ReadTokenFile(o.TokenFile); err != nil {
			return nil, err // a wrong path fails here, not at the first call
		}
		c.tokenFile = o.TokenFile
	}
	if c.hc == nil {
		tr, err := clientTransport(o.CAFile)
		if err != nil {
			return nil, err
		}
		c.hc = &http.Client{Transport: tr}
	}
	return c, nil
}

// ClientForConfig is a client of the API of the server that runs cfg on
// this host; see ConfigClientOptions.
func ClientForConfig(cfg *Config, timeout time.Duration) (*Client, error) {
	base, o, err := ConfigClientOptions(cfg)
	if err != nil {
		return nil, err
	}
	o.Timeout = timeout
	return NewClient(base, o)
}

// ConfigClientOptions derives where and how to reach the API of the server
// that runs cfg on this host: its api address (a wildcard host becomes
// loopback), its token file, and for HTTPS its certificate as the CA (right
// for a self-signed one; replace CAFile otherwise).
func ConfigClientOptions(cfg *Config) (string, ClientOptions, error) {
	var e errs
	f := compileFiles(&e, cfg)
	if err := e.err(); err != nil {
		return "", ClientOptions{}, err
	}
	if cfg.API == "" {
		return "", ClientOptions{}, fmt.Errorf("%w: the config has no api address", ErrConfig)
	}
	host, port, err := net.SplitHostPort(cfg.API)
	if err != nil {
		return "", ClientOptions{}, fmt.Errorf("%w: api: %w", ErrConfig, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	o := ClientOptions{TokenFile: f.token}
	scheme := "http://"
	if f.cert != "" {
		scheme, o.CAFile = "https://", f.cert
	}
	return scheme + net.JoinHostPort(host, port), o, nil
}

// clientTransport has its own timeouts so a silent peer cannot hold a call
// past them even under a context without deadline.
func clientTransport(caFile string) (*http.Transport, error) {
	tr := &http.Transport{
		Proxy:                 nil, // the API is reached directly
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
	}
	if caFile == "" {
		return tr, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("API CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("API CA file %s: no PEM certificate in it", caFile)
	}
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return tr, nil
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

// UpdateProfile changes a profile (its TTL); the next answer carries it.
func (c *Client) UpdateProfile(ctx context.Context, profile string, p ProfilePatch) (ProfileStatus, error) {
	var out ProfileStatus
	return out, c.do(ctx, http.MethodPatch, "/v1/profiles/"+url.PathEscape(profile), p, &out)
}

// ResetProfile drops the API's override of a profile: the config's TTL
// applies again.
func (c *Client) ResetProfile(ctx context.Context, profile string) (ProfileStatus, error) {
	var out ProfileStatus
	return out, c.do(ctx, http.MethodDelete, "/v1/profiles/"+url.PathEscape(profile)+"/override", nil, &out)
}

// SetEnabled enables or disables an endpoint.
func (c *Client) SetEnabled(ctx context.Context, profile, endpoint string, on bool) (EndpointStatus, error) {
	return c.UpdateEndpoint(ctx, profile, endpoint, EndpointPatch{Enabled: &on})
}

// SetPriority changes an endpoint's priority (lower wins).
func (c *Client) SetPriority(ctx context.Context, profile, endpoint string, prio int) (EndpointStatus, error) {
	return c.UpdateEndpoint(ctx, profile, endpoint, EndpointPatch{Priority: &prio})
}

// SetWeight changes an endpoint's weight (weighted routing).
func (c *Client) SetWeight(ctx context.Context, profile, endpoint string, weight int) (EndpointStatus, error) {
	return c.UpdateEndpoint(ctx, profile, endpoint, EndpointPatch{Weight: &weight})
}

// ResetEndpoint drops the API's override: the config's values apply again.
func (c *Client) ResetEndpoint(ctx context.Context, profile, endpoint string) (EndpointStatus, error) {
	var out EndpointStatus
	return out, c.do(ctx, http.MethodDelete, endpointPath(profile, endpoint)+"/override", nil, &out)
}

// Answer is what the profile's name answers now to a query of qtype ("" is
// A) from client ("" for none; subnet and geographic routing use it).
func (c *Client) Answer(ctx context.Context, profile, qtype, client string) (Answer, error) {
	q := url.Values{}
	if qtype != "" {
		q.Set("type", qtype)
	}
	if client != "" {
		q.Set("client", client)
	}
	var out Answer
	path := "/v1/profiles/" + url.PathEscape(profile) + "/answer"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return out, c.do(ctx, http.MethodGet, path, nil, &out)
}

// Reload makes the server re-read its config file.
func (c *Client) Reload(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/reload", nil, nil)
}

func endpointPath(profile, endpoint string) string {
	return "/v1/profiles/" + url.PathEscape(profile) + "/endpoints/" + url.PathEscape(endpoint)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
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
	if c.operator {
		req.Header.Set(fence.Header, fence.Operator)
	} else {
		fence.SetHeader(req)
	}
	if g := generationFrom(ctx); g != 0 {
		req.Header.Set(GenerationHeader, strconv.FormatUint(g, 10))
	}
	tok := c.token
	if c.tokenFile != "" {
		if tok, err = httpauth.ReadTokenFile(c.tokenFile); err != nil {
			return err
		}
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
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
	case http.StatusUnauthorized:
		return fmt.Errorf("dns api: %s: %w", e.Error, ErrUnauthorized)
	case http.StatusPreconditionFailed:
		return fmt.Errorf("dns api: %s: %w", e.Error, ErrStaleGeneration)
	case http.StatusConflict:
		return fmt.Errorf("dns api: %s (%w)", e.Error, fence.ErrStale)
	}
	return fmt.Errorf("dns api: %s: %s", resp.Status, e.Error)
}
