package vault

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/blob/fileblob"
)

// testdata/v1 was written by the format-version-1 code (scrypt key, one
// key for all keyed hashes, machine names in object names) from the image
// that v1Image rebuilds.
func v1Image(t *testing.T) string {
	img := filepath.Join(t.TempDir(), "img")
	writeImage(t, img, 1, segment{"text", 20 << 10}, segment{"hole", 16 << 10}, segment{"random", 4 << 10}, segment{"text", 100})
	return img
}

func openV1(t *testing.T) (*Vault, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "vault")
	if err := os.CopyFS(dir, os.DirFS("testdata/v1")); err != nil {
		t.Fatal(err)
	}
	be, err := fileblob.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	v, err := Open(context.Background(), be, "v1-secret", fastKDF)
	if err != nil {
		t.Fatalf("open version-1 vault: %v", err)
	}
	t.Cleanup(func() { v.Close() })
	return v, dir
}

func TestReadsAndExtendsVersion1Vault(t *testing.T) {
	v, dir := openV1(t)
	if v.Config().Version != 1 {
		t.Fatalf("version %d", v.Config().Version)
	}
	img := v1Image(t)
	out := filepath.Join(t.TempDir(), "out")
	restore(t, v, "web", "latest", "root", out)
	if sha(t, out) != sha(t, img) {
		t.Fatal("version-1 point restored wrong")
	}
	keys, err := v.Keys(context.Background())
	if err != nil || len(keys) != 1 || keys[0].Host == "" {
		t.Fatalf("version-1 key list: %+v %v", keys, err)
	}
	// A version-1 vault stays version 1: new points dedupe against the old
	// data and are named as version 1 names them.
	_, st := snap(t, v, "web2", DiskSource{Name: "root", Path: img})
	if st.NewChunks != 0 {
		t.Fatalf("snapshot of the same image into the version-1 vault stored %d new chunks", st.NewChunks)
	}
	if _, err := os.Stat(filepath.Join(dir, "points", "web2")); err != nil {
		t.Fatalf("version-1 naming of a new point: %v", err)
	}
	if _, err := v.AddKey(context.Background(), "second"); err != nil {
		t.Fatal(err)
	}
	be, _ := fileblob.New(dir)
	v2, err := Open(context.Background(), be, "second", fastKDF)
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	restore(t, v2, "web2", "latest", "root", out)
	if sha(t, out) != sha(t, img) {
		t.Fatal("new point in version-1 vault restored wrong")
	}
	rep, err := v2.Check(context.Background(), CheckOptions{ReadData: true})
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("check: %v %v", rep.Problems, err)
	}
}

func TestNewVaultIsVersion2(t *testing.T) {
	v, be := testVault(t)
	if v.Config().Version != 2 {
		t.Fatalf("new vault has version %d", v.Config().Version)
	}
	cfg, _ := be.Get(context.Background(), configName, 0, -1)
	for _, ver := range []string{"0", "3"} {
		be.Put(context.Background(), configName, []byte(strings.Replace(string(cfg), `"version":2`, `"version":`+ver, 1)))
		if _, err := Open(context.Background(), be, "secret", fastKDF); !errors.Is(err, ErrUnsupportedVersion) {
			t.Fatalf("version %s: got %v", ver, err)
		}
	}
}
