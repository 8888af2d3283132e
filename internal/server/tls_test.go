package server_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/haven-dr/haven/internal/server"
	"github.com/haven-dr/haven/internal/server/client"
)

// TestTLSAuto: a server forced to tls auto on loopback makes a CA at
// first start; a client trusting that CA talks to it, one without it
// fails on the certificate, and a restart reuses the same certificate.
func TestTLSAuto(t *testing.T) {
	e := newEnv(t, nil)
	e.cfg.TLS.Mode = "auto"
	dir := filepath.Join(e.cfg.StateDir, "tls")
	ctx := context.Background()

	ca := filepath.Join(dir, "ca.crt")
	var first []byte
	t.Run("first start", func(t *testing.T) {
		r := e.start(t)
		c := client.New(r.base, r.token, 0)
		if err := c.TrustCA(ca); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Apply(ctx, []byte(e.doc())); err != nil {
			t.Fatalf("client with the CA: %v", err)
		}
		_, err := client.New(r.base, r.token, 0).Apply(ctx, []byte(e.doc()))
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Fatalf("client without the CA: got %v, want an unknown-authority certificate error", err)
		}
		for _, k := range []string{"ca.key", "server.key"} {
			fi, err := os.Stat(filepath.Join(dir, k))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s mode %v, want 0600", k, fi.Mode().Perm())
			}
		}
		if first, err = os.ReadFile(filepath.Join(dir, "server.crt")); err != nil {
			t.Fatal(err)
		}
	})

	r2 := e.start(t)
	again, err := os.ReadFile(filepath.Join(dir, "server.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, again) {
		t.Fatal("the certificate was made again at the second start; want it reused")
	}
	c2 := client.New(r2.base, r2.token, 0)
	if err := c2.TrustCA(ca); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Config(ctx); err != nil {
		t.Fatalf("after restart, client with the first CA: %v", err)
	}
}

func TestTLSDefaults(t *testing.T) {
	for _, tc := range []struct {
		listen, mode, want string
		wantErr            bool
	}{
		{"127.0.0.1:7780", "", "off", false},
		{"[::1]:7780", "", "off", false},
		{"localhost:7780", "", "off", false},
		{"0.0.0.0:7780", "", "auto", false},
		{"10.1.2.3:7780", "", "auto", false},
		{"127.0.0.1:7780", "auto", "auto", false},
		{"0.0.0.0:7780", "off", "off", false},
		{"0.0.0.0:7780", "files", "", true},
		{"0.0.0.0:7780", "bogus", "", true},
	} {
		c := server.Config{Listen: tc.listen, Vault: "file:///x", TLS: server.TLSConfig{Mode: tc.mode}}
		err := c.Defaults()
		if (err != nil) != tc.wantErr {
			t.Errorf("listen %s mode %q: err %v, want error %v", tc.listen, tc.mode, err, tc.wantErr)
			continue
		}
		if err == nil && c.TLS.Mode != tc.want {
			t.Errorf("listen %s mode %q: got mode %s, want %s", tc.listen, tc.mode, c.TLS.Mode, tc.want)
		}
	}
}
