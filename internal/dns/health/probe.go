package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ErrProbe is wrapped by every probe failure that is the endpoint's fault
// (bad status, missing body text), as opposed to transport errors.
var ErrProbe = errors.New("probe failed")

// Prober checks one address once. Implementations must honour ctx's deadline.
type Prober interface {
	Probe(ctx context.Context, host string) error
}

// StatusRange is an inclusive range of acceptable HTTP status codes.
type StatusRange struct{ Lo, Hi int }

func (r StatusRange) String() string {
	if r.Lo == r.Hi {
		return strconv.Itoa(r.Lo)
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

// NewProber builds the prober a spec asks for.
func NewProber(s Spec) (Prober, error) {
	switch strings.ToLower(s.Protocol) {
	case "tcp":
		return tcpProber{port: s.Port}, nil
	case "http", "https":
		return newHTTPProber(s), nil
	}
	return nil, fmt.Errorf("unknown probe protocol %q", s.Protocol)
}

type tcpProber struct{ port int }

func (p tcpProber) Probe(ctx context.Context, host string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(p.port)))
	if err != nil {
		return err
	}
	return c.Close()
}

type httpProber struct {
	spec   Spec
	scheme string
	client *http.Client
}

func newHTTPProber(s Spec) *httpProber {
	tr := &http.Transport{
		// A fresh connection per probe: a kept-alive connection could hide a
		// listener that no longer accepts.
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: !s.TLSVerify, ServerName: s.Host},
		Proxy:             nil, // never send probes through an environment proxy
	}
	return &httpProber{
		spec:   s,
		scheme: strings.ToLower(s.Protocol),
		client: &http.Client{Transport: tr, CheckRedirect: noRedirect},
	}
}

// noRedirect makes a 3xx answer the probe's result, as Traffic Manager does.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func (p *httpProber) Probe(ctx context.Context, host string) error {
	url := fmt.Sprintf("%s://%s%s", p.scheme, net.JoinHostPort(host, strconv.Itoa(p.spec.Port)), p.spec.Path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "haven-dns-probe/1")
	for k, v := range p.spec.Headers {
		req.Header.Set(k, v)
	}
	if p.spec.Host != "" {
		req.Host = p.spec.Host
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return p.check(resp)
}

func (p *httpProber) check(resp *http.Response) error {
	if !statusOK(p.spec.ExpectedStatus, resp.StatusCode) {
		want := fmt.Sprint(p.spec.ExpectedStatus)
		if len(p.spec.ExpectedStatus) == 0 {
			want = "200-299 (default)"
		}
		return fmt.Errorf("%w: HTTP status %d not in %s", ErrProbe, resp.StatusCode, want)
	}
	if p.spec.Body == "" {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return err
	}
	if !strings.Contains(string(b), p.spec.Body) {
		return fmt.Errorf("%w: body does not contain %q", ErrProbe, p.spec.Body)
	}
	return nil
}

func statusOK(ranges []StatusRange, code int) bool {
	if len(ranges) == 0 {
		return code >= 200 && code <= 299
	}
	for _, r := range ranges {
		if code >= r.Lo && code <= r.Hi {
			return true
		}
	}
	return false
}

// Spec is everything a checker needs besides the address.
type Spec struct {
	Protocol          string
	Port              int
	Path              string
	Host              string
	Headers           map[string]string
	ExpectedStatus    []StatusRange
	Body              string
	TLSVerify         bool
	Interval          time.Duration
	Timeout           time.Duration
	ToleratedFailures int
	RequiredSuccesses int
}

// Key identifies a spec, so a reload keeps a checker whose settings did not
// change (and with it the endpoint's state).
func (s Spec) Key() string { return fmt.Sprintf("%+v", s) }

// ProberFunc adapts a function to Prober (used for custom probes and tests).
type ProberFunc func(ctx context.Context, host string) error

// Probe calls f.
func (f ProberFunc) Probe(ctx context.Context, host string) error { return f(ctx, host) }
