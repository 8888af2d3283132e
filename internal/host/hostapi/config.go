package hostapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/blobopen"
	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/host/backrep"
	"github.com/haven-dr/haven/internal/httpauth"
	"github.com/haven-dr/haven/internal/tlsca"
	"github.com/haven-dr/haven/internal/vault"
	"github.com/haven-dr/haven/internal/vnet/overlay"
	"gopkg.in/yaml.v3"
)

// Config is `haven host`'s configuration file (packaging/etc/host.yaml).
type Config struct {
	Listen    string `yaml:"listen"`     // default :7443
	StateDir  string `yaml:"state_dir"`  // sites, machines, standby images, disks
	TokenFile string `yaml:"token_file"` // created (0600) at the first start
	TLS       struct {
		Dir  string `yaml:"dir"` // auto: a CA (ca.crt for the server) made here at first start
		Cert string `yaml:"cert"`
		Key  string `yaml:"key"`
	} `yaml:"tls"`
	// Edge is this host's uplink (host.Edge's form: "@eth0", a namespace,
	// or "ns@eth0"); a site with an uplink is refused on a host without.
	Edge    string            `yaml:"edge"`
	Overlay *overlay.Underlay `yaml:"overlay"`
	// Vault and PasswordFile let the host prepare disks and standby
	// images from points; without them it only runs sites and machines.
	Vault        string `yaml:"vault"`
	PasswordFile string `yaml:"password_file"` // else $HAVEN_PASSWORD
	// Exec is the haven binary machines run detached in, so they outlive
	// a restart of the host; default this executable.
	Exec string `yaml:"exec"`
	// vm_driver and libvirt_socket: VMs as libvirt domains (docs/site.md).
	host.VMConfig `yaml:",inline"`
}

// ErrConfig wraps every configuration problem.
var ErrConfig = errors.New("host config")

// LoadConfig reads path; unknown keys are refused.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrConfig, path, err)
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

func (c *Config) check() error {
	if c.Listen == "" {
		c.Listen = ":7443"
	}
	switch {
	case c.StateDir == "":
		return fmt.Errorf("%w: state_dir is required", ErrConfig)
	case c.TokenFile == "":
		return fmt.Errorf("%w: token_file is required", ErrConfig)
	case (c.TLS.Cert == "") != (c.TLS.Key == ""):
		return fmt.Errorf("%w: tls.cert and tls.key go together", ErrConfig)
	case c.TLS.Cert == "" && c.TLS.Dir == "":
		return fmt.Errorf("%w: give tls.dir (a CA is made there) or tls.cert and tls.key", ErrConfig)
	}
	if c.Overlay != nil {
		if err := c.Overlay.Check(); err != nil {
			return fmt.Errorf("%w: %v", ErrConfig, err)
		}
	}
	if c.Edge != "" && host.ParseEdge(c.Edge).IsZero() {
		return fmt.Errorf("%w: edge %q", ErrConfig, c.Edge)
	}
	if err := c.VMConfig.Check(); err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return nil
}

// DiskDir is where the disks the server names live.
func (c *Config) DiskDir() string { return filepath.Join(c.StateDir, "disks") }

// Run serves the host until ctx ends; ready, if set, gets the address.
// Machines run detached: they keep running when Run returns.
func Run(ctx context.Context, c *Config, ready func(net.Addr)) error {
	if err := c.check(); err != nil {
		return err
	}
	tok, created, err := httpauth.LoadOrCreateToken(c.TokenFile)
	if err != nil {
		return err
	}
	if created {
		slog.Info("created token file", "path", c.TokenFile)
	}
	cert, err := c.cert()
	if err != nil {
		return err
	}
	var v *vault.Vault
	if c.Vault != "" {
		if v, err = openVault(ctx, c.Vault, c.PasswordFile); err != nil {
			return err
		}
		defer v.Close()
	}
	h, err := host.NewLocal(filepath.Join(c.StateDir, "host"), v, nil)
	if err != nil {
		return err
	}
	h.Underlay = c.Overlay
	h.UseVMs(c.VMConfig)
	if h.Exec = c.Exec; h.Exec == "" {
		if h.Exec, err = os.Executable(); err != nil {
			return err
		}
	}
	s := &Server{B: h, Token: tok, Edge: c.Edge, DiskDir: c.DiskDir(), Info: Info{Vault: v != nil}}
	if v != nil {
		if s.Back, err = backrep.Open(filepath.Join(c.StateDir, "replication"), filepath.Join(c.StateDir, "replication-clones"), v, slog.Default()); err != nil {
			return err
		}
		defer s.Back.Close()
	}
	if c.Overlay != nil {
		s.Info.Underlay = c.Overlay.Local
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return err
	}
	slog.Info("haven host listening", "addr", ln.Addr().String(), "id", h.ID(), "state_dir", c.StateDir,
		"edge", c.Edge, "overlay", c.Overlay != nil, "vault", v != nil, "vm_driver", c.VMDriver)
	if ready != nil {
		ready(ln.Addr())
	}
	return tlsca.Serve(ctx, ln, cert, s.Handler())
}

func (c *Config) cert() (*tls.Certificate, error) {
	if c.TLS.Cert != "" {
		crt, err := tls.LoadX509KeyPair(c.TLS.Cert, c.TLS.Key)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		return &crt, nil
	}
	return tlsca.LoadOrMake(c.TLS.Dir, tlsca.CertHosts(c.Listen))
}

func openVault(ctx context.Context, url, passwordFile string) (*vault.Vault, error) {
	pw, err := vault.LoadPassword(passwordFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	be, err := blobopen.Open(ctx, url, blob.DefaultLimits())
	if err != nil {
		return nil, err
	}
	v, err := vault.Open(ctx, be, pw, vault.Options{Holder: "haven-host"})
	if err != nil {
		be.Close()
		return nil, err
	}
	return v, nil
}
