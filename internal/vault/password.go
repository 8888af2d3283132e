package vault

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// ErrNoPassword: neither a password file nor $HAVEN_PASSWORD was given.
var ErrNoPassword = errors.New("no password_file and $HAVEN_PASSWORD is empty")

// LoadPassword reads the vault password for a daemon's config: the file's
// content without its trailing newline, or $HAVEN_PASSWORD when file is
// "" (the agent and the server share this rule; the CLI also prompts).
func LoadPassword(file string) (string, error) {
	if file == "" {
		if p := os.Getenv("HAVEN_PASSWORD"); p != "" {
			return p, nil
		}
		return "", ErrNoPassword
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}
