// Package server is `haven server`: the control plane's HTTP API under /v1
// (token-authenticated), its state store, the orchestrator it drives, the
// standby images it keeps current, and the agents' heartbeats.
package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/haven-dr/haven/internal/alert"
	"github.com/haven-dr/haven/internal/detect"
	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/vnet/wg"
	"gopkg.in/yaml.v3"
)

// ErrConfig marks an invalid server config (exit code 2).
var ErrConfig = errors.New("invalid server config")

// Config is the server's YAML configuration.
type Config struct {
	Listen       string `yaml:"listen"`        // API address; default 127.0.0.1:7780
	StateDir     string `yaml:"state_dir"`     // default /var/lib/haven/server
	Vault        string `yaml:"vault"`         // vault URL
	PasswordFile string `yaml:"password_file"` // else $HAVEN_PASSWORD
	// Edge is where the recovery site is joined to the world: an
	// existing network namespace, or a host interface (edge.go).
	Edge EdgeConfig `yaml:"edge"`
	// Hosts are the recovery hosts machines are placed on (hosts.go);
	// none: this machine alone, named local.
	Hosts []HostConfig `yaml:"hosts"`
	// Islands: a site on several hosts gets no overlay between them
	// (machines on different hosts do not reach each other); without it
	// every host needs an underlay.
	Islands bool `yaml:"islands"`
	// vm_driver and libvirt_socket: this machine's host runs VMs as
	// libvirt domains (docs/site.md); a remote host's own config says so.
	host.VMConfig `yaml:",inline"`
	// Tunnels join the recovery network to offices by WireGuard while
	// the recovery site exists (failover until failback).
	Tunnels []wg.Config `yaml:"tunnels"`
	// TokenFile holds the admin token; made at first start (mode 0600).
	TokenFile string `yaml:"token_file"`
	// ViewerTokenFile holds the read-only token (console and API reads);
	// made at first start like the admin token.
	ViewerTokenFile string `yaml:"viewer_token_file"`
	// Standby keeps a local copy of each protected disk current from the
	// newest point, so failover clones it instead of restoring it whole.
	Standby         *bool         `yaml:"standby"`
	StandbyInterval time.Duration `yaml:"standby_interval"` // default 15s
	// TrafficInterval: how often the traffic manager's servers are asked
	// for their state and brought up to the newest change (default 10s).
	TrafficInterval time.Duration `yaml:"traffic_interval"`
	// AgentSilent: an agent not heard from for this long is an alert.
	AgentSilent time.Duration `yaml:"agent_silent"` // default 60s
	// State is a postgres:// URL for the state store, shared by several
	// servers; empty keeps it in SQLite under StateDir.
	State string `yaml:"state"`
	// DrillMaxAge: a plan without a passed test failover for this long
	// is an alert; default 4320h (180 days), negative turns it off.
	DrillMaxAge time.Duration `yaml:"drill_max_age"`
	// DrillGrace: a scheduled drill (a plan's drill: schedule) not
	// started this long after its instant is missed, not run late, and
	// an alert; default 10m.
	DrillGrace time.Duration `yaml:"drill_grace"`
	// VaultCheckInterval: how often the vault's metadata is checked;
	// default 24h, negative turns it off.
	VaultCheckInterval time.Duration `yaml:"vault_check_interval"`
	// CatalogRetry: how often a catalog that could not be saved to the
	// vault is tried again (default 1m); failing, it is an alert.
	CatalogRetry time.Duration `yaml:"catalog_retry"`
	Alerts       alert.Config  `yaml:"alerts"`
	// Copies are second vaults the server keeps current from the vault
	// (copies.go, docs/storage.md "A second copy").
	Copies []CopyConfig `yaml:"copies"`
	// vaultEnv is the credentials' prefix of a copy used as the vault (UseCopy).
	vaultEnv string
	// HA: several servers on one PostgreSQL state, one leader (ha.go).
	HA HAConfig `yaml:"ha"`
	// TLS for the API and the console (tls.go).
	TLS TLSConfig `yaml:"tls"`
	// EncryptionDetection tunes the mass-encryption detector
	// (internal/detect, encryption.go); zero fields take its defaults.
	EncryptionDetection detect.Config `yaml:"encryption_detection"`
}

// LoadConfig reads a server config; unknown keys are refused.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrConfig, path, err)
	}
	if err := c.Defaults(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrConfig, path, err)
	}
	return &c, nil
}

// Defaults fills unset fields and checks the rest.
func (c *Config) Defaults() error {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:7780"
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen %q: %v", c.Listen, err)
	}
	if c.StateDir == "" {
		c.StateDir = "/var/lib/haven/server"
	}
	if c.State != "" && !strings.HasPrefix(c.State, "postgres://") && !strings.HasPrefix(c.State, "postgresql://") {
		// The value may hold a password: it is not repeated.
		return errors.New("state: want a postgres:// URL, or nothing for SQLite under state_dir")
	}
	if c.Vault == "" {
		return errors.New("vault: missing")
	}
	if c.HA.Lease < 0 || (c.HA.Lease > 0 && c.State == "") {
		return errors.New("ha: a positive lease, and state: a postgres:// URL shared by the servers")
	}
	if err := c.Edge.check(); err != nil {
		return err
	}
	if err := checkTunnels(c.Tunnels, c.Edge); err != nil {
		return err
	}
	if err := checkHosts(c.Hosts); err != nil {
		return err
	}
	if err := c.VMConfig.Check(); err != nil {
		return err
	}
	if err := c.TLS.defaults(c.Listen); err != nil {
		return err
	}
	if c.HA.Lease > 0 && c.HA.Advertise == "" {
		c.HA.Advertise = "http://" + c.Listen
		if c.TLS.Mode != "off" {
			c.HA.Advertise = "https://" + c.Listen
		}
	}
	if c.TokenFile == "" {
		c.TokenFile = filepath.Join(c.StateDir, "admin.token")
	}
	if c.ViewerTokenFile == "" {
		c.ViewerTokenFile = filepath.Join(c.StateDir, "viewer.token")
	}
	if c.Standby == nil {
		on := true
		c.Standby = &on
	}
	if c.StandbyInterval == 0 {
		c.StandbyInterval = 15 * time.Second
	}
	if c.TrafficInterval == 0 {
		c.TrafficInterval = 10 * time.Second
	}
	if c.AgentSilent == 0 {
		c.AgentSilent = time.Minute
	}
	if c.DrillMaxAge == 0 {
		c.DrillMaxAge = 180 * 24 * time.Hour
	}
	if c.DrillGrace <= 0 {
		c.DrillGrace = 10 * time.Minute
	}
	if c.VaultCheckInterval == 0 {
		c.VaultCheckInterval = 24 * time.Hour
	}
	if c.CatalogRetry <= 0 {
		c.CatalogRetry = time.Minute
	}
	if err := copiesDefaults(c); err != nil {
		return err
	}
	if err := c.EncryptionDetection.Check(); err != nil {
		return fmt.Errorf("encryption_detection: %v", err)
	}
	return c.Alerts.Defaults()
}
