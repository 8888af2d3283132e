package vault

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rewriteVaultData replaces every pack and index object of v with one pack
// holding the same blobs, passing each plaintext through edit first. Each
// blob is sealed properly under its ID, so only a reader that recomputes
// the keyed hash can tell that edit changed its content.
func rewriteVaultData(t *testing.T, v *Vault, edit func(e blobEntry, plain []byte) []byte) {
	t.Helper()
	ctx := context.Background()
	idx, err := v.loadIndex(ctx, forRead)
	if err != nil {
		t.Fatal(err)
	}
	pb := newPackBuf(64 << 20)
	for pack, entries := range idx.packs {
		name := packName(pack)
		data, err := v.be.Get(ctx, name, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			plain, err := v.openBlob(name, e, append([]byte(nil), data[e.Offset:e.Offset+e.Length]...))
			if err != nil {
				t.Fatal(err)
			}
			plain = edit(e, plain)
			dst := pb.reserve(e.Type, e.ID, 0, len(plain)+overhead, len(plain))
			sealTo(v.key.Enc, dst, plain, blobAAD(e.Type, e.ID))
			pb.pending.Done()
		}
		if err := v.be.Delete(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range idx.files {
		if err := v.be.Delete(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	id, data := v.finishPack(pb)
	if err := v.be.Put(ctx, packName(id), data); err != nil {
		t.Fatal(err)
	}
	if _, err := v.saveIndex(ctx, map[ID][]blobEntry{id: pb.entries}); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreVerifiesChunkIDs: a blob that authenticates and decompresses
// fine but whose content is not what its ID says is refused, by a restore
// to a new file and by one in place.
func TestRestoreVerifiesChunkIDs(t *testing.T) {
	ctx := context.Background()
	v, _ := testVault(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src.img")
	writeImage(t, src, 41, segment{"text", 1 << 20}, segment{"random", 1 << 20})
	p, _ := snap(t, v, "web", DiskSource{Name: "root", Path: src})
	ids, err := v.DiskChunkIDs(ctx, p, "root")
	if err != nil {
		t.Fatal(err)
	}
	victim := ids[70] // inside the random half
	rewriteVaultData(t, v, func(e blobEntry, plain []byte) []byte {
		if e.ID == victim {
			plain[100] ^= 1 // same length, other content
		}
		return plain
	})
	if err := checkAll(ctx, v.be); err == nil || !strings.Contains(err.Error(), victim.String()) {
		t.Fatalf("check does not see the forged blob: %v", err)
	}

	out := filepath.Join(dir, "out.img")
	_, err = v.Restore(ctx, RestoreOptions{Machine: "web", Disk: "root", Target: out})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), victim.String()+": content does not match its ID") {
		t.Fatalf("restore to a new file: %v; want ErrCorrupt naming blob %s", err, victim)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatal("failed restore created its target")
	}

	tgt := filepath.Join(dir, "target.img")
	writeImage(t, tgt, 42, segment{"random", 2 << 20})
	before := sha(t, tgt)
	_, err = v.Restore(ctx, RestoreOptions{Machine: "web", Disk: "root", Target: tgt})
	var re *RestoreError
	if !errors.Is(err, ErrCorrupt) || !errors.As(err, &re) || re.State != TargetUntouched {
		t.Fatalf("restore in place: %v; want ErrCorrupt with the target untouched", err)
	}
	if sha(t, tgt) != before {
		t.Fatal("failed in-place restore changed the target")
	}
}
