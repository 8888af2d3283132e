package nocloud

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/haven-dr/haven/internal/testenv"
)

// TestImageReadable writes a seed and reads it back with xorriso, a
// reader independent of the writer, by its Rock Ridge names; the volume
// label is read from the primary volume descriptor (go-diskfs pads it with
// NULs, not spaces; blkid and so cloud-init read it either way).
func TestImageReadable(t *testing.T) {
	xorriso := testenv.LookPath(t, "xorriso")
	dir := t.TempDir()
	docs := map[string][]byte{MetaData: []byte("instance-id: i-1\nlocal-hostname: web\n"),
		UserData: []byte(userData), NetworkConfig: bytes.Repeat([]byte("version: 2\n"), 500)}
	img := filepath.Join(dir, "seed.iso")
	if err := WriteImage(img, docs); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	const pvd = 16 * 2048 // primary volume descriptor; its volume id at +40
	if len(b) < pvd+72 || b[pvd] != 1 || string(b[pvd+1:pvd+6]) != "CD001" {
		t.Fatalf("no primary volume descriptor")
	}
	if id := string(bytes.TrimRight(b[pvd+40:pvd+72], " \x00")); id != Label {
		t.Fatalf("volume id %q", id)
	}
	out := filepath.Join(dir, "out")
	if o, err := exec.Command(xorriso, "-osirrox", "on", "-indev", img, "-extract", "/", out).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, o)
	}
	ents, _ := os.ReadDir(out)
	if len(ents) != len(docs) {
		t.Fatalf("image holds %d files, want %d", len(ents), len(docs))
	}
	for name, want := range docs {
		got, err := os.ReadFile(filepath.Join(out, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %v: got %d bytes, want %d", name, err, len(got), len(want))
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".cidata-*")); len(left) != 0 {
		t.Fatalf("work files left: %v", left)
	}
}
