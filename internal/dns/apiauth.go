package dns

import (
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
)

// minTokenLen refuses tokens short enough to guess.
const minTokenLen = 16

// apiAuth is what the API checks requests against; a reload replaces it, so
// a rotated token file or renewed certificate takes effect on SIGHUP.
type apiAuth struct {
	token       string // "" refuses every authenticated request
	cert        *tls.Certificate
	openMetrics bool // the API is on loopback: /metrics needs no token
}

func loadAPIAuth(t *table, log *slog.Logger) (*apiAuth, error) {
	a := &apiAuth{}
	if t.api == "" {
		return a, nil
	}
	if t.files.token == "" {
		return nil, fmt.Errorf("%w: api_token_file: required when the config is not read from a file", ErrConfig)
	}
	tok, err := loadOrCreateToken(t.files.token, log)
	if err != nil {
		return nil, err
	}
	a.token = tok
	if t.files.cert != "" {
		c, err := tls.LoadX509KeyPair(t.files.cert, t.files.key)
		if err != nil {
			return nil, fmt.Errorf("%w: api_tls_cert: %w", ErrConfig, err)
		}
		a.cert = &c
	}
	a.openMetrics = isLoopback(t.api)
	return a, nil
}

// loadOrCreateToken reads the token file, creating it (0600, random) at the
// first start so the API is never served without a token.
func loadOrCreateToken(path string, log *slog.Logger) (string, error) {
	tok, err := ReadTokenFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		if err == nil {
			warnIfReadable(path, log)
		}
		return tok, err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	err = createFileAtomic(path, []byte(hex.EncodeToString(b)+"\n"))
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("creating API token file: %w", err)
	}
	if err == nil {
		log.Info("created API token file", "path", path)
	}
	return ReadTokenFile(path) // another process may have won the race
}

// ReadTokenFile reads an API token file (one line); clients use it too.
func ReadTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("API token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < minTokenLen || strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("API token file %s: the token must be one word of at least %d characters", path, minTokenLen)
	}
	return tok, nil
}

func warnIfReadable(path string, log *slog.Logger) {
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("API token file is readable by other users", "path", path, "mode", fi.Mode().Perm().String())
	}
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// allows checks the bearer token in constant time.
func (a *apiAuth) allows(r *http.Request) bool {
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || a.token == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(a.token)) == 1
}

// requireToken answers 401 to a request without the API token.
func (s *Server) requireToken(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.auth.Load().allows(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="haven-dns"`)
			writeJSON(w, http.StatusUnauthorized, apiError{Error: "missing or wrong bearer token"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// metricsAuth opens /metrics on a loopback API (whoever can reach it can
// already read the process) and asks for the token elsewhere.
func (s *Server) metricsAuth(h http.Handler) http.Handler {
	guarded := s.requireToken(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.auth.Load().openMetrics {
			h.ServeHTTP(w, r)
			return
		}
		guarded.ServeHTTP(w, r)
	})
}

func (s *Server) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c := s.auth.Load().cert; c != nil {
				return c, nil
			}
			return nil, errors.New("api TLS was turned off by a reload; restart haven dns")
		},
	}
}
