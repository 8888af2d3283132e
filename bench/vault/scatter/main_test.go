package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestScatterDeterministic: the same seed changes the same blocks the same
// way, and exactly the requested share of 4 KiB blocks is overwritten.
func TestScatterDeterministic(t *testing.T) {
	dir := t.TempDir()
	var images [2][]byte
	for i := range images {
		p := filepath.Join(dir, "img"+string(rune('a'+i)))
		if err := os.WriteFile(p, make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		n, err := scatterFile(p, 7, 10)
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(26 * blockSize); n != want { // 10 % of 256 blocks
			t.Fatalf("wrote %d bytes, want %d", n, want)
		}
		images[i], _ = os.ReadFile(p)
	}
	if !bytes.Equal(images[0], images[1]) {
		t.Fatal("same seed gave different images")
	}
	changed := 0
	zero := make([]byte, blockSize)
	for off := 0; off < len(images[0]); off += blockSize {
		if !bytes.Equal(images[0][off:off+blockSize], zero) {
			changed++
		}
	}
	if changed != 26 {
		t.Fatalf("%d blocks changed, want 26", changed)
	}
}
