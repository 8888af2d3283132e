package vault

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/blob"
)

// TestEveryFlippedByteIsDetected flips single bytes in every stored object in
// turn: check --read-data must name the object, and restore must either fail
// or produce the exact original, never something else.
func TestEveryFlippedByteIsDetected(t *testing.T) {
	ctx := context.Background()
	v, be := testVault(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	writeImage(t, img, 9, segment{"random", 200 << 10}, segment{"hole", 1 << 20}, segment{"text", 300<<10 + 5})
	snap(t, v, "web", DiskSource{Name: "root", Path: img})
	want := sha(t, img)
	writeImage(t, img, 10, segment{"text", 64 << 10})
	snap(t, v, "web", DiskSource{Name: "root", Path: img})
	want2 := sha(t, img)

	var names []string
	be.List(ctx, "", func(fi blob.Info) error { names = append(names, fi.Name); return nil })
	if len(names) < 7 { // config, key, 2 indexes, 2 points, packs
		t.Fatalf("only %d objects to damage: %v", len(names), names)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, name := range names {
		orig, _ := be.Get(ctx, name, 0, -1)
		for _, pos := range []int{0, len(orig) - 1, rng.IntN(len(orig)), rng.IntN(len(orig))} {
			bad := append([]byte(nil), orig...)
			bad[pos] ^= byte(1 + rng.IntN(255))
			be.Put(ctx, name, bad)
			err := checkAll(ctx, be)
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Errorf("%s: flipped byte %d not reported by check: %v", name, pos, err)
			}
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrMissing) {
				t.Errorf("%s: check error is not ErrCorrupt: %v", name, err)
			}
			restoreMustNotLie(t, be, dir, map[string]string{"": want, "latest": want2})
		}
		be.Put(ctx, name, orig)
	}
	if err := checkAll(ctx, be); err != nil {
		t.Fatalf("after repair: %v", err)
	}
}

func checkAll(ctx context.Context, be blob.Backend) error {
	v, err := Open(ctx, be, "secret", fastKDF)
	if err != nil {
		return err
	}
	defer v.Close()
	rep, err := v.Check(ctx, CheckOptions{ReadData: true})
	if err != nil {
		return err
	}
	return rep.Err()
}

// restoreMustNotLie restores both points; each must fail or be bit-exact.
func restoreMustNotLie(t *testing.T, be blob.Backend, dir string, want map[string]string) {
	t.Helper()
	ctx := context.Background()
	v, err := Open(ctx, be, "secret", fastKDF)
	if err != nil {
		return // refusing to open is a failure, not a lie
	}
	defer v.Close()
	points, err := v.Points(ctx, "web")
	if err != nil || len(points) != 2 {
		return
	}
	for i, p := range points {
		out := filepath.Join(dir, "out.img")
		os.Remove(out)
		_, err := v.Restore(ctx, RestoreOptions{Machine: "web", Point: p.ID, Disk: "root", Target: out})
		if err != nil {
			if _, serr := os.Stat(out); serr == nil {
				t.Errorf("failed restore left %s behind", out)
			}
			continue
		}
		key := []string{"", "latest"}[i]
		if got := sha(t, out); got != want[key] {
			t.Fatalf("restore of a damaged vault silently produced wrong data for point %d", i)
		}
	}
}

func TestMissingAndTruncatedObjects(t *testing.T) {
	ctx := context.Background()
	v, be := testVault(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	writeImage(t, img, 11, segment{"random", 1 << 20})
	snap(t, v, "db", DiskSource{Name: "data", Path: img})
	var pack string
	be.List(ctx, "data/", func(fi blob.Info) error { pack = fi.Name; return nil })
	orig, _ := be.Get(ctx, pack, 0, -1)

	be.Put(ctx, pack, orig[:len(orig)/2])
	out := filepath.Join(dir, "out.img")
	if _, err := v.Restore(ctx, RestoreOptions{Machine: "db", Disk: "data", Target: out}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), pack) {
		t.Fatalf("truncated pack: restore error %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("failed restore wrote its target")
	}
	be.Delete(ctx, pack)
	if _, err := v.Restore(ctx, RestoreOptions{Machine: "db", Disk: "data", Target: out}); !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), pack) {
		t.Fatalf("missing pack: restore error %v", err)
	}
	rep, err := v.Check(ctx, CheckOptions{})
	if err != nil || !errors.Is(rep.Err(), ErrMissing) {
		t.Fatalf("missing pack: check says %v / %v", err, rep.Err())
	}
}
