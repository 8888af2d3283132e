package e2e

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVaultErrorExitCodes checks that each class of failure has its own
// clear message and exit code, and that a failed restore writes nothing.
func TestVaultErrorExitCodes(t *testing.T) {
	dir := t.TempDir()
	vaultDir := filepath.Join(dir, "vault")
	env := []string{"HAVEN_VAULT=" + vaultDir, "HAVEN_PASSWORD=pw"}
	mustHaven(t, env, "vault", "init")
	img := filepath.Join(dir, "disk.img")
	os.WriteFile(img, []byte(strings.Repeat("haven disk ", 300000)), 0o644)
	mustHaven(t, env, "snapshot", "--machine", "web", "--disk", "root="+img)
	out := filepath.Join(dir, "out.img")
	restoreArgs := []string{"restore", "--machine", "web", "--disk", "root", "--to", out}

	expect := func(name string, env []string, code int, msg string, args ...string) {
		t.Helper()
		r := haven(t, env, args...)
		if r.code != code || !strings.Contains(r.stderr, msg) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d and %q", name, r.code, r.stderr, code, msg)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s: failed restore wrote %s", name, out)
			os.Remove(out)
		}
	}
	expect("no vault", []string{"HAVEN_VAULT=" + filepath.Join(dir, "nothing"), "HAVEN_PASSWORD=pw"}, 3, "no vault", restoreArgs...)
	expect("wrong password", []string{"HAVEN_VAULT=" + vaultDir, "HAVEN_PASSWORD=nope"}, 4, "wrong password", restoreArgs...)
	expect("no password", []string{"HAVEN_VAULT=" + vaultDir}, 2, "no password", restoreArgs...)
	expect("bad url", []string{"HAVEN_VAULT=ftp://x", "HAVEN_PASSWORD=pw"}, 2, "invalid storage URL", restoreArgs...)
	expect("no point", env, 10, "no recovery points", "restore", "--machine", "db", "--disk", "root", "--to", out)

	// Unreachable storage: an S3 endpoint on a loopback port nobody listens on.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	expect("unreachable", []string{"HAVEN_VAULT=s3://bucket?endpoint=" + addr + "&insecure=true", "HAVEN_PASSWORD=pw",
		"AWS_ACCESS_KEY_ID=k", "AWS_SECRET_ACCESS_KEY=s"}, 8, "unavailable", append(restoreArgs, "--retries", "1")...)

	// A truncated pack, then a missing one.
	packs, _ := filepath.Glob(filepath.Join(vaultDir, "data", "*", "*"))
	if len(packs) == 0 {
		t.Fatal("no packs in vault")
	}
	data, _ := os.ReadFile(packs[0])
	os.WriteFile(packs[0], data[:len(data)/3], 0o644)
	rel := "data/" + filepath.Base(filepath.Dir(packs[0])) + "/" + filepath.Base(packs[0])
	expect("truncated", env, 7, rel, restoreArgs...)
	expect("truncated (check)", env, 7, rel, "vault", "check")
	os.Remove(packs[0])
	expect("missing", env, 6, rel, restoreArgs...)

	// A vault from the future.
	cfg := filepath.Join(vaultDir, "config")
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(b), `"version":2`, `"version":3`, 1)), 0o644)
	expect("version", env, 5, "version 3", restoreArgs...)
}
