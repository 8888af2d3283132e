package httpauth

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadTokenFile: one rule set for every token file in Haven.
func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	good := "0123456789abcdefXYZ"
	for _, tc := range []struct {
		name, body string
		mode       os.FileMode
		want       string // "" when refused
		why        string
	}{
		{"trimmed", "  " + good + "\n\n", 0o600, good, ""},
		{"owner read-only", good, 0o400, good, ""},
		{"too short", "0123456789abcde\n", 0o600, "", "at least 16"},
		{"empty", "\n", 0o600, "", "at least 16"},
		{"two words", good + " " + good, 0o600, "", "one word"},
		{"group-readable", good, 0o640, "", "readable by others"},
		{"world-readable", good, 0o604, "", "readable by others"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.WriteFile(p, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			got, err := ReadTokenFile(p)
			if tc.want != "" {
				if err != nil || got != tc.want {
					t.Fatalf("got %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrBadToken) || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("got %q, %v; want a refusal naming %q", got, err, tc.why)
			}
			if strings.Contains(err.Error(), strings.TrimSpace(tc.body)) && strings.TrimSpace(tc.body) != "" {
				t.Errorf("the error names the token: %v", err)
			}
		})
	}
	if _, err := ReadTokenFile(filepath.Join(dir, "absent")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
}

// TestCheck: missing and wrong tokens are both 401; only the exact token
// passes, whatever the scheme's case.
func TestCheck(t *testing.T) {
	want := "0123456789abcdef0123"
	for _, tc := range []struct {
		header string
		status int
	}{
		{"", http.StatusUnauthorized},
		{"Bearer", http.StatusUnauthorized},
		{"Bearer ", http.StatusUnauthorized},
		{"Basic " + want, http.StatusUnauthorized},
		{"Bearer x" + want[1:], http.StatusUnauthorized},
		{"Bearer " + want[:len(want)-1], http.StatusUnauthorized},
		{"Bearer " + want + "0", http.StatusUnauthorized},
		{"Bearer " + want, 0},
		{"bearer  " + want + " ", 0},
	} {
		r, _ := http.NewRequest("GET", "http://x/", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		got := 0
		if ref := Check(r, want, "the token"); ref != nil {
			got = ref.Status
			if strings.Contains(ref.Msg, want) {
				t.Errorf("%q: refusal names the token: %s", tc.header, ref.Msg)
			}
		}
		if got != tc.status {
			t.Errorf("%q: status %d, want %d", tc.header, got, tc.status)
		}
	}
	if Equal("", "") {
		t.Error("Equal: two empty tokens match")
	}
}

// TestLoadOrCreateToken: the first call makes a private token file, later
// calls read the same token, and a file others may read is refused.
func TestLoadOrCreateToken(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agent.token")
	tok, created, err := LoadOrCreateToken(p)
	if err != nil || !created || len(tok) != 64 {
		t.Fatalf("first call: %q %v %v", tok, created, err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	again, created, err := LoadOrCreateToken(p)
	if err != nil || created || again != tok {
		t.Fatalf("second call: %q %v %v", again, created, err)
	}
	os.Chmod(p, 0o644)
	if _, _, err := LoadOrCreateToken(p); !errors.Is(err, ErrBadToken) {
		t.Errorf("world-readable token file: %v", err)
	}
}
