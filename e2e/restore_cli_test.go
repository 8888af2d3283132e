package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRestoreNoSuchExitsTen: a missing machine, point or disk exits 10, as
// the README's exit code table says, and writes nothing.
func TestRestoreNoSuchExitsTen(t *testing.T) {
	dir := t.TempDir()
	env := []string{"HAVEN_VAULT=" + filepath.Join(dir, "vault"), "HAVEN_PASSWORD=pw"}
	mustHaven(t, env, "vault", "init")
	img := filepath.Join(dir, "disk.img")
	os.WriteFile(img, []byte(strings.Repeat("web disk ", 100000)), 0o644)
	mustHaven(t, env, "snapshot", "--machine", "web", "--disk", "root="+img)
	out := filepath.Join(dir, "out.img")
	for name, c := range map[string]struct{ msg, machine, point, disk string }{
		"machine":    {"no recovery points", "db", "latest", "root"},
		"point":      {"no point", "web", "19990101", "root"},
		"disk":       {`no disk "swap"`, "web", "latest", "swap"},
		"latest-app": {`no point matching "latest-app"`, "web", "latest-app", "root"},
	} {
		r := haven(t, env, "restore", "--machine", c.machine, "--point", c.point, "--disk", c.disk, "--to", out)
		if r.code != 10 || !strings.Contains(r.stderr, c.msg) {
			t.Errorf("no such %s: exit %d, stderr %q; want exit 10 and %q", name, r.code, r.stderr, c.msg)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Fatalf("no such %s: restore wrote %s", name, out)
		}
	}
}

type restoreStats struct {
	Existing      bool  `json:"existing"`
	DryRun        bool  `json:"dry_run"`
	BytesWritten  int64 `json:"bytes_written"`
	ChunksWritten int64 `json:"chunks_written"`
	Size          int64 `json:"size"`
	TargetSize    int64 `json:"target_size"`
}

// TestRestoreInPlaceFailsCleanlyAndDryRun: onto an existing image, a dry
// run reports the chunks that differ and writes nothing; with a damaged
// pack the restore exits 7 saying the image is untouched, and it is; once
// the pack is back, the same command completes it.
func TestRestoreInPlaceFailsCleanlyAndDryRun(t *testing.T) {
	dir := t.TempDir()
	vaultDir := filepath.Join(dir, "vault")
	env := []string{"HAVEN_VAULT=" + vaultDir, "HAVEN_PASSWORD=pw"}
	mustHaven(t, env, "vault", "init")
	img := filepath.Join(dir, "disk.img")
	data := []byte(strings.Repeat("sql page ", 400000)) // 3.6 MB: 220 chunks of 16 KiB
	os.WriteFile(img, data, 0o644)
	mustHaven(t, env, "snapshot", "--machine", "sql", "--disk", "data="+img)

	// The failed-back-to image: 3 chunks changed, 1 MB longer.
	tgt := filepath.Join(dir, "old.img")
	changed := append([]byte(nil), data...)
	for _, off := range []int{0, 100 << 14, len(data) - 10} {
		copy(changed[off:], "X")
	}
	os.WriteFile(tgt, append(changed, make([]byte, 1<<20)...), 0o644)
	before := fileSHA(t, tgt)
	args := []string{"restore", "--machine", "sql", "--disk", "data", "--to", tgt}

	var st restoreStats
	json.Unmarshal([]byte(mustHaven(t, env, append(args, "--dry-run", "--json")...)), &st)
	if !st.DryRun || !st.Existing || st.ChunksWritten != 3 || st.Size != int64(len(data)) || st.TargetSize != int64(len(data)+1<<20) {
		t.Fatalf("dry run: %+v; want 3 chunks to write, %d -> %d bytes", st, len(data)+1<<20, len(data))
	}
	if txt := mustHaven(t, env, append(args, "--dry-run")...); !strings.Contains(txt, "would write") {
		t.Fatalf("dry run text: %s", txt)
	}
	if fileSHA(t, tgt) != before {
		t.Fatal("dry run changed the target")
	}

	packs, _ := filepath.Glob(filepath.Join(vaultDir, "data", "*", "*"))
	var orig [][]byte
	for _, p := range packs { // damage every byte of every pack
		b, _ := os.ReadFile(p)
		orig = append(orig, b)
		bad := make([]byte, len(b))
		for i := range b {
			bad[i] = b[i] ^ 0x55
		}
		os.WriteFile(p, bad, 0o644)
	}
	r := haven(t, env, args...)
	if r.code != 7 || !strings.Contains(r.stderr, "target "+tgt+" is untouched") {
		t.Fatalf("restore from damaged packs: exit %d, stderr %q; want 7 and 'untouched'", r.code, r.stderr)
	}
	if fileSHA(t, tgt) != before {
		t.Fatal("failed restore changed the target")
	}
	for i, p := range packs {
		os.WriteFile(p, orig[i], 0o644)
	}
	st = restoreStats{}
	json.Unmarshal([]byte(mustHaven(t, env, append(args, "--json")...)), &st)
	if st.DryRun || st.ChunksWritten != 3 || fileSHA(t, tgt) != fileSHA(t, img) {
		t.Fatalf("rerun: %+v; want 3 chunks written and the image bit-exact", st)
	}
}

// TestSnapshotConsistencyLabels: a plain snapshot is labelled inconsistent
// (nothing kept the disk still), a claimed one crash, and latest-consistent
// tells them apart.
func TestSnapshotConsistencyLabels(t *testing.T) {
	dir := t.TempDir()
	env := []string{"HAVEN_VAULT=" + filepath.Join(dir, "vault"), "HAVEN_PASSWORD=pw"}
	mustHaven(t, env, "vault", "init")
	img := filepath.Join(dir, "disk.img")
	os.WriteFile(img, []byte(strings.Repeat("first ", 100000)), 0o644)
	mustHaven(t, env, "snapshot", "--machine", "web", "--disk", "root="+img, "--consistency", "crash")
	os.WriteFile(img, []byte(strings.Repeat("second ", 100000)), 0o644)
	mustHaven(t, env, "snapshot", "--machine", "web", "--disk", "root="+img)

	var points []struct{ ID, Consistency string }
	json.Unmarshal([]byte(mustHaven(t, env, "vault", "points", "--json")), &points)
	if len(points) != 2 || points[0].Consistency != "crash" || points[1].Consistency != "inconsistent" {
		t.Fatalf("points: %+v; want crash, then inconsistent", points)
	}
	out := filepath.Join(dir, "out.img")
	mustHaven(t, env, "restore", "--machine", "web", "--point", "latest-consistent", "--disk", "root", "--to", out)
	if got, _ := os.ReadFile(out); string(got) != strings.Repeat("first ", 100000) {
		t.Fatal("latest-consistent did not restore the crash-consistent point")
	}
	if r := haven(t, env, "snapshot", "--machine", "web", "--disk", "root="+img, "--consistency", "crash-ish"); r.code != 2 {
		t.Fatalf("bad --consistency: exit %d, want 2 (usage)", r.code)
	}
}
