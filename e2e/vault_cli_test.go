package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVaultKeysAndPasswordSources covers key add/list/remove and the
// password coming from --password-file as well as $HAVEN_PASSWORD.
func TestVaultKeysAndPasswordSources(t *testing.T) {
	dir := t.TempDir()
	vaultEnv := "HAVEN_VAULT=" + filepath.Join(dir, "vault")
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("first\n"), 0o600)
	newPw := filepath.Join(dir, "newpw")
	os.WriteFile(newPw, []byte("second"), 0o600)

	mustHaven(t, []string{vaultEnv}, "vault", "init", "--password-file", pwFile)
	mustHaven(t, []string{vaultEnv, "HAVEN_PASSWORD=first"}, "vault", "key", "add", "--new-password-file", newPw)
	var keys []struct {
		ID      string
		Current bool
	}
	json.Unmarshal([]byte(mustHaven(t, []string{vaultEnv, "HAVEN_PASSWORD=second"}, "vault", "key", "list", "--json")), &keys)
	if len(keys) != 2 {
		t.Fatalf("%d keys listed, want 2", len(keys))
	}
	var first string
	for _, k := range keys {
		if !k.Current {
			first = k.ID
		}
	}
	mustHaven(t, []string{vaultEnv, "HAVEN_PASSWORD=second"}, "vault", "key", "remove", first)
	if r := haven(t, []string{vaultEnv}, "vault", "points", "--password-file", pwFile); r.code != 4 {
		t.Fatalf("removed password still opens the vault (exit %d)", r.code)
	}
	mustHaven(t, []string{vaultEnv, "HAVEN_PASSWORD=second"}, "vault", "points")
}

// TestPruneDryRunAndStats checks that dry-run lists what would go and
// removes nothing, and that stats report the dedup of identical points.
func TestPruneDryRunAndStats(t *testing.T) {
	dir := t.TempDir()
	env := []string{"HAVEN_VAULT=" + filepath.Join(dir, "vault"), "HAVEN_PASSWORD=pw"}
	mustHaven(t, env, "vault", "init")
	img := filepath.Join(dir, "d.img")
	os.WriteFile(img, []byte(strings.Repeat("sql page ", 500000)), 0o644)
	for range 3 {
		mustHaven(t, env, "snapshot", "--machine", "sql", "--disk", "data="+img)
	}
	out := mustHaven(t, env, "vault", "prune", "--keep-last", "1", "--dry-run")
	if strings.Count(out, "remove ") != 2 || !strings.Contains(out, "dry run") {
		t.Fatalf("dry run output:\n%s", out)
	}
	if n := strings.Count(mustHaven(t, env, "vault", "points"), "sql "); n != 3 {
		t.Fatalf("dry run removed points: %d left", n)
	}
	var st struct {
		Points      int     `json:"points"`
		DedupRatio  float64 `json:"dedup_ratio"`
		StoredBytes int64   `json:"stored_bytes"`
	}
	json.Unmarshal([]byte(mustHaven(t, env, "vault", "stats", "--json")), &st)
	if st.Points != 3 || st.DedupRatio < 3 {
		t.Fatalf("stats: %+v (3 identical compressible points should dedupe >3x)", st)
	}
}
