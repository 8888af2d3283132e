package server

import (
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"

	"github.com/haven-dr/haven/internal/httpauth"
)

// EnsureToken returns the token in path, making one (mode 0600) if the
// file does not exist; an existing one is read by httpauth's rules (a
// file readable by others is refused).
func EnsureToken(path string) (string, error) {
	_, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		tok := rand.Text() + rand.Text()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return "", err
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return "", err
		}
		defer f.Close()
		if _, err := f.WriteString(tok + "\n"); err != nil {
			return "", err
		}
		return tok, f.Sync()
	}
	if err != nil {
		return "", err
	}
	return httpauth.ReadTokenFile(path)
}
