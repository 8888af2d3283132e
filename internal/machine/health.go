package machine

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/haven-dr/haven/internal/vnet"
)

// WaitHealthy probes the machine's health check from namespace probeNS (an
// edge or the site's router namespace; never the root namespace) until it
// passes or ctx ends.
func WaitHealthy(ctx context.Context, probeNS string, spec Spec) error {
	addr, err := spec.Addr()
	if err != nil {
		return err
	}
	for {
		err = probe(ctx, probeNS, addr, spec.Health)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s: %v (last: %v)", ErrUnhealthy, spec.Name, ctx.Err(), err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func probe(ctx context.Context, ns string, addr netip.Addr, h HealthCheck) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if h.HTTPPort != 0 {
		url := "http://" + net.JoinHostPort(addr.String(), strconv.Itoa(h.HTTPPort)) + h.HTTPPath
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := HTTPClient(ns).Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("health: %s answered %s", url, resp.Status)
		}
		return nil
	}
	if h.TCPPort == 0 {
		return fmt.Errorf("%w: no health check port", ErrBadSpec)
	}
	c, err := vnet.DialContext(ctx, ns, "tcp", net.JoinHostPort(addr.String(), strconv.Itoa(h.TCPPort)))
	if err == nil {
		c.Close()
	}
	return err
}

// HTTPClient returns a client whose connections are made from inside
// namespace ns, for tests and probes that speak HTTP to machines.
func HTTPClient(ns string) *http.Client {
	tr := &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return vnet.DialContext(ctx, ns, network, addr)
		}}
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}
