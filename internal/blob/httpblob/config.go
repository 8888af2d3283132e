package httpblob

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/haven-dr/haven/internal/httpauth"
)

// Config says where the server is, which CA to trust and which token to
// present.
type Config struct {
	Base   string // https://host:port
	Prefix string // the vault's place on the server: objects are Prefix/name
	CAFile string // PEM CA the server's certificate must chain to; empty: system roots
	Token  string // env HAVEN_VAULT_TOKEN, or the file named by HAVEN_VAULT_TOKEN_FILE
}

// ParseURL reads https://HOST:PORT[/prefix][?ca=/path/ca.crt] and takes the
// token from the environment through getenv, never from the URL.
func ParseURL(raw string, getenv func(string) string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Config{}, fmt.Errorf("httpblob: %w", err)
	}
	if u.Scheme != "https" || u.Host == "" || u.User != nil {
		return Config{}, fmt.Errorf("httpblob: want https://HOST:PORT[/prefix]?ca=FILE, got %q", u.Redacted())
	}
	cfg := Config{Base: "https://" + u.Host, Prefix: strings.Trim(u.Path, "/"), CAFile: u.Query().Get("ca")}
	if cfg.Token, err = token(getenv); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func token(getenv func(string) string) (string, error) {
	if t := getenv("HAVEN_VAULT_TOKEN"); t != "" {
		return t, nil
	}
	if f := getenv("HAVEN_VAULT_TOKEN_FILE"); f != "" {
		return httpauth.ReadTokenFile(f)
	}
	return "", errors.New("httpblob: no token: set HAVEN_VAULT_TOKEN or HAVEN_VAULT_TOKEN_FILE")
}

func (c Config) roots() (*x509.CertPool, error) {
	if c.CAFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("httpblob: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("httpblob: CA file %s holds no PEM certificate", c.CAFile)
	}
	return pool, nil
}
