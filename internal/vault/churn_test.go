package vault

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// patch overwrites n bytes at off with a segment of kind.
func patch(t *testing.T, img string, off int64, kind string, n int64, seed uint64) {
	t.Helper()
	tmp := filepath.Join(t.TempDir(), "seg")
	writeImage(t, tmp, seed, segment{kind, n})
	b, err := os.ReadFile(tmp)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestChurnFigures takes two points of an image, the second with the first
// one's chunk IDs as Previous, after overwriting text with random bytes
// (what encryption does), filling a hole with random bytes (a compressed
// file copied into free space) and rewriting text with other text (a
// database update), and checks each figure the manifest records.
func TestChurnFigures(t *testing.T) {
	v, _ := testVault(t)
	ctx := context.Background()
	img := filepath.Join(t.TempDir(), "disk.img")
	const mb = 1 << 20
	writeImage(t, img, 1, segment{"text", 4 * mb}, segment{"hole", 2 * mb}, segment{"text", 2 * mb})
	src := []DiskSource{{Name: "d", Path: img}}
	first, err := v.SnapshotKnown(ctx, SnapshotOptions{Machine: "m", Disks: src}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := first.Point.Disks[0].Churn; c == nil || c.Baseline || c.Read != 8*mb || c.Incompressible != 0 || c.New == 0 {
		t.Fatalf("first point churn %+v: want no baseline, 8 MiB read, new compressible data", c)
	}
	// 1 MiB of text encrypted in place, 1 MiB of the hole filled with
	// random data, 1 MiB of text replaced by other text.
	patch(t, img, 0, "random", mb, 2)
	patch(t, img, 5*mb, "random", mb, 3)
	patch(t, img, 7*mb, "text", mb, 4)
	second, err := v.SnapshotKnown(ctx, SnapshotOptions{Machine: "m", Disks: src, Previous: first.IDs}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := *second.Point.Disks[0].Churn
	want := Churn{Baseline: true, Read: 8 * mb, Changed: 3 * mb, Overwritten: 2 * mb, New: 3 * mb,
		Incompressible: 2 * mb, OverwrittenIncompressible: mb, OverwrittenRandom: mb, NewRandom: 2 * mb}
	got.NewStored = 0
	if got != want {
		t.Fatalf("churn %+v, want %+v", got, want)
	}
	if s := second.Point.Disks[0].Churn.NewStored; s < 2*mb || s > 2*mb+mb/2 {
		t.Errorf("new data stored as %d bytes: want the 2 MiB of random data plus the compressed text", s)
	}
	// The figures are part of the sealed manifest.
	back, err := v.FindPoint(ctx, "m", second.Point.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c := back.Disks[0].Churn; c == nil || *c != *second.Point.Disks[0].Churn {
		t.Fatalf("manifest churn %+v, want %+v", c, second.Point.Disks[0].Churn)
	}
	// Discarding data (a punched hole) counts as zeroed, not as new data.
	patch(t, img, 0, "zero", mb, 5)
	third, err := v.SnapshotKnown(ctx, SnapshotOptions{Machine: "m", Disks: src, Previous: second.IDs}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := third.Point.Disks[0].Churn; c.Zeroed != mb || c.Changed != mb || c.New != 0 || c.OverwrittenIncompressible != 0 {
		t.Fatalf("zeroed churn %+v", c)
	}
	// Small files encrypted in place: one 4 KiB block in each of eight
	// chunks of text. Each chunk still compresses as a whole, so only the
	// random-block figure sees them.
	for k := range int64(8) {
		patch(t, img, 2*mb+k*64<<10, "random", 4<<10, 6+uint64(k))
	}
	fourth, err := v.SnapshotKnown(ctx, SnapshotOptions{Machine: "m", Disks: src, Previous: third.IDs}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := fourth.Point.Disks[0].Churn; c.Overwritten != int64(8*v.cfg.ChunkSize) || c.OverwrittenIncompressible != 0 || c.OverwrittenRandom != 8*4<<10 || c.NewRandom != 8*4<<10 {
		t.Fatalf("churn after small encrypted files %+v: want 8 chunks overwritten, none incompressible, 32 KiB random", c)
	}
	// Ciphertext over written zeros (a database's preallocated log): not
	// an overwrite, but random blocks new to the vault.
	patch(t, img, 3*mb, "zero", mb, 14)
	fifth, err := v.SnapshotKnown(ctx, SnapshotOptions{Machine: "m", Disks: src, Previous: fourth.IDs}, nil)
	if err != nil {
		t.Fatal(err)
	}
	patch(t, img, 3*mb, "random", 64<<10, 15)
	sixth, err := v.SnapshotKnown(ctx, SnapshotOptions{Machine: "m", Disks: src, Previous: fifth.IDs}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := sixth.Point.Disks[0].Churn; c.Overwritten != 0 || c.OverwrittenRandom != 0 || c.NewRandom != 64<<10 || c.Changed != 64<<10 {
		t.Fatalf("churn after ciphertext over zeros %+v: want nothing overwritten, 64 KiB of new random blocks", c)
	}
}
