// Package servetest starts a real `haven vault serve` server (HTTPS on a
// loopback port, a CA made for it) for tests of its clients.
package servetest

import (
	"context"
	"net"
	"path/filepath"
	"testing"

	"github.com/haven-dr/haven/internal/tlsca"
	"github.com/haven-dr/haven/internal/vaultserve"
)

// Tokens of the started server.
const (
	AgentToken = "agent-token-0123456789abcdef"
	AdminToken = "admin-token-0123456789abcdef"
)

// Served is a running server.
type Served struct {
	*vaultserve.Server
	Base   string // https://127.0.0.1:PORT
	CAFile string
	Dir    string // the store
}

// URL is a vault URL on the server: https://127.0.0.1:PORT/prefix?ca=FILE.
func (s *Served) URL(prefix string) string {
	return s.Base + "/" + prefix + "?ca=" + s.CAFile
}

// Start serves a fresh store with AgentToken and AdminToken until the
// test ends. cfg's Dir and tokens are filled in when empty.
func Start(t testing.TB, cfg vaultserve.Config) *Served {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(t.TempDir(), "store")
	}
	if cfg.AgentTokens == nil && cfg.AdminTokens == nil {
		cfg.AgentTokens, cfg.AdminTokens = []string{AgentToken}, []string{AdminToken}
	}
	srv, err := vaultserve.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tlsDir := t.TempDir()
	cert, err := tlsca.LoadOrMake(tlsDir, []string{"localhost", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, cert) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		srv.Close()
	})
	return &Served{Server: srv, Base: "https://" + ln.Addr().String(), CAFile: filepath.Join(tlsDir, "ca.crt"), Dir: cfg.Dir}
}
