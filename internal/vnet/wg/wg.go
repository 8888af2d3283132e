// Package wg joins a recovery site to an office (or to what survives of
// the primary site) by WireGuard, so recovered machines keep their primary
// addresses and staff reach them as before.
//
// This host has no WireGuard kernel module, so a tunnel is the userspace
// implementation (golang.zx2c4.com/wireguard) in a small detached
// process per tunnel: the haven binary re-executed with HAVEN_WG_CHILD
// (handled in an init, before cobra or a test framework runs). It lives
// in the site's namespace, so its TUN device and the routes to the
// office are the site's, while its UDP socket is opened in the uplink's
// namespace (the host's), where the office's packets arrive. Detached, it
// outlives a server restart (the next server finds it by its pid record
// and leaves it running); it exits by itself when its site's namespace
// is deleted, so a crashed server's tunnel cannot keep a removed site
// alive.
package wg

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"time"

	"golang.org/x/crypto/curve25519"
)

// ErrConfig marks a tunnel config that cannot work.
var ErrConfig = errors.New("wg: bad tunnel config")

// Config is one tunnel, as the server's config names it.
type Config struct {
	// Name is 1-8 of a-z0-9; the interface in the site is wg-<name>.
	Name string `yaml:"name" json:"name"`
	// PrivateKeyFile holds the site end's key (base64, as `wg genkey`
	// writes it), readable by root only.
	PrivateKeyFile string `yaml:"private_key_file" json:"private_key_file"`
	// ListenPort is the UDP port on the host's address (default 51820).
	ListenPort int `yaml:"listen_port,omitempty" json:"listen_port,omitempty"`
	// Address, if set, is the tunnel interface's own address in the site.
	Address netip.Prefix `yaml:"address,omitempty" json:"address,omitzero"`
	Peers   []Peer       `yaml:"peers" json:"peers"`
	// Userspace skips kernel WireGuard even where the kernel has it.
	Userspace bool `yaml:"userspace,omitempty" json:"userspace,omitempty"`
}

// Peer is the other end (the office's WireGuard).
type Peer struct {
	PublicKey string `yaml:"public_key" json:"public_key"`
	// Endpoint is host:port; empty waits for the peer to call (an
	// office behind NAT).
	Endpoint string `yaml:"endpoint,omitempty" json:"endpoint,omitempty"`
	// AllowedIPs are the office's networks: routed from the site into
	// the tunnel, and the only sources taken from it.
	AllowedIPs []netip.Prefix `yaml:"allowed_ips" json:"allowed_ips"`
	// Keepalive keeps a NAT mapping open (e.g. 25s).
	Keepalive time.Duration `yaml:"persistent_keepalive,omitempty" json:"persistent_keepalive,omitempty"`
}

var nameRE = regexp.MustCompile(`^[a-z0-9]{1,8}$`)

// Iface is the tunnel's interface in the site.
func (c Config) Iface() string { return "wg-" + c.Name }

// Check refuses a config that cannot work, before anything is made.
func (c Config) Check() error {
	var errs []error
	bad := func(f string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: tunnel %q: "+f, append([]any{ErrConfig, c.Name}, a...)...))
	}
	if !nameRE.MatchString(c.Name) {
		bad("name: 1-8 of a-z0-9")
	}
	if c.PrivateKeyFile == "" {
		bad("private_key_file missing")
	}
	if c.ListenPort < 0 || c.ListenPort > 65535 {
		bad("listen_port %d", c.ListenPort)
	}
	if len(c.Peers) == 0 {
		bad("no peers")
	}
	for i, p := range c.Peers {
		if _, err := decodeKey(p.PublicKey); err != nil {
			bad("peers[%d].public_key: %v", i, err)
		}
		if len(p.AllowedIPs) == 0 {
			bad("peers[%d].allowed_ips: the office's networks are needed", i)
		}
	}
	return errors.Join(errs...)
}

func decodeKey(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != 32 {
		return nil, errors.New("want 32 bytes in base64 (wg genkey / wg pubkey)")
	}
	return b, nil
}

// GenerateKey makes a private key (base64), as `wg genkey` does.
func GenerateKey() string {
	k := make([]byte, 32)
	rand.Read(k)
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	return base64.StdEncoding.EncodeToString(k)
}

// PublicKey is the public key of a private one (base64), as `wg pubkey`.
func PublicKey(private string) (string, error) {
	k, err := decodeKey(private)
	if err != nil {
		return "", err
	}
	pub, err := curve25519.X25519(k, curve25519.Basepoint)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(pub), nil
}

// uapi is the device's configuration in wireguard-go's text protocol
// (keys in hex).
func (c Config) uapi(private []byte) (string, error) {
	var b strings.Builder
	port := c.ListenPort
	if port == 0 {
		port = 51820
	}
	fmt.Fprintf(&b, "private_key=%s\nlisten_port=%d\nreplace_peers=true\n", hex.EncodeToString(private), port)
	for _, p := range c.Peers {
		pk, err := decodeKey(p.PublicKey)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "public_key=%s\nreplace_allowed_ips=true\n", hex.EncodeToString(pk))
		if p.Endpoint != "" {
			ap, err := netip.ParseAddrPort(p.Endpoint)
			if err != nil {
				return "", fmt.Errorf("%w: endpoint %q: want address:port", ErrConfig, p.Endpoint)
			}
			fmt.Fprintf(&b, "endpoint=%s\n", ap)
		}
		if p.Keepalive > 0 {
			fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", int(p.Keepalive.Seconds()))
		}
		for _, a := range p.AllowedIPs {
			fmt.Fprintf(&b, "allowed_ip=%s\n", a.Masked())
		}
	}
	return b.String(), nil
}

func readKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("wg: private key: %w", err)
	}
	k, err := decodeKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrConfig, path, err)
	}
	return k, nil
}
