package hostapi

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
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/haven-dr/haven/internal/fence"
	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/vnet"
)

// ErrUnreachable: the host did not answer (connection refused or cut,
// TLS failure, no answer before the deadline).
var ErrUnreachable = errors.New("recovery host unreachable")

// Client is a remote host.Host. Its disk paths are the caller's: under
// DiskDir they are sent relative to it and the host puts them under its
// own disk directory, so the orchestrator's paths need not exist there.
type Client struct {
	URL     string // https://host:port
	Token   string
	DiskDir string
	HTTP    *http.Client
	// Retries of a call whose answer was lost (every call is
	// idempotent); default 3, with 1s doubling between them.
	Retries int
	Log     *slog.Logger

	mu   sync.Mutex
	info *Info
}

var (
	_ host.OverlayHost    = (*Client)(nil)
	_ host.RunningChecker = (*Client)(nil)
	_ host.Fencer         = (*Client)(nil)
	_ host.MemoryChecker  = (*Client)(nil)
)

// NewClient talks to url with token, trusting the CA in caFile (""
// trusts the system's roots).
func NewClient(url, token, caFile, diskDir string) (*Client, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("hostapi: %s: no certificate", caFile)
		}
	}
	tr := &http.Transport{TLSClientConfig: cfg, TLSHandshakeTimeout: 10 * time.Second,
		ResponseHeaderTimeout: 0, IdleConnTimeout: time.Minute}
	return &Client{URL: strings.TrimRight(url, "/"), Token: token, DiskDir: diskDir,
		HTTP: &http.Client{Transport: tr}}, nil
}

// RemoteError is a refusal the host answered.
type RemoteError struct {
	Status int
	Msg    string
	kind   error
}

func (e *RemoteError) Error() string { return e.Msg }
func (e *RemoteError) Unwrap() error { return e.kind }

// call sends one request and decodes the answer into out; it retries a
// call whose answer was lost until ctx ends or the retries are used.
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	retries := c.Retries
	if retries == 0 {
		retries = 3
	}
	wait := time.Second
	for try := 0; ; try++ {
		err := c.once(ctx, method, path, body, out)
		if !errors.Is(err, ErrUnreachable) || try >= retries || ctx.Err() != nil {
			return err
		}
		c.logger().Warn("recovery host did not answer; retrying", "host", c.URL, "call", method+" "+path, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait *= 2
	}
}

func (c *Client) logger() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.Default()
}

func (c *Client) once(ctx context.Context, method, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, watchDead), method, c.URL+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "application/json")
	fence.SetHeader(req)
	if d, ok := ctx.Deadline(); ok {
		ms := time.Until(d).Milliseconds()
		if ms <= 0 {
			return fmt.Errorf("%w: %s %s", context.DeadlineExceeded, method, path)
		}
		req.Header.Set(TimeoutHeader, strconv.FormatInt(ms, 10))
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("host %s: %s %s: %w", c.URL, method, path, ctx.Err())
		}
		return fmt.Errorf("%w: %s: %v", ErrUnreachable, c.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("%w: %s: reading the answer: %v", ErrUnreachable, c.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e errorResp
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		kind := sentinel(e.Kind)
		if resp.StatusCode == http.StatusConflict && kind == nil {
			kind = fence.ErrStale
		}
		return &RemoteError{Status: resp.StatusCode, Msg: fmt.Sprintf("host %s: %s", c.URL, e.Error), kind: kind}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("host %s: %s %s: bad answer: %v", c.URL, method, path, err)
	}
	return nil
}

func seg(s string) string { return url.PathEscape(s) }

func sitePath(site string) string { return "/v1/sites/" + seg(site) }

func machinePath(site, name string) string { return sitePath(site) + "/machines/" + seg(name) }

// Ping tells whether the host answers, so a lost host is noticed (an
// alert, its machines placed elsewhere).
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.Info(ctx)
	return err
}

// Info asks the host who it is (and caches the answer: a host's ID is
// kept in its state directory for good).
func (c *Client) Info(ctx context.Context) (Info, error) {
	var i Info
	if err := c.call(ctx, "GET", "/v1/info", nil, &i); err != nil {
		return Info{}, err
	}
	c.mu.Lock()
	c.info = &i
	c.mu.Unlock()
	return i, nil
}

// EnsureSite asks for the host's own uplink when edge is set: the edge
// string names a place on the server's machine, and the host knows its.
func (c *Client) EnsureSite(ctx context.Context, site string, nets []vnet.Network, edge string) error {
	return c.call(ctx, "PUT", sitePath(site), siteReq{Networks: nets, Uplink: edge != ""}, nil)
}

// Fence tells the host the epoch ctx carries (host.Fencer).
func (c *Client) Fence(ctx context.Context) error {
	return c.call(ctx, "PUT", "/v1/epoch", nil, nil)
}

func (c *Client) RemoveSite(ctx context.Context, site string) error {
	return c.call(ctx, "DELETE", sitePath(site), nil, nil)
}

func (c *Client) EnsureOverlay(ctx context.Context, site string, o host.Overlay) error {
	return c.call(ctx, "PUT", sitePath(site)+"/overlay", o, nil)
}

// UnderlayAddr is what the host's Info says (asked each time: a host
// restarted with another overlay config says so at once).
func (c *Client) UnderlayAddr(ctx context.Context) (netip.Addr, error) {
	i, err := c.Info(ctx)
	return i.Underlay, err
}

func (c *Client) Publish(ctx context.Context, site, name string, rules []host.PublishRule) error {
	return c.call(ctx, "PUT", sitePath(site)+"/published/"+seg(name), publishReq{rules}, nil)
}

func (c *Client) Unpublish(ctx context.Context, site, name string) error {
	return c.call(ctx, "DELETE", sitePath(site)+"/published/"+seg(name), nil, nil)
}

// SiteNS is the site's namespace on the host (meaningful there only). It
// needs the host's ID: asked once, within five seconds; a host never
// reached gives "" (and a warning), since SiteNS cannot fail.
func (c *Client) SiteNS(site string) string {
	c.mu.Lock()
	i := c.info
	c.mu.Unlock()
	if i == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		got, err := c.Info(ctx)
		if err != nil {
			c.logger().Warn("recovery host's namespace unknown", "host", c.URL, "err", err)
			return ""
		}
		i = &got
	}
	return i.ID + "-" + site
}

func (c *Client) PrepareDisk(ctx context.Context, req host.DiskRequest) (*host.DiskResult, error) {
	t, err := c.wirePath(req.Target)
	if err != nil {
		return nil, err
	}
	req.Target = t
	var res host.DiskResult
	if err := c.call(ctx, "POST", "/v1/disks/prepare", req, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

func (c *Client) RemoveDisk(ctx context.Context, path string) error {
	p, err := c.wirePath(path)
	if err != nil {
		return err
	}
	return c.call(ctx, "POST", "/v1/disks/remove", pathReq{p}, nil)
}

func (c *Client) UpdateStandby(ctx context.Context, machineName, disk, point string) (*host.DiskResult, error) {
	var res host.DiskResult
	if err := c.call(ctx, "POST", "/v1/standby/update", standbyReq{machineName, disk, point}, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

func (c *Client) Standbys(ctx context.Context) ([]host.StandbyImage, error) {
	var r standbysResp
	if err := c.call(ctx, "GET", "/v1/standby", nil, &r); err != nil {
		return nil, err
	}
	return r.Standbys, nil
}

func (c *Client) RemoveStandby(ctx context.Context, machineName, disk string) error {
	return c.call(ctx, "DELETE", "/v1/standby/"+seg(machineName)+"/"+seg(disk), nil, nil)
}

// StandbyPoint is "" when the host does not answer: the caller then
// restores whole, which is slower but never wrong.
func (c *Client) StandbyPoint(machineName, disk string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var r standbyResp
	if err := c.call(ctx, "GET", "/v1/standby/"+seg(machineName)+"/"+seg(disk), nil, &r); err != nil {
		c.logger().Warn("standby point unknown", "host", c.URL, "machine", machineName, "err", err)
		return ""
	}
	return r.Point
}

func (c *Client) StartMachine(ctx context.Context, site, driver string, spec machine.Spec) error {
	spec.Disks = append([]machine.Disk(nil), spec.Disks...)
	for i, d := range spec.Disks {
		p, err := c.wirePath(d.Path)
		if err != nil {
			return fmt.Errorf("machine %s disk %s: %w", spec.Name, d.Name, err)
		}
		spec.Disks[i].Path = p
	}
	return c.call(ctx, "PUT", machinePath(site, spec.Name), startReq{Driver: driver, Spec: spec}, nil)
}

func (c *Client) StopMachine(ctx context.Context, site, name string) error {
	return c.call(ctx, "DELETE", machinePath(site, name), nil, nil)
}

// CheckRunning tells "not running" from "the host did not answer".
func (c *Client) CheckRunning(ctx context.Context, site, name string) (bool, error) {
	var r runningResp
	err := c.call(ctx, "GET", machinePath(site, name), nil, &r)
	return r.Running, err
}

// Running counts a machine on a host that does not answer as running:
// callers stop or remove things only where nothing runs (a site is
// removed only once none of its machines run), so "unknown" must not
// read as "stopped". A caller that needs to know uses CheckRunning.
func (c *Client) Running(site, name string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ok, err := c.CheckRunning(ctx, site, name)
	if err != nil {
		c.logger().Warn("recovery host did not say whether a machine runs; counted as running", "host", c.URL,
			"site", site, "machine", name, "err", err)
		return true
	}
	return ok
}

func (c *Client) MachineMemory(ctx context.Context, site, name string) (machine.MemoryStatus, error) {
	var st machine.MemoryStatus
	err := c.call(ctx, "GET", machinePath(site, name)+"/memory", nil, &st)
	return st, err
}

func (c *Client) WaitHealthy(ctx context.Context, site string, spec machine.Spec) error {
	return c.call(ctx, "POST", machinePath(site, spec.Name)+"/healthy", startReq{Spec: spec}, nil)
}

// wirePath makes a disk path relative to DiskDir. A path under another
// disk directory is one another server recorded (HA servers on machines
// of their own keep their state at different paths, and a job one began
// the other resumes or undoes): the host names the same disk by the
// layout every server gives its disks, <job>/<machine>/<disk>.img
// (package orchestrator). Anything else cannot be named on the host.
func (c *Client) wirePath(p string) (string, error) {
	if !filepath.IsAbs(p) {
		return p, nil
	}
	if c.DiskDir != "" {
		if rel, err := filepath.Rel(c.DiskDir, p); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
			return rel, nil
		}
		m := filepath.Dir(p)
		job := filepath.Dir(m)
		if strings.HasSuffix(p, ".img") && filepath.Dir(job) != job {
			return filepath.Join(filepath.Base(job), filepath.Base(m), filepath.Base(p)), nil
		}
	}
	return "", fmt.Errorf("hostapi: disk path %s is outside the disk directory %q mapped to the recovery host", p, c.DiskDir)
}
