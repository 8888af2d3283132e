package server

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/haven-dr/haven/internal/atomicfile"
	"github.com/haven-dr/haven/internal/httpauth"
)

// tokenHashes is state_dir/tokens.json: each role's token as a SHA-256
// hex digest. The server verifies against these alone, so the plaintext
// token files are only the operator's copy and may be deleted.
type tokenHashes map[string]string

// tokens answers which role a presented token has. It re-reads
// tokens.json when the file changes, so a rotation by `haven server
// token rotate` takes effect without a restart.
type tokens struct {
	path string
	mu   sync.Mutex
	// fi is the file last read; a rewrite renames a new file in place,
	// so a new inode shows a change even within one mtime tick.
	fi os.FileInfo
	h  tokenHashes
	// rotated hears of each role whose hash changed while running.
	rotated func(role string)
}

func tokensPath(c *Config) string { return filepath.Join(c.StateDir, "tokens.json") }

// openTokens makes what is missing at first start: a token for each role
// (written to its token file for the operator) and its hash. A role
// already in tokens.json keeps its hash; a token file from before
// tokens.json existed is hashed as it is.
func openTokens(c *Config) (*tokens, error) {
	p := tokensPath(c)
	h, err := readTokenHashes(p)
	if err != nil {
		return nil, err
	}
	changed := false
	for _, role := range []string{roleAdmin, roleViewer} {
		if h[role] != "" {
			// Not needed here, but a copy others can read is a leak
			// the operator should hear of.
			if err := httpauth.CheckMode(roleTokenFile(c, role)); err != nil {
				return nil, err
			}
			continue
		}
		tok, err := EnsureToken(roleTokenFile(c, role))
		if err != nil {
			return nil, err
		}
		h[role], changed = hashToken(tok), true
	}
	if changed {
		if err := writeTokenHashes(p, h); err != nil {
			return nil, err
		}
	}
	t := &tokens{path: p}
	return t, t.reload()
}

func roleTokenFile(c *Config, role string) string {
	if role == roleViewer {
		return c.ViewerTokenFile
	}
	return c.TokenFile
}

// role is the role of tok, or "" for none. Every role's hash is compared
// in constant time, so timing tells nothing about which was close.
func (t *tokens) role(tok string) string {
	if tok == "" {
		return ""
	}
	// On a read error the last good hashes stay: an unreadable file is
	// not a reason to lock the operator out, nor to let anyone in.
	_ = t.reload()
	t.mu.Lock()
	h := t.h
	t.mu.Unlock()
	got := hashToken(tok)
	role := ""
	for _, r := range []string{roleAdmin, roleViewer} {
		if subtle.ConstantTimeCompare([]byte(got), []byte(h[r])) == 1 && h[r] != "" {
			role = r
		}
	}
	return role
}

func (t *tokens) reload() error {
	fi, err := os.Stat(t.path)
	if err != nil {
		return err
	}
	t.mu.Lock()
	if t.fi != nil && os.SameFile(fi, t.fi) && fi.ModTime().Equal(t.fi.ModTime()) {
		t.mu.Unlock()
		return nil
	}
	h, err := readTokenHashes(t.path)
	if err != nil {
		t.mu.Unlock()
		return err
	}
	var changed []string
	for _, r := range []string{roleAdmin, roleViewer} {
		if t.h != nil && h[r] != t.h[r] {
			changed = append(changed, r)
		}
	}
	t.h, t.fi = h, fi
	fn := t.rotated
	t.mu.Unlock()
	for _, r := range changed {
		if fn != nil {
			fn(r)
		}
	}
	return nil
}

func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

func readTokenHashes(path string) (tokenHashes, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return tokenHashes{}, nil
	}
	if err != nil {
		return nil, err
	}
	h := tokenHashes{}
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	for role, v := range h {
		if b, err := hex.DecodeString(v); err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("%s: %s: not a SHA-256 hex digest", path, role)
		}
	}
	return h, nil
}

func writeTokenHashes(path string, h tokenHashes) error {
	b, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o600)
}

// RotateToken gives role (admin or viewer) a new random token: written
// to its token file for the operator (mode 0600), and its hash to
// tokens.json, which a running server reads on its next request. The
// old token stops working at once.
func RotateToken(c *Config, role string) error {
	if role != roleAdmin && role != roleViewer {
		return fmt.Errorf("role %q: want admin or viewer", role)
	}
	p := tokensPath(c)
	h, err := readTokenHashes(p)
	if err != nil {
		return err
	}
	tok := rand.Text() + rand.Text()
	file := roleTokenFile(c, role)
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	// The file first: if the hash were written first and this failed,
	// the operator would hold no working token.
	if err := atomicfile.WriteFile(file, []byte(tok+"\n"), 0o600); err != nil {
		return err
	}
	h[role] = hashToken(tok)
	return writeTokenHashes(p, h)
}
