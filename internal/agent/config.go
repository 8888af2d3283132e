// Package agent is Haven's replication agent: it keeps protected machines'
// disks replicated into the vault as recovery points, on a policy, and
// reports at every moment the RPO a disaster would cost (docs/agent.md).
package agent

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/haven-dr/haven/internal/vault"
	"gopkg.in/yaml.v3"
)

// ErrConfig marks an invalid configuration (exit code "usage").
var ErrConfig = errors.New("invalid agent config")

// Consistency providers.
const (
	ProviderReflink  = "reflink"
	ProviderFsfreeze = "fsfreeze"
	ProviderHooks    = "hooks"
	ProviderNone     = "none"
	ProviderQemu     = "qemu" // a running QEMU VM or libvirt domain, through QMP (qemu.go)
)

// MinFrequency is the shortest recovery point interval the agent accepts.
const MinFrequency = 15 * time.Second

// Config is the agent's YAML configuration (docs/agent.md has an example).
type Config struct {
	Vault        string          `yaml:"vault"`         // vault URL (blobopen)
	PasswordFile string          `yaml:"password_file"` // else $HAVEN_PASSWORD
	StateDir     string          `yaml:"state_dir"`     // change-tracking caches
	Listen       string          `yaml:"listen"`        // status API: loopback only without control_token_file
	Bandwidth    string          `yaml:"bandwidth"`     // upload cap per second, e.g. "20MiB"
	Machines     []MachineConfig `yaml:"machines"`
	// ControlTokenFile holds the Bearer token the server presents on the
	// control API (docs/agent.md, "Control API"); unset: control disabled.
	ControlTokenFile string        `yaml:"control_token_file"`
	Server           *ServerConfig `yaml:"server"` // heartbeats to `haven server`

	uploadLimit int64
}

// MachineConfig is one protected machine.
type MachineConfig struct {
	Name     string       `yaml:"name"`
	Group    string       `yaml:"group"`    // consistency group; default: the machine's name
	Provider string       `yaml:"provider"` // reflink, fsfreeze, hooks, qemu or none (required)
	Disks    []DiskConfig `yaml:"disks"`    // qemu: optional, default every writable disk
	// QMP is the VM's QMP socket and GuestAgent its guest agent socket
	// (optional), for provider qemu.
	QMP        string `yaml:"qmp"`
	GuestAgent string `yaml:"guest_agent"`
	// LibvirtDomain is, instead of qmp, the libvirt domain to protect
	// (provider qemu): its monitor is reached through libvirtd at
	// LibvirtSocket (default the system's), which holds the QMP socket.
	LibvirtDomain string   `yaml:"libvirt_domain"`
	LibvirtSocket string   `yaml:"libvirt_socket"`
	Freeze        []string `yaml:"freeze"`    // mounted filesystems frozen around the capture
	CloneDir      string   `yaml:"clone_dir"` // reflink: clones live here (same filesystem as the disks); qemu: fleecing files
	Hooks         Hooks    `yaml:"hooks"`
	Policy        Policy   `yaml:"policy"`
	Control       Control  `yaml:"control"` // stop/start hooks for failover
}

// DiskConfig is a raw image file or block device, or (provider qemu) a
// disk of the VM by its QEMU device, qdev id or node name.
type DiskConfig struct {
	Name   string `yaml:"name"`
	Path   string `yaml:"path"`
	Device string `yaml:"device"`
}

// Hooks are app-consistency commands run through /bin/sh.
type Hooks struct {
	Pre     string        `yaml:"pre"`
	Post    string        `yaml:"post"`
	Timeout time.Duration `yaml:"timeout"`
}

// Policy is a machine's replication policy.
type Policy struct {
	Frequency    time.Duration   `yaml:"frequency"`     // recovery point interval (>= 15s)
	AppFrequency time.Duration   `yaml:"app_frequency"` // app-consistent interval (0: never)
	RPOAlert     time.Duration   `yaml:"rpo_alert"`     // alert when RPO exceeds this
	Retention    vault.Retention `yaml:"retention"`
	PruneEvery   time.Duration   `yaml:"prune_every"`
}

// LoadConfig reads and validates a config file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseConfig(string(b))
}

// ParseConfig parses YAML text, expands the environment in the path and URL
// fields (see expandEnv) and validates the result.
func ParseConfig(text string) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(text))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if err := c.expandEnv(os.LookupEnv); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return &c, nil
}

// UploadLimit is the bandwidth cap in bytes per second (0: none).
func (c *Config) UploadLimit() int64 { return c.uploadLimit }

func (c *Config) validate() error {
	if c.Vault == "" {
		return errors.New("vault: missing")
	}
	if c.StateDir == "" {
		c.StateDir = "/var/lib/haven/agent"
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:7717"
	}
	if err := c.validateControl(); err != nil {
		return err
	}
	if c.Bandwidth != "" {
		n, err := humanize.ParseBytes(c.Bandwidth)
		if err != nil {
			return fmt.Errorf("bandwidth %q: %v", c.Bandwidth, err)
		}
		c.uploadLimit = int64(n)
	}
	if len(c.Machines) == 0 {
		return errors.New("machines: none configured")
	}
	seen := map[string]bool{}
	for i := range c.Machines {
		m := &c.Machines[i]
		if seen[m.Name] {
			return fmt.Errorf("machine %q configured twice", m.Name)
		}
		seen[m.Name] = true
		if err := m.validate(c.StateDir); err != nil {
			return fmt.Errorf("machine %q: %w", m.Name, err)
		}
	}
	return nil
}

// loopbackOnly keeps the unauthenticated status API off the network.
func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen %q: %v", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("listen %q: the status API serves loopback addresses only", addr)
	}
	return nil
}

func (m *MachineConfig) validate(stateDir string) error {
	if err := vault.ValidName("machine", m.Name); err != nil {
		return err
	}
	if m.Group == "" {
		m.Group = m.Name
	}
	switch m.Provider {
	case ProviderReflink, ProviderFsfreeze, ProviderHooks, ProviderNone:
		if m.QMP != "" || m.GuestAgent != "" || m.LibvirtDomain != "" || m.LibvirtSocket != "" {
			return fmt.Errorf("qmp, guest_agent and libvirt_domain are for provider qemu, not %s", m.Provider)
		}
	case ProviderQemu:
		if err := m.validateQemu(stateDir); err != nil {
			return err
		}
		return m.validateRest()
	case "":
		return errors.New("provider: missing (reflink, fsfreeze, hooks, qemu, or explicitly none)")
	default:
		return fmt.Errorf("provider %q: want reflink, fsfreeze, hooks, qemu or none", m.Provider)
	}
	if len(m.Disks) == 0 {
		return errors.New("disks: none")
	}
	for _, d := range m.Disks {
		if err := vault.ValidName("disk", d.Name); err != nil {
			return err
		}
		if !filepath.IsAbs(d.Path) {
			return fmt.Errorf("disk %s: path %q is not absolute", d.Name, d.Path)
		}
		if d.Device != "" {
			return fmt.Errorf("disk %s: device is for provider qemu; give a path", d.Name)
		}
	}
	if m.Provider == ProviderFsfreeze && len(m.Freeze) == 0 {
		return errors.New("provider fsfreeze needs freeze: [mountpoints]")
	}
	if m.Provider == ProviderHooks && m.Hooks.Pre == "" {
		return errors.New("provider hooks needs hooks.pre")
	}
	if m.CloneDir == "" {
		m.CloneDir = filepath.Join(filepath.Dir(m.Disks[0].Path), ".haven-clones")
	}
	for _, mp := range m.Freeze {
		// FICLONE writes to the clone's filesystem: frozen, it would hang.
		if m.Provider == ProviderReflink && (m.CloneDir == mp || strings.HasPrefix(m.CloneDir, strings.TrimSuffix(mp, "/")+"/")) {
			return fmt.Errorf("freeze %s: it holds clone_dir %s; freeze the guest filesystems, not the one with the images", mp, m.CloneDir)
		}
	}
	return m.validateRest()
}

func (m *MachineConfig) validateRest() error {
	if m.Hooks.Timeout == 0 {
		m.Hooks.Timeout = time.Minute
	}
	if m.Control.Timeout == 0 {
		m.Control.Timeout = 5 * time.Minute
	}
	if err := m.Control.validate(m.Name); err != nil {
		return err
	}
	return m.Policy.validate()
}

func (p *Policy) validate() error {
	if p.Frequency == 0 {
		p.Frequency = 5 * time.Minute
	}
	if p.Frequency < MinFrequency {
		return fmt.Errorf("policy.frequency %v is below the minimum %v", p.Frequency, MinFrequency)
	}
	if p.AppFrequency != 0 && p.AppFrequency < p.Frequency {
		return fmt.Errorf("policy.app_frequency %v is below frequency %v", p.AppFrequency, p.Frequency)
	}
	if p.RPOAlert == 0 {
		p.RPOAlert = 2 * p.Frequency
	}
	if p.PruneEvery == 0 {
		p.PruneEvery = 10 * time.Minute
	}
	return nil
}
