package server

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"

	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/host/hostapi"
	"github.com/haven-dr/haven/internal/httpauth"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/vault"
	"github.com/haven-dr/haven/internal/vnet/overlay"
)

// HostConfig is one recovery host of server.yaml's hosts: list. The hosts
// belong to the server, not to the protection document: they carry
// credentials (the worker's token), and the protection document is the
// catalog saved to the vault, which a new server on other hosts recovers
// (docs/orchestrator.md, "Hosts").
type HostConfig struct {
	Name string `yaml:"name"`
	// URL of the host's `haven host` worker; "local" (or empty) is this
	// server's own machine, in process.
	URL string `yaml:"url"`
	// TokenFile holds the token the worker expects.
	TokenFile string `yaml:"token_file"`
	// CAFile is the worker's certificate authority (PEM); empty: the
	// system's.
	CAFile string `yaml:"ca_file"`
	// Capacity: 0 is not limited.
	CPUs     int `yaml:"cpus"`
	MemoryMB int `yaml:"memory_mb"`
	DiskGB   int `yaml:"disk_gb"` // for standby images and recovered disks
	// Edge: the recovery site's uplink (edge:) is on this host; machines
	// that publish services are placed on such a host.
	Edge bool `yaml:"edge"`
	// Overlay is the local host's underlay (a site on several hosts is
	// joined by a VXLAN overlay, docs/orchestrator.md); a remote host's
	// is in its own host.yaml, and it tells the server.
	Overlay *overlay.Underlay `yaml:"overlay"`
}

// Local says whether the host is this server's own machine.
func (h HostConfig) Local() bool { return h.URL == "" || h.URL == "local" }

// HostDialer makes the client of a remote recovery host (package
// hostapi's, once `haven host` is built in; tests pass in-process hosts).
type HostDialer func(ctx context.Context, hc HostConfig, v *vault.Vault) (host.Host, error)

var hostName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,30}$`)

// checkHosts refuses a hosts: list the server cannot place machines on.
func checkHosts(hs []HostConfig) error {
	seen := map[string]bool{}
	locals := 0
	for i, h := range hs {
		switch {
		case !hostName.MatchString(h.Name):
			return fmt.Errorf("hosts[%d].name %q: want lower-case letters, digits and -", i, h.Name)
		case seen[h.Name]:
			return fmt.Errorf("hosts[%d].name %q: named twice", i, h.Name)
		case h.CPUs < 0 || h.MemoryMB < 0 || h.DiskGB < 0:
			return fmt.Errorf("hosts[%d] (%s): capacity cannot be negative", i, h.Name)
		}
		seen[h.Name] = true
		if h.Local() {
			locals++
			if h.Overlay != nil {
				if err := h.Overlay.Check(); err != nil {
					return fmt.Errorf("hosts[%d] (%s): overlay: %v", i, h.Name, err)
				}
			}
			continue
		}
		if h.Overlay != nil {
			return fmt.Errorf("hosts[%d] (%s): overlay: only the local host's is set here; a remote host's is overlay: in its host.yaml", i, h.Name)
		}
		u, err := url.Parse(h.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("hosts[%d].url %q (%s): want https://host:port of its haven host worker, or local", i, h.URL, h.Name)
		}
		if h.TokenFile == "" {
			return fmt.Errorf("hosts[%d] (%s): token_file: missing (the worker's token)", i, h.Name)
		}
	}
	if locals > 1 {
		return errors.New("hosts: one host at most is local (this server's machine)")
	}
	return nil
}

// localUnderlay is the underlay of the local host of hosts:, if any.
func (c *Config) localUnderlay() *overlay.Underlay {
	for _, h := range c.Hosts {
		if h.Local() {
			return h.Overlay
		}
	}
	return nil
}

// siteHosts makes the orchestrator's hosts from the config, every one
// fenced: local is this server's in-process host, the others come from
// dial. No hosts: the local one alone, with the uplink.
func siteHosts(ctx context.Context, cfg *Config, local host.Host, dial HostDialer, v *vault.Vault, enter enterFn) ([]orchestrator.SiteHost, error) {
	if len(cfg.Hosts) == 0 {
		return []orchestrator.SiteHost{{Name: orchestrator.LocalHostName, Host: fencedHost{local, enter}, Edge: true}}, nil
	}
	var out []orchestrator.SiteHost
	for _, hc := range cfg.Hosts {
		h := local
		if !hc.Local() {
			if dial == nil {
				return nil, fmt.Errorf("%w: host %s: %s is a remote host, and this build has no haven host client", ErrConfig, hc.Name, hc.URL)
			}
			var err error
			if h, err = dial(ctx, hc, v); err != nil {
				return nil, fmt.Errorf("host %s: %w", hc.Name, err)
			}
		}
		out = append(out, orchestrator.SiteHost{Name: hc.Name, Host: fencedHost{h, enter},
			CPUs: hc.CPUs, MemoryMB: hc.MemoryMB, DiskBytes: int64(hc.DiskGB) << 30, Edge: hc.Edge, Remote: !hc.Local()})
	}
	return out, nil
}

// Ping passes through (a read): a host that cannot tell always answers.
func (h fencedHost) Ping(ctx context.Context) error {
	if p, ok := h.Host.(orchestrator.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

// dialHostAPI is the client of a remote `haven host` worker (package
// hostapi): its token from token_file, its CA from ca_file. Disk paths
// travel relative to diskDir, the orchestrator's disk directory.
func dialHostAPI(diskDir string) HostDialer {
	return func(_ context.Context, hc HostConfig, _ *vault.Vault) (host.Host, error) {
		tok, err := httpauth.ReadTokenFile(hc.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("%w: host %s: token_file: %v", ErrConfig, hc.Name, err)
		}
		c, err := hostapi.NewClient(hc.URL, tok, hc.CAFile, diskDir)
		if err != nil {
			return nil, fmt.Errorf("%w: host %s: %v", ErrConfig, hc.Name, err)
		}
		return c, nil
	}
}
