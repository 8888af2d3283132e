package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/fileblob"
	"github.com/haven-dr/haven/internal/vault"
)

var fastKDF = vault.Options{KDF: vault.TestKDF}

// newVault makes a vault in a temp dir on a real fileblob backend, wrapped
// by wrap (nil: as is).
func newVault(t testing.TB, wrap func(blob.Backend) blob.Backend) *vault.Vault {
	t.Helper()
	be, err := fileblob.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var b blob.Backend = be
	if wrap != nil {
		b = wrap(be)
	}
	v, err := vault.Init(context.Background(), b, "secret", fastKDF)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// testConfig protects one machine "m1" with one disk at path.
func testConfig(t *testing.T, provider, path string) *Config {
	t.Helper()
	text := fmt.Sprintf(`
vault: /unused
state_dir: %s
machines:
  - name: m1
    provider: %s
    disks: [{name: d0, path: %s}]
    policy: {frequency: 15s, rpo_alert: 60s}
`, t.TempDir(), provider, path)
	cfg, err := ParseConfig(text)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func writeRandom(t *testing.T, path string, size int64) {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// scribble writes n random 4 KiB blocks spread over the file.
func scribble(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	blk := make([]byte, 4096)
	step := fi.Size() / int64(n) / 4096 * 4096
	for i := range int64(n) {
		rand.Read(blk)
		if _, err := f.WriteAt(blk, i*step+4096); err != nil {
			t.Fatal(err)
		}
	}
}

// assertRestores restores the newest point of m1/d0 and compares it with want.
func assertRestores(t *testing.T, v *vault.Vault, want string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "restored")
	if _, err := v.Restore(context.Background(), vault.RestoreOptions{Machine: "m1", Disk: "d0", Target: out}); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(want)
	b, _ := os.ReadFile(out)
	if !bytes.Equal(a, b) {
		t.Fatalf("restored disk differs from the source (%d vs %d bytes)", len(b), len(a))
	}
}
