package vault

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestRestoreFromBase: applying a point onto a target known to hold another
// point (Base) writes exactly the chunks whose IDs differ between the two
// manifests, reads nothing of the target, and leaves it byte-identical to a
// full restore of the point, whether the disk grows, shrinks or keeps its size.
func TestRestoreFromBase(t *testing.T) {
	ctx := context.Background()
	v, _ := testVault(t)
	dir := t.TempDir()
	const mib = 1 << 20
	imgs := map[string][]segment{
		"a": {{"random", 3 * mib}, {"hole", 2 * mib}, {"text", 3 * mib}},
		// a with scattered changes: other random bytes in part of the
		// first megabyte, data where a had a hole, a hole where a had text
		"b": {{"random", 3 * mib}, {"text", 1 * mib}, {"hole", mib}, {"hole", 1 * mib}, {"text", 2 * mib}},
		// larger, ending inside a chunk
		"c": {{"random", 3 * mib}, {"hole", 2 * mib}, {"text", 5*mib + 12345}},
	}
	points := map[string]*Point{}
	for _, name := range []string{"a", "b", "c"} {
		img := filepath.Join(dir, name+".img")
		seed := uint64(1)
		if name == "b" {
			seed = 2 // the first random megabytes differ too
		}
		writeImage(t, img, seed, imgs[name]...)
		if name == "b" { // only a little of the random part changes
			a, _ := os.ReadFile(filepath.Join(dir, "a.img"))
			f, err := os.OpenFile(img, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(a[64<<10:3*mib], 64<<10); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
		points[name], _ = snap(t, v, "web", DiskSource{Name: "root", Path: img})
	}
	for _, tc := range []struct{ from, to string }{{"a", "b"}, {"b", "a"}, {"a", "c"}, {"c", "a"}, {"b", "b"}} {
		t.Run(tc.from+"-to-"+tc.to, func(t *testing.T) {
			from, to := points[tc.from], points[tc.to]
			target := filepath.Join(t.TempDir(), "disk.img")
			restore(t, v, "web", from.ID, "root", target)
			full := filepath.Join(t.TempDir(), "full.img")
			restore(t, v, "web", to.ID, "root", full)

			st, err := v.Restore(ctx, RestoreOptions{Machine: "web", Point: to.ID, Disk: "root", Target: target, Base: from.ID})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := sha(t, target), sha(t, full); got != want {
				t.Fatalf("restore onto base %s: sha256 %s, full restore of %s has %s", tc.from, got, tc.to, want)
			}
			if fileSize(t, target) != fileSize(t, full) {
				t.Fatalf("size %d, full restore %d", fileSize(t, target), fileSize(t, full))
			}
			if !st.FromBase || st.BytesCompared != 0 {
				t.Fatalf("from base %v, %d bytes of the target compared: want the manifests compared, not the target", st.FromBase, st.BytesCompared)
			}
			if want := differingChunks(t, v, from, to); st.ChunksWritten != want {
				t.Fatalf("%d chunks written, the manifests differ in %d", st.ChunksWritten, want)
			}
			if tc.from == tc.to && (st.ChunksWritten != 0 || st.BytesFetched != 0) {
				t.Fatalf("same point: %d chunks written, %d bytes fetched", st.ChunksWritten, st.BytesFetched)
			}
		})
	}
}

// differingChunks counts the chunks of to that a target holding from lacks,
// straight from the two ID lists: chunk i of to is needed unless from has
// the same ID there, or to's chunk is zeros beyond from's end.
func differingChunks(t *testing.T, v *Vault, from, to *Point) int64 {
	t.Helper()
	ctx := context.Background()
	a, err := v.DiskChunkIDs(ctx, from, "root")
	if err != nil {
		t.Fatal(err)
	}
	b, err := v.DiskChunkIDs(ctx, to, "root")
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for i, id := range b {
		if (i < len(a) && a[i] != id) || (i >= len(a) && !id.IsZero()) {
			n++
		}
	}
	return n
}

// TestRestoreBaseFallsBack: when the target's size is not the base disk's,
// the base cannot stand for it and the target is compared as before.
func TestRestoreBaseFallsBack(t *testing.T) {
	v, _ := testVault(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "a.img")
	writeImage(t, img, 3, segment{"random", 1 << 20}, segment{"text", 1 << 20})
	p, _ := snap(t, v, "web", DiskSource{Name: "root", Path: img})
	target := filepath.Join(dir, "disk.img")
	writeImage(t, target, 4, segment{"text", 3 << 20}) // another size: not the base's disk
	st, err := v.Restore(context.Background(), RestoreOptions{Machine: "web", Point: p.ID, Disk: "root", Target: target, Base: p.ID})
	if err != nil {
		t.Fatal(err)
	}
	if st.FromBase || st.BytesCompared == 0 {
		t.Fatalf("from base %v, %d bytes compared: want the target compared", st.FromBase, st.BytesCompared)
	}
	if sha(t, target) != sha(t, img) {
		t.Fatal("restored target differs from the image")
	}
	if _, err := v.Restore(context.Background(), RestoreOptions{Machine: "web", Point: p.ID, Disk: "root", Target: target, Base: "nosuchpoint"}); err == nil {
		t.Fatal("an unknown base point was accepted")
	}
}
