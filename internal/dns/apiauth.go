package dns

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"

	"github.com/haven-dr/haven/internal/atomicfile"
	"github.com/haven-dr/haven/internal/httpauth"
)

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
	tok, err := httpauth.ReadTokenFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return tok, err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	err = atomicfile.CreateFile(path, []byte(hex.EncodeToString(b)+"\n"), 0o600)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("creating API token file: %w", err)
	}
	if err == nil {
		log.Info("created API token file", "path", path)
	}
	return httpauth.ReadTokenFile(path) // another process may have won the race
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// requireToken answers 401 to a request without the API token.
func (s *Server) requireToken(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := s.auth.Load()
		ref := httpauth.Unauthorized("missing or wrong bearer token")
		if a.token != "" {
			ref = httpauth.Check(r, a.token, "token of api_token_file")
		}
		if ref != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="haven-dns"`)
			writeJSON(w, ref.Status, apiError{Error: ref.Msg})
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
