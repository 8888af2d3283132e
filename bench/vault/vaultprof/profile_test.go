package vaultprof

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/haven-dr/haven/internal/blob/fileblob"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vault"
)

// image is the disk the benchmarks read: $HAVEN_BENCH_IMAGE, by default the
// image cached by bench/vault/mkimage.sh.
func image(b *testing.B) string {
	p := os.Getenv("HAVEN_BENCH_IMAGE")
	if p == "" {
		p = "/var/cache/haven-bench/ext4-4g.img"
	}
	if _, err := os.Stat(p); err != nil {
		testenv.Missing(b, "benchmark image %s (build it with bench/vault/mkimage.sh): %v", p, err)
	}
	return p
}

// newVault creates a vault in a fresh directory next to the image, so both
// sit on the same file system as in run.sh.
func newVault(b *testing.B) *vault.Vault {
	dir, err := os.MkdirTemp(filepath.Dir(image(b)), "hvprof")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	be, err := fileblob.New(dir)
	if err != nil {
		b.Fatal(err)
	}
	v, err := vault.Init(context.Background(), be, "bench", vault.Options{KDF: vault.TestKDF})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { v.Close() })
	return v
}

func snapshot(b *testing.B, v *vault.Vault, img string) *vault.SnapshotStats {
	_, st, err := v.Snapshot(context.Background(), vault.SnapshotOptions{Machine: "bench",
		Disks: []vault.DiskSource{{Name: "root", Path: img}}})
	if err != nil {
		b.Fatal(err)
	}
	return st
}

// BenchmarkFirstSnapshot is step a of run.sh: a whole image into an empty
// vault. The page cache is warm after the first iteration (use -benchtime=1x
// after dropping caches for a cold read).
func BenchmarkFirstSnapshot(b *testing.B) {
	img := image(b)
	fi, _ := os.Stat(img)
	b.SetBytes(fi.Size())
	for b.Loop() {
		b.StopTimer()
		v := newVault(b)
		b.StartTimer()
		snapshot(b, v, img)
	}
}

// BenchmarkRestore is step c of run.sh: the whole image into a new file.
func BenchmarkRestore(b *testing.B) {
	img := image(b)
	v := newVault(b)
	st := snapshot(b, v, img)
	b.SetBytes(st.Bytes)
	out := filepath.Join(b.TempDir(), "restored.img")
	for b.Loop() {
		os.Remove(out)
		if _, err := v.Restore(context.Background(), vault.RestoreOptions{Machine: "bench", Disk: "root", Target: out}); err != nil {
			b.Fatal(err)
		}
	}
}
