package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
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
	dir := filepath.Join(c.StateDir, "tls")
	crtFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if crt, err := tls.LoadX509KeyPair(crtFile, keyFile); err == nil {
		return &crt, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("tls: %v", err)
	}
	if err := makeCerts(dir, certHosts(c.Listen)); err != nil {
		return nil, fmt.Errorf("tls: making the CA and certificate in %s: %v", dir, err)
	}
	crt, err := tls.LoadX509KeyPair(crtFile, keyFile)
	return &crt, err
}

// certHosts are the names the auto certificate is valid for.
func certHosts(listen string) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	host, _, _ := net.SplitHostPort(listen)
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		hosts = append(hosts, host)
	} else if name, err := os.Hostname(); err == nil {
		hosts = append(hosts, name)
	}
	return hosts
}

// makeCerts writes ca.crt/ca.key and server.crt/server.key to dir. The
// server files are written last, so a crash midway makes them again.
func makeCerts(dir string, hosts []string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	ca := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "haven server CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	leaf := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: hosts[len(hosts)-1]},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			leaf.IPAddresses = append(leaf.IPAddresses, ip)
		} else {
			leaf.DNSNames = append(leaf.DNSNames, h)
		}
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name, typ string
		der       func() ([]byte, error)
		mode      os.FileMode
	}{
		{"ca.key", "EC PRIVATE KEY", func() ([]byte, error) { return x509.MarshalECPrivateKey(caKey) }, 0o600},
		{"ca.crt", "CERTIFICATE", func() ([]byte, error) { return caDER, nil }, 0o644},
		{"server.key", "EC PRIVATE KEY", func() ([]byte, error) { return x509.MarshalECPrivateKey(key) }, 0o600},
		{"server.crt", "CERTIFICATE", func() ([]byte, error) { return leafDER, nil }, 0o644},
	} {
		der, err := f.der()
		if err != nil {
			return err
		}
		if err := writeFileSync(filepath.Join(dir, f.name), pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: der}), f.mode); err != nil {
			return err
		}
	}
	return nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

func writeFileSync(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
