package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"path/filepath"

	"github.com/haven-dr/haven/internal/tlsca"
)

// TLSConfig is how the API and the console are served.
type TLSConfig struct {
	// Mode: auto (a CA made at first start under state_dir/tls signs the
	// server's certificate), files (the user's cert_file and key_file) or
	// off. Default: auto unless listen is a loopback address.
	Mode     string `yaml:"mode"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

func (t *TLSConfig) defaults(listen string) error {
	if t.Mode == "" {
		t.Mode = "auto"
		if host, _, _ := net.SplitHostPort(listen); isLoopback(host) {
			t.Mode = "off"
		}
	}
	switch t.Mode {
	case "auto", "off":
		if t.CertFile != "" || t.KeyFile != "" {
			return fmt.Errorf("tls: cert_file and key_file want mode: files (mode is %s)", t.Mode)
		}
	case "files":
		if t.CertFile == "" || t.KeyFile == "" {
			return errors.New("tls: mode files wants cert_file and key_file")
		}
	default:
		return fmt.Errorf("tls: mode %q: want auto, files or off", t.Mode)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serverCert loads (or, in auto mode, makes once) the certificate the
// server presents; nil when TLS is off.
func serverCert(c *Config) (*tls.Certificate, error) {
	switch c.TLS.Mode {
	case "off":
		return nil, nil
	case "files":
		crt, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: tls: %v", ErrConfig, err)
		}
		return &crt, nil
	}
	return tlsca.LoadOrMake(filepath.Join(c.StateDir, "tls"), tlsca.CertHosts(c.Listen))
}
