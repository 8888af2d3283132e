package vault

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// flipInBlob flips one byte inside a data blob of point p's disk, so that
// any restore needing that chunk meets it. It returns an undo func.
func flipInBlob(t *testing.T, v *Vault, p *Point, disk string) func() {
	t.Helper()
	ctx := context.Background()
	ids, err := v.DiskChunkIDs(ctx, p, disk)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := v.loadIndex(ctx, forRead)
	if err != nil {
		t.Fatal(err)
	}
	// The last non-zero chunk: a restore writing in disk order would have
	// changed the target long before reaching it.
	var loc location
	for i := len(ids) - 1; i >= 0; i-- {
		if !ids[i].IsZero() {
			loc, _ = idx.lookup(ids[i])
			break
		}
	}
	name := packName(loc.Pack)
	orig, err := v.be.Get(ctx, name, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), orig...)
	bad[loc.Offset+loc.Length/2] ^= 0x40
	if err := v.be.Put(ctx, name, bad); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := v.be.Put(ctx, name, orig); err != nil {
			t.Fatal(err)
		}
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// dirNames lists a directory, to catch leftover temporary files.
func dirNames(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return strings.Join(names, " ")
}

// TestFailedInPlaceRestoreLeavesTargetUntouched: a corrupt pack is found
// before the first byte of an existing target changes (its size included),
// and once the vault is repaired the same restore completes bit-exact.
func TestFailedInPlaceRestoreLeavesTargetUntouched(t *testing.T) {
	ctx := context.Background()
	v, _ := testVault(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src.img")
	writeImage(t, src, 21, segment{"random", 8 << 20}, segment{"text", 12 << 20})
	p, _ := snap(t, v, "db", DiskSource{Name: "data", Path: src})
	tgt := filepath.Join(dir, "target.img")
	writeImage(t, tgt, 22, segment{"text", 16 << 20}, segment{"random", 16 << 20}) // 32 MiB, all different
	before, beforeSize := sha(t, tgt), fileSize(t, tgt)
	beforeNames := dirNames(t, dir)

	undo := flipInBlob(t, v, p, "data")
	opt := RestoreOptions{Machine: "db", Point: p.ID, Disk: "data", Target: tgt}
	_, err := v.Restore(ctx, opt)
	var re *RestoreError
	if !errors.Is(err, ErrCorrupt) || !errors.As(err, &re) || re.State != TargetUntouched ||
		!strings.Contains(err.Error(), "target "+tgt+" is untouched") {
		t.Fatalf("restore from a corrupt pack: %v; want ErrCorrupt saying the target is untouched", err)
	}
	if got, size := sha(t, tgt), fileSize(t, tgt); got != before || size != beforeSize {
		t.Fatalf("failed restore changed the target: %d bytes (was %d), content changed: %v", size, beforeSize, got != before)
	}
	if names := dirNames(t, dir); names != beforeNames {
		t.Fatalf("failed restore left files behind: %s (was %s)", names, beforeNames)
	}

	undo()
	st, err := v.Restore(ctx, opt)
	if err != nil {
		t.Fatalf("rerun after repair: %v", err)
	}
	if sha(t, tgt) != sha(t, src) || fileSize(t, tgt) != 20<<20 {
		t.Fatal("rerun after repair is not bit-exact")
	}
	if !st.Existing || st.TargetSize != 32<<20 || st.Size != 20<<20 {
		t.Fatalf("stats %+v: want an in-place restore from 32 MiB to 20 MiB", st)
	}
	if names := dirNames(t, dir); names != beforeNames {
		t.Fatalf("restore left files behind: %s (was %s)", names, beforeNames)
	}
}

// expectedDiff counts, independently of the restore code, the chunks (and
// their bytes) in which target differs from src once target is cut or
// zero-extended to src's size.
func expectedDiff(t *testing.T, src, target string) (chunks, bytes_ int64) {
	t.Helper()
	a, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	padded := make([]byte, len(a))
	copy(padded, b)
	cs := DefaultChunkSize
	for off := 0; off < len(a); off += cs {
		end := min(off+cs, len(a))
		if !bytes.Equal(a[off:end], padded[off:end]) {
			chunks++
			bytes_ += int64(end - off)
		}
	}
	return chunks, bytes_
}

// TestDryRunWritesNothing: a dry run reports exactly the chunks a real run
// then writes, onto shorter and longer targets, and changes nothing.
func TestDryRunWritesNothing(t *testing.T) {
	ctx := context.Background()
	v, _ := testVault(t)
	dir := t.TempDir()
	cs := DefaultChunkSize
	src := filepath.Join(dir, "src.img")
	writeImage(t, src, 31, segment{"text", 2<<20 + 100}, segment{"hole", 1 << 20}, segment{"random", 3*int64(cs) + 100})
	snap(t, v, "web", DiskSource{Name: "root", Path: src})
	srcData, _ := os.ReadFile(src)

	for name, edit := range map[string]func([]byte) []byte{
		// Shorter, ending inside a chunk, with changed blocks and a zeroed one.
		"shorter": func(b []byte) []byte {
			copy(b[5*cs:], "changed")
			copy(b[40*cs:], make([]byte, cs))
			return b[:len(b)-2*cs-50]
		},
		"longer": func(b []byte) []byte {
			copy(b[100*cs+7:], "changed too")
			return append(b, bytes.Repeat([]byte("tail"), 100000)...)
		},
		// Ending inside a chunk whose tail is zeros in the point: zero
		// extension alone restores it.
		"cut-in-zeros": func(b []byte) []byte {
			copy(b[3*cs:], "changed")
			return b[:2<<20+200]
		},
		"hole-filled": func(b []byte) []byte {
			copy(b[(2<<20)+10:], "data where the point has a hole")
			return b
		},
	} {
		t.Run(name, func(t *testing.T) {
			tgt := filepath.Join(dir, name+".img")
			if err := os.WriteFile(tgt, edit(append([]byte(nil), srcData...)), 0o644); err != nil {
				t.Fatal(err)
			}
			wantChunks, wantBytes := expectedDiff(t, src, tgt)
			if wantChunks == 0 {
				t.Fatal("test target does not differ")
			}
			before, fi := sha(t, tgt), statOf(t, tgt)
			opt := RestoreOptions{Machine: "web", Disk: "root", Target: tgt, DryRun: true}
			st, err := v.Restore(ctx, opt)
			if err != nil {
				t.Fatal(err)
			}
			if !st.DryRun || !st.Existing || st.ChunksWritten != wantChunks || st.BytesWritten != wantBytes {
				t.Fatalf("dry run: %+v; want %d chunks, %d bytes", st, wantChunks, wantBytes)
			}
			if sha(t, tgt) != before || !statOf(t, tgt).ModTime().Equal(fi.ModTime()) || statOf(t, tgt).Size() != fi.Size() {
				t.Fatal("dry run changed the target")
			}
			opt.DryRun = false
			real, err := v.Restore(ctx, opt)
			if err != nil {
				t.Fatal(err)
			}
			if real.ChunksWritten != wantChunks || sha(t, tgt) != sha(t, src) {
				t.Fatalf("real run wrote %d chunks (dry run said %d) or is not bit-exact", real.ChunksWritten, wantChunks)
			}
		})
	}

	// A dry run to a new file creates nothing.
	out := filepath.Join(dir, "new.img")
	st, err := v.Restore(ctx, RestoreOptions{Machine: "web", Disk: "root", Target: out, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("dry run created %s", out)
	}
	wantChunks, wantBytes := expectedDiff(t, src, os.DevNull)
	if st.Existing || st.ChunksWritten != wantChunks || st.BytesWritten != wantBytes || st.BytesFetched == 0 {
		t.Fatalf("dry run to a new file: %+v; want %d chunks, %d bytes", st, wantChunks, wantBytes)
	}
}

func statOf(t *testing.T, path string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}
