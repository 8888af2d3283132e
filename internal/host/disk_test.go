package host

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/haven-dr/haven/internal/blob/fileblob"
	"github.com/haven-dr/haven/internal/vault"
)

// TestStandbyDeltaFromManifests: refreshing a standby from one point to the
// next, and preparing a disk from a standby that holds another point, take
// the chunks to write from the two manifests without reading the disk
// (BytesCompared 0), write only the chunks that differ, and give disks
// byte-identical to the points' images; the standby itself stays as it was.
func TestStandbyDeltaFromManifests(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	be, err := fileblob.New(filepath.Join(dir, "vault"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.Init(ctx, be, "secret", vault.Options{KDF: vault.TestKDF})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	h, err := NewLocal(filepath.Join(dir, "host"), v, nil)
	if err != nil {
		t.Fatal(err)
	}

	const size, chunk = 8 << 20, vault.DefaultChunkSize
	a := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range a[:6<<20] { // the last 2 MiB stay zero
		a[i] = byte(rng.Uint32())
	}
	b := bytes.Clone(a)
	for _, off := range []int{0, 100 * chunk, 300 * chunk, 7 << 20} { // 4 chunks change
		copy(b[off:off+4096], bytes.Repeat([]byte{0xab}, 4096))
	}
	snapshot := func(name string, data []byte) string {
		img := filepath.Join(dir, name+".img")
		if err := os.WriteFile(img, data, 0o600); err != nil {
			t.Fatal(err)
		}
		p, _, err := v.Snapshot(ctx, vault.SnapshotOptions{Machine: "web", Disks: []vault.DiskSource{{Name: "root", Path: img}}})
		if err != nil {
			t.Fatal(err)
		}
		return p.ID
	}
	pa, pb := snapshot("a", a), snapshot("b", b)
	same := func(what, path string, want []byte) {
		t.Helper()
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s differs from its point's image", what)
		}
	}
	standby := h.standbyPath("web", "root")

	if _, err := h.UpdateStandby(ctx, "web", "root", pa); err != nil {
		t.Fatal(err)
	}
	res, err := h.UpdateStandby(ctx, "web", "root", pb)
	if err != nil {
		t.Fatal(err)
	}
	same("standby refreshed to b", standby, b)
	if res.BytesCompared != 0 || res.BytesWritten != 4*chunk {
		t.Fatalf("refresh a→b compared %d bytes and wrote %d: want 0 and the 4 changed chunks (%d)", res.BytesCompared, res.BytesWritten, 4*chunk)
	}

	target := filepath.Join(dir, "disks", "web-root.img")
	res, err = h.PrepareDisk(ctx, DiskRequest{Machine: "web", Disk: "root", Point: pa, Target: target})
	if err != nil {
		t.Fatal(err)
	}
	same("disk of a from the standby of b", target, a)
	same("standby after a clone was changed", standby, b)
	if res.Method != "standby-clone" || res.BytesCompared != 0 || res.BytesWritten != 4*chunk {
		t.Fatalf("prepare a from standby b: %s, compared %d, wrote %d: want standby-clone, 0, %d", res.Method, res.BytesCompared, res.BytesWritten, 4*chunk)
	}

	// A disk that exists without a record of what it holds (a machine may
	// have written it) is compared in full, as before.
	if err := os.Remove(doneFile(target)); err != nil {
		t.Fatal(err)
	}
	res, err = h.PrepareDisk(ctx, DiskRequest{Machine: "web", Disk: "root", Point: pb, Target: target})
	if err != nil {
		t.Fatal(err)
	}
	same("disk of b in place", target, b)
	if res.Method != "in-place" || res.BytesCompared == 0 {
		t.Fatalf("in place onto an unknown disk: %s, compared %d: want in-place with the disk compared", res.Method, res.BytesCompared)
	}
}
