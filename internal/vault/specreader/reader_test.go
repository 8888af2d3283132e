package specreader

import (
	"bytes"
	"context"
	"crypto/sha256"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/haven-dr/haven/internal/blob/fileblob"
	"github.com/haven-dr/haven/internal/vault"
)

// image writes a disk with text, a hole, random bytes, written zeros and a
// short last chunk; n is its size before the tail.
func image(t *testing.T, path string, n int64) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 11))
	b := make([]byte, n+1234)
	words := []string{"haven ", "vault ", "disk\n"}
	for i := 0; i < int(n/4); {
		i += copy(b[i:n/4], words[rng.IntN(len(words))])
	}
	for i := n / 2; i < n*3/4; i++ {
		b[i] = byte(rng.Uint32())
	}
	copy(b[n:], "tail of the disk")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func sum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// A vault written by Haven, read by this package, which follows only
// docs/vault-format.md, restores bit-exact: two pages of chunks (4 KiB chunks,
// 1025+ of them), compressed and stored-as-is blobs, zero chunks, an empty
// disk ("pages": null), a second key file, and writes in progress to skip.
func TestIndependentReaderRestoresHavenVault(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "vault")
	be, _ := fileblob.New(dir)
	v, err := vault.Init(ctx, be, "first", vault.Options{KDF: vault.TestKDF, ChunkSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.AddKey(ctx, "pässwörd"); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	root, empty := filepath.Join(src, "root"), filepath.Join(src, "empty")
	want := image(t, root, 4<<20)
	os.WriteFile(empty, nil, 0o644)
	disks := []vault.DiskSource{{Name: "root", Path: root}, {Name: "empty", Path: empty}}
	if _, _, err := v.Snapshot(ctx, vault.SnapshotOptions{Machine: "db-1", Disks: disks}); err != nil {
		t.Fatal(err)
	}
	// Leftovers of interrupted writes, which a reader must skip.
	for _, d := range []string{"keys", "index", "points"} {
		os.WriteFile(filepath.Join(dir, d, ".hvtmp-123"), []byte("partial"), 0o644)
	}

	r, err := Open(dir, "pässwörd")
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != vault.FormatVersion {
		t.Fatalf("reader saw version %d, haven writes %d", r.Version, vault.FormatVersion)
	}
	m, err := r.Latest("db-1")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := r.Restore(m, "root", filepath.Join(out, "root")); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(out, "root")); !bytes.Equal(got, want) {
		t.Fatal("independent reader restored root differently")
	}
	if err := r.Restore(m, "empty", filepath.Join(out, "empty")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(out, "empty")); err != nil || fi.Size() != 0 {
		t.Fatalf("empty disk: %v %v", fi, err)
	}
	if _, err := Open(dir, "wrong"); err == nil {
		t.Fatal("wrong password opened the vault")
	}
}

// The same reader, following the document's version-1 rules, reads the
// vault the version-1 code wrote and agrees with Haven's own restore.
func TestIndependentReaderReadsVersion1(t *testing.T) {
	r, err := Open("../testdata/v1", "v1-secret")
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Latest("web")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := r.Restore(m, "root", filepath.Join(out, "spec")); err != nil {
		t.Fatal(err)
	}
	be, _ := fileblob.New("../testdata/v1")
	v, err := vault.Open(context.Background(), be, "v1-secret", vault.Options{KDF: vault.TestKDF})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.Restore(context.Background(), vault.RestoreOptions{Machine: "web", Point: "latest", Disk: "root",
		Target: filepath.Join(out, "haven")}); err != nil {
		t.Fatal(err)
	}
	if sum(t, filepath.Join(out, "spec")) != sum(t, filepath.Join(out, "haven")) {
		t.Fatal("independent reader and haven restore the version-1 point differently")
	}
}
