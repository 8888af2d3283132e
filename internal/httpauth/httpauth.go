// Package httpauth is the one token rule set of Haven's HTTP APIs (the
// server's, an agent's control API and `haven dns`'s): how a token file
// is read, how a bearer token is compared, and which status a refused
// credential gets. It imports only the standard library.
//
// The rule: a missing or unknown token is 401 (who are you?); a known
// token that lacks the role the request needs is 403 (you may not).
package httpauth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// MinTokenLen refuses tokens short enough to guess.
const MinTokenLen = 16

// ErrBadToken: a token file exists but its token or mode is refused.
var ErrBadToken = errors.New("bad token file")

// ReadTokenFile reads a token: the file's one word (surrounding space
// trimmed) of at least MinTokenLen characters. A file that its group or
// others may read is refused, since the token is then no secret.
func ReadTokenFile(path string) (string, error) {
	if err := CheckMode(path); err != nil {
		return "", err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < MinTokenLen || strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("%w %s: the token must be one word of at least %d characters", ErrBadToken, path, MinTokenLen)
	}
	return tok, nil
}

// CheckMode refuses a token file its group or others may read; a missing
// file is no error here (reading it is).
func CheckMode(path string) error {
	fi, err := os.Stat(path)
	if err == nil && fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%w %s: readable by others (mode %v): chmod 600 it", ErrBadToken, path, fi.Mode().Perm())
	}
	return nil
}

// Bearer is the request's bearer token, or "" when it carries none.
func Bearer(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// Equal compares a presented token with a known one in constant time; an
// empty token never matches.
func Equal(got, want string) bool {
	return got != "" && want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// Refusal is a refused credential: its HTTP status (401 or 403) and a
// message that names no secret.
type Refusal struct {
	Status int
	Msg    string
}

func (r *Refusal) Error() string { return r.Msg }

// Unauthorized refuses a missing or unknown credential.
func Unauthorized(msg string) *Refusal { return &Refusal{http.StatusUnauthorized, msg} }

// Forbidden refuses a known credential that lacks the role.
func Forbidden(msg string) *Refusal { return &Refusal{http.StatusForbidden, msg} }

// Check lets r in when it carries want as its bearer token; otherwise it
// is a 401 whose message says how to authenticate (hint).
func Check(r *http.Request, want, hint string) *Refusal {
	got := Bearer(r)
	switch {
	case got == "":
		return Unauthorized("missing token (Authorization: Bearer <" + hint + ">)")
	case !Equal(got, want):
		return Unauthorized("wrong token (Authorization: Bearer <" + hint + ">)")
	}
	return nil
}

// LoadOrCreateToken reads the token file, creating it (0600, 64 random hex
// digits) first if it does not exist, so a service is never served without
// a token. created says whether this call made it.
func LoadOrCreateToken(path string) (tok string, created bool, err error) {
	tok, err = ReadTokenFile(path)
	if !errors.Is(err, os.ErrNotExist) {
		return tok, false, err
	}
	b := make([]byte, 32)
	rand.Read(b)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		_, err = f.WriteString(hex.EncodeToString(b) + "\n")
		err = errors.Join(err, f.Sync(), f.Close())
		created = err == nil
	}
	if err != nil && !errors.Is(err, os.ErrExist) {
		return "", false, fmt.Errorf("creating token file: %w", err)
	}
	tok, err = ReadTokenFile(path) // another process may have won the race
	return tok, created, err
}
