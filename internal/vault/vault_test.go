package vault

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRoundTripBitExact(t *testing.T) {
	cs := int64(DefaultChunkSize)
	cases := map[string][]segment{
		"empty":         nil,
		"tiny":          {{"text", 100}},
		"holes":         {{"random", 3 * cs}, {"hole", 5 << 20}, {"random", cs + 7}},
		"zeros-written": {{"zero", 2 << 20}, {"text", 12345}, {"zero", cs}},
		"random":        {{"random", 3<<20 + 11}},
		"compressible":  {{"text", 4<<20 - 1}},
		"mixed-odd":     {{"hole", cs / 2}, {"text", cs}, {"random", 3*cs + 1}, {"zero", cs}, {"hole", 1 << 20}, {"text", 1}},
	}
	v, _ := testVault(t)
	dir := t.TempDir()
	for name, segs := range cases {
		t.Run(name, func(t *testing.T) {
			src := filepath.Join(dir, name+".img")
			writeImage(t, src, uint64(len(name)), segs...)
			snap(t, v, "m-"+name, DiskSource{Name: "root", Path: src})
			dst := filepath.Join(dir, name+".restored")
			st := restore(t, v, "m-"+name, "latest", "root", dst)
			if got, want := sha(t, dst), sha(t, src); got != want {
				t.Fatalf("restored image differs: sha256 %s, want %s", got, want)
			}
			if st.Existing {
				t.Fatal("new target reported as existing")
			}
		})
	}
}

func TestRestoreIsSparse(t *testing.T) {
	v, _ := testVault(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "disk.img")
	writeImage(t, src, 1, segment{"text", 1 << 20}, segment{"hole", 64 << 20}, segment{"zero", 8 << 20}, segment{"text", 1 << 20})
	snap(t, v, "web", DiskSource{Name: "root", Path: src})
	dst := filepath.Join(dir, "out.img")
	restore(t, v, "web", "", "root", dst)
	var st syscallStat
	if err := statBlocks(dst, &st); err != nil {
		t.Fatal(err)
	}
	if st.allocated > 8<<20 {
		t.Fatalf("restored image allocates %d bytes for 2 MiB of data: not sparse", st.allocated)
	}
}

func TestIncrementalAndInPlaceRestore(t *testing.T) {
	v, _ := testVault(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "disk.img")
	writeImage(t, src, 2, segment{"random", 8 << 20}, segment{"text", 8 << 20})
	p1, st1 := snap(t, v, "db", DiskSource{Name: "data", Path: src})
	// Change 3 scattered 4 KiB blocks.
	f, _ := os.OpenFile(src, os.O_RDWR, 0)
	for _, off := range []int64{4096, 5 << 20, 12<<20 + 8192} {
		f.WriteAt([]byte(strings.Repeat("X", 4096)), off)
	}
	f.Close()
	_, st2 := snap(t, v, "db", DiskSource{Name: "data", Path: src})
	if st2.NewChunks != 3 {
		t.Fatalf("second snapshot stored %d new chunks, want 3", st2.NewChunks)
	}
	if st2.StoredBytes >= st1.StoredBytes/10 {
		t.Fatalf("incremental stored %d bytes, first %d: not incremental", st2.StoredBytes, st1.StoredBytes)
	}
	// Restore the old point onto the changed image: only 3 chunks differ.
	st := restore(t, v, "db", p1.ID, "data", src)
	if !st.Existing || st.ChunksWritten != 3 || st.BytesWritten != 3*DefaultChunkSize {
		t.Fatalf("in-place restore wrote %d chunks / %d bytes, want 3 / %d", st.ChunksWritten, st.BytesWritten, 3*DefaultChunkSize)
	}
	fresh := filepath.Join(dir, "fresh.img")
	restore(t, v, "db", p1.ID, "data", fresh)
	if sha(t, fresh) != sha(t, src) {
		t.Fatal("in-place restore is not bit-exact")
	}
	// Restoring the same point again writes nothing.
	if st := restore(t, v, "db", p1.ID, "data", src); st.BytesWritten != 0 {
		t.Fatalf("restore onto identical image wrote %d bytes", st.BytesWritten)
	}
}

func TestInPlaceRestoreShrinksAndZeroes(t *testing.T) {
	v, _ := testVault(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "a.img")
	writeImage(t, src, 3, segment{"text", 1 << 20}, segment{"zero", 1 << 20})
	snap(t, v, "m", DiskSource{Name: "d", Path: src})
	other := filepath.Join(dir, "b.img")
	writeImage(t, other, 4, segment{"random", 3 << 20})
	restore(t, v, "m", "latest", "d", other)
	if sha(t, other) != sha(t, src) {
		t.Fatal("restore onto a larger, different image is not bit-exact")
	}
}

func TestDedupAcrossMachines(t *testing.T) {
	v, _ := testVault(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.img"), filepath.Join(dir, "b.img")
	writeImage(t, a, 5, segment{"random", 4 << 20})
	writeImage(t, b, 5, segment{"random", 4 << 20})
	snap(t, v, "web1", DiskSource{Name: "root", Path: a})
	_, st := snap(t, v, "web2", DiskSource{Name: "root", Path: b})
	if st.NewChunks != 0 {
		t.Fatalf("identical disk of another machine stored %d new chunks", st.NewChunks)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	v, be := testVault(t)
	_ = v
	if _, err := Open(ctx, be, "wrong", fastKDF); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("wrong password: got %v", err)
	}
	if _, err := Open(ctx, newBackend(t), "secret", fastKDF); !errors.Is(err, ErrNoVault) {
		t.Fatalf("empty location: got %v", err)
	}
	if _, err := Init(ctx, be, "again", fastKDF); !errors.Is(err, ErrVaultExists) {
		t.Fatalf("init twice: got %v", err)
	}
	cfg, _ := be.Get(ctx, configName, 0, -1)
	be.Put(ctx, configName, []byte(strings.Replace(string(cfg), `"version":2`, `"version":7`, 1)))
	if _, err := Open(ctx, be, "secret", fastKDF); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("future version: got %v", err)
	}
}

func TestKeys(t *testing.T) {
	ctx := context.Background()
	v, be := testVault(t)
	id2, err := v.AddKey(ctx, "second")
	if err != nil {
		t.Fatal(err)
	}
	v2, err := Open(ctx, be, "second", fastKDF)
	if err != nil {
		t.Fatalf("open with added key: %v", err)
	}
	keys, _ := v2.Keys(ctx)
	if len(keys) != 2 {
		t.Fatalf("%d keys, want 2", len(keys))
	}
	if err := v2.RemoveKey(ctx, id2); err == nil {
		t.Fatal("removed the key in use")
	}
	if err := v.RemoveKey(ctx, id2); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, be, "second", fastKDF); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("removed key still opens: %v", err)
	}
}

// TestManifestGrowsWithChangeNotSize: a point of a large disk that changed
// in one place stores one chunk and one page, not a new full chunk list.
func TestManifestGrowsWithChangeNotSize(t *testing.T) {
	ctx := context.Background()
	v, _ := testVault(t)
	src := filepath.Join(t.TempDir(), "big.img")
	writeImage(t, src, 40, segment{"text", 64 << 20}, segment{"hole", 960 << 20}) // 1 GiB, 64 pages
	snap(t, v, "big", DiskSource{Name: "root", Path: src})
	pagesBefore := countBlobs(t, v, pageBlob)
	f, _ := os.OpenFile(src, os.O_RDWR, 0)
	f.WriteAt([]byte("one changed block"), 33<<20)
	f.Close()
	snap(t, v, "big", DiskSource{Name: "root", Path: src})
	if added := countBlobs(t, v, pageBlob) - pagesBefore; added != 1 {
		t.Fatalf("one changed chunk added %d pages, want 1", added)
	}
	p, _ := v.FindPoint(ctx, "big", "latest")
	if n := len(p.Disks[0].Pages); n != 64 {
		t.Fatalf("manifest lists %d pages, want 64", n)
	}
}

func countBlobs(t *testing.T, v *Vault, typ blobType) int {
	t.Helper()
	idx, err := v.loadIndex(context.Background(), forRead)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range idx.blobs {
		if l.Type == typ {
			n++
		}
	}
	return n
}
