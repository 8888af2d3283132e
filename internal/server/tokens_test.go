package server_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/haven-dr/haven/internal/httpauth"
	"github.com/haven-dr/haven/internal/server"
)

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestTokensStoredHashed: the server keeps only SHA-256 digests of the
// tokens; with the operator's plaintext files deleted it still accepts
// the tokens after a restart.
func TestTokensStoredHashed(t *testing.T) {
	e := newEnv(t, nil)
	var admin, viewer string
	t.Run("first start", func(t *testing.T) {
		r := e.start(t)
		admin = r.token
		var err error
		if viewer, err = httpauth.ReadTokenFile(e.cfg.ViewerTokenFile); err != nil {
			t.Fatal(err)
		}
		if a := r.admin(t, "GET", "/v1/status", nil); a.status == http.StatusUnauthorized {
			t.Fatalf("admin token refused: %d %s", a.status, a.body)
		}
	})
	p := filepath.Join(e.cfg.StateDir, "tokens.json")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("tokens.json mode %v, want 0600", fi.Mode().Perm())
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]string
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	if h["admin"] != sha(admin) || h["viewer"] != sha(viewer) {
		t.Fatalf("tokens.json = %s, want the SHA-256 of each token", b)
	}
	// No file the server keeps holds a token in the clear, but the
	// operator's own copies.
	filepath.WalkDir(e.cfg.StateDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path == e.cfg.TokenFile || path == e.cfg.ViewerTokenFile {
			return err
		}
		b, err := os.ReadFile(path)
		if err == nil && (bytes.Contains(b, []byte(admin)) || bytes.Contains(b, []byte(viewer))) {
			t.Errorf("%s holds a token in the clear", path)
		}
		return nil
	})

	for _, f := range []string{e.cfg.TokenFile, e.cfg.ViewerTokenFile} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	r := e.start(t)
	for role, tok := range map[string]string{"admin": admin, "viewer": viewer} {
		if a := r.call(t, "GET", "/v1/status", tok, nil); a.status == http.StatusUnauthorized {
			t.Errorf("%s token refused after its file was deleted: %d %s", role, a.status, a.body)
		}
	}
	if a := r.call(t, "GET", "/v1/status", "not-a-token-0123456789", nil); a.status != http.StatusUnauthorized {
		t.Errorf("a wrong token: got %d, want 401", a.status)
	}
	if _, err := os.Stat(e.cfg.TokenFile); err == nil {
		t.Error("the admin token file was made again; the hash in tokens.json was the admin's")
	}
}

// TestTokenRotate: a rotation takes effect on the running server at
// once: the old token is refused, the new one in the file accepted.
func TestTokenRotate(t *testing.T) {
	e := newEnv(t, nil)
	r := e.start(t)
	old := r.token
	for _, role := range []string{"admin", "viewer"} {
		before, err := httpauth.ReadTokenFile(e.cfg.ViewerTokenFile)
		if err != nil {
			t.Fatal(err)
		}
		if role == "admin" {
			before = old
		}
		if err := server.RotateToken(e.cfg, role); err != nil {
			t.Fatal(err)
		}
		file := e.cfg.TokenFile
		if role == "viewer" {
			file = e.cfg.ViewerTokenFile
		}
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", file, fi.Mode().Perm())
		}
		now, err := httpauth.ReadTokenFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if now == before {
			t.Fatalf("%s: the token did not change", role)
		}
		if a := r.call(t, "GET", "/v1/status", before, nil); a.status != http.StatusUnauthorized {
			t.Errorf("%s: old token after rotation: got %d, want 401", role, a.status)
		}
		if a := r.call(t, "GET", "/v1/status", now, nil); a.status == http.StatusUnauthorized {
			t.Errorf("%s: new token refused: %s", role, a.body)
		}
	}
	if err := server.RotateToken(e.cfg, "root"); err == nil {
		t.Error("rotating an unknown role: no error")
	}
}
