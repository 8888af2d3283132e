// Package tlsca makes the self-signed CA and server certificate that
// Haven's HTTPS services (the control plane, `haven vault serve`) present
// when the operator gives none: made once at first start, kept in a
// directory, trusted by clients through the CA file.
package tlsca

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

	"github.com/haven-dr/haven/internal/atomicfile"
)

// LoadOrMake loads dir/server.crt and dir/server.key, making them (and the
// CA, dir/ca.crt) for hosts first if they do not exist yet.
func LoadOrMake(dir string, hosts []string) (*tls.Certificate, error) {
	crtFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if crt, err := tls.LoadX509KeyPair(crtFile, keyFile); err == nil {
		return &crt, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("tls: %v", err)
	}
	if err := MakeCerts(dir, hosts); err != nil {
		return nil, fmt.Errorf("tls: making the CA and certificate in %s: %v", dir, err)
	}
	crt, err := tls.LoadX509KeyPair(crtFile, keyFile)
	return &crt, err
}

// CertHosts are the names the auto certificate is valid for.
func CertHosts(listen string) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	host, _, _ := net.SplitHostPort(listen)
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		hosts = append(hosts, host)
	} else if name, err := os.Hostname(); err == nil {
		hosts = append(hosts, name)
	}
	return hosts
}

// MakeCerts writes ca.crt/ca.key and server.crt/server.key to dir. A CA
// already in dir (one restored from a lost server's catalog) signs the
// new certificate, so clients that trust it keep trusting the server. The
// server files are written last, so a crash midway makes them again.
func MakeCerts(dir string, hosts []string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	now := time.Now()
	caCert, caKey, err := loadCA(dir)
	if errors.Is(err, os.ErrNotExist) {
		caCert, caKey, err = makeCA(dir, now)
	}
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
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(dir, "server.key", "EC PRIVATE KEY", keyDER, "server.crt", leafDER)
}

// makeCA makes a CA and writes ca.key and ca.crt to dir.
func makeCA(dir string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	ca := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "haven CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(caKey)
	if err != nil {
		return nil, nil, err
	}
	return caCert, caKey, writePEM(dir, "ca.key", "EC PRIVATE KEY", keyDER, "ca.crt", caDER)
}

// writePEM writes a private key (0600) and then its certificate (0644).
func writePEM(dir, keyName, keyType string, keyDER []byte, crtName string, crtDER []byte) error {
	if err := atomicfile.WriteFile(filepath.Join(dir, keyName), pem.EncodeToMemory(&pem.Block{Type: keyType, Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, crtName), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: crtDER}), 0o644)
}

// loadCA reads dir/ca.crt and dir/ca.key; os.ErrNotExist when either is
// missing (a CA whose certificate never got written is made again).
func loadCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"))
	if err != nil {
		return nil, nil, err
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("%s: the CA key is not an ECDSA key", dir)
	}
	crt, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, err
	}
	if !crt.IsCA {
		return nil, nil, fmt.Errorf("%s/ca.crt is not a CA certificate", dir)
	}
	return crt, key, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}
