package rig

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/vnet"
)

// StartDNS runs `haven dns` in the internet's namespace, answering on
// listen there, and waits until it answers and has written its API token
// (Dir/dns.api-token, beside its config).
func (r *Rig) StartDNS(ctx context.Context, listen string) error {
	path, err := r.Write("dns.yaml", dnsConfig(listen))
	if err != nil {
		return err
	}
	if err := r.Start("dns", r.Inet, r.Bin, "dns", "--config", path); err != nil {
		return err
	}
	return Eventually(ctx, time.Minute, "haven dns answers", func() error {
		if !r.Alive("dns") {
			return fmt.Errorf("haven dns exited:\n%s", r.Log("dns"))
		}
		if _, err := os.Stat(r.DNSToken()); err != nil {
			return err
		}
		_, err := query(r.Inet, listen)
		return err
	})
}

// DNSToken is haven dns's API token file.
func (r *Rig) DNSToken() string { return filepath.Join(r.Dir, "dns.api-token") }

// Resolve asks server, from namespace ns, for the shop's A records.
func Resolve(ns, server string) ([]string, error) {
	m, err := query(ns, server)
	if err != nil {
		return nil, err
	}
	if m.Rcode != mdns.RcodeSuccess {
		return nil, fmt.Errorf("%s: %s", ShopName, mdns.RcodeToString[m.Rcode])
	}
	var out []string
	for _, rr := range m.Answer {
		if a, ok := rr.(*mdns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out, nil
}

func query(ns, server string) (*mdns.Msg, error) {
	var m *mdns.Msg
	err := vnet.Do(ns, func() error {
		q := new(mdns.Msg)
		q.SetQuestion(mdns.Fqdn(ShopName), mdns.TypeA)
		var err error
		m, _, err = (&mdns.Client{Timeout: 2 * time.Second}).Exchange(q, server)
		return err
	})
	return m, err
}

// HTTPIn does a request from namespace ns; an answer other than 200 is an
// error.
func HTTPIn(ctx context.Context, ns, method, url, body string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return "", err
	}
	resp, err := machine.HTTPClient(ns).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, strings.TrimSpace(string(b)))
	}
	return string(b), nil
}

// Eventually retries fn every 200 ms until it succeeds, ctx ends or d
// passes; the error says what was awaited and fn's last error.
func Eventually(ctx context.Context, d time.Duration, what string, fn func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not after %s: %w", what, d, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
