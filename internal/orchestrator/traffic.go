package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/haven-dr/haven/internal/dns"
	"github.com/haven-dr/haven/internal/httpauth"
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/vnet"
	mdns "github.com/miekg/dns"
)

// Traffic is what a DNS cut-over needs from the traffic manager.
type Traffic interface {
	Profile(ctx context.Context, name string) (dns.ProfileStatus, error)
	UpdateEndpoint(ctx context.Context, profile, endpoint string, p dns.EndpointPatch) error
	// Answers returns the addresses the DNS server answers for name now.
	Answers(ctx context.Context, name string) ([]string, error)
}

// TTLTraffic is a traffic manager that can override a profile's TTL
// (`haven dns`); nil puts the config's back.
type TTLTraffic interface {
	SetProfileTTL(ctx context.Context, profile string, ttl *uint32) error
}

var errNoTTL = errors.New("this traffic manager cannot change a profile's TTL")

// TrafficDialer connects to the config's traffic manager.
type TrafficDialer func(t *protection.Traffic) (Traffic, error)

// DNSTraffic reaches `haven dns` through its API and queries it over UDP,
// from inside t.NetNS when the traffic manager lives in a namespace.
func DNSTraffic(t *protection.Traffic) (Traffic, error) {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if t.NetNS != "" {
			return vnet.DialContext(ctx, t.NetNS, network, addr)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &tokenTransport{
		base: &http.Transport{DialContext: dial, DisableKeepAlives: true}, tokenFile: t.TokenFile}}
	resolve := t.Resolve
	if resolve == "" {
		host := strings.TrimPrefix(strings.TrimPrefix(t.API, "http://"), "https://")
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		resolve = net.JoinHostPort(host, "53")
	}
	c, err := dns.NewClient(t.API, dns.ClientOptions{HTTPClient: hc})
	if err != nil {
		return nil, err
	}
	return &dnsTraffic{c: c, dial: dial, resolve: resolve}, nil
}

// tokenTransport adds the traffic manager's API token, read at each call
// so a rotated token file takes effect without a restart.
type tokenTransport struct {
	base      http.RoundTripper
	tokenFile string
}

func (t *tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.tokenFile != "" {
		tok, err := httpauth.ReadTokenFile(t.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("traffic manager token: %w", err)
		}
		req = req.Clone(req.Context())
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return t.base.RoundTrip(req)
}

type dnsTraffic struct {
	c       *dns.Client
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	resolve string
}

func (d *dnsTraffic) Profile(ctx context.Context, name string) (dns.ProfileStatus, error) {
	return d.c.Profile(ctx, name)
}

func (d *dnsTraffic) UpdateEndpoint(ctx context.Context, profile, ep string, p dns.EndpointPatch) error {
	_, err := d.c.UpdateEndpoint(ctx, profile, ep, p)
	return err
}

func (d *dnsTraffic) SetProfileTTL(ctx context.Context, profile string, ttl *uint32) error {
	var err error
	if ttl == nil {
		_, err = d.c.ResetProfile(ctx, profile)
	} else {
		_, err = d.c.UpdateProfile(ctx, profile, dns.ProfilePatch{TTL: ttl})
	}
	return err
}

func (d *dnsTraffic) State(ctx context.Context) (dns.ClusterState, error) { return d.c.State(ctx) }

func (d *dnsTraffic) PushState(ctx context.Context, ov []dns.EndpointOverride) (dns.ClusterState, error) {
	return d.c.PushState(ctx, ov)
}

func (d *dnsTraffic) Answers(ctx context.Context, name string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := d.dial(ctx, "udp", d.resolve)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	q := new(mdns.Msg)
	q.SetQuestion(mdns.Fqdn(name), mdns.TypeA)
	co := &mdns.Conn{Conn: conn}
	if err := co.WriteMsg(q); err != nil {
		return nil, err
	}
	resp, err := co.ReadMsg()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range resp.Answer {
		switch a := rr.(type) {
		case *mdns.A:
			out = append(out, a.A.String())
		case *mdns.CNAME:
			out = append(out, strings.TrimSuffix(a.Target, "."))
		}
	}
	return out, nil
}
