package fileblob

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob"
)

func TestSweepPartial(t *testing.T) {
	dir := t.TempDir()
	b, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b.Put(ctx, "data/ab/obj", []byte("kept"))
	old := filepath.Join(dir, "data", "ab", tmpPrefix+"dead")
	young := filepath.Join(dir, "data", "ab", tmpPrefix+"alive")
	os.WriteFile(old, []byte("debris"), 0o644)
	os.WriteFile(young, []byte("in flight"), 0o644)
	past := time.Now().Add(-time.Hour)
	os.Chtimes(old, past, past)

	wrapped := blob.Wrap(b, blob.DefaultLimits()) // found through the wrappers
	n, bytes, err := blob.SweepPartial(ctx, wrapped, 10*time.Minute)
	if err != nil || n != 1 || bytes != int64(len("debris")) {
		t.Fatalf("swept %d files, %d bytes, %v; want the one old file", n, bytes, err)
	}
	if _, err := os.Stat(young); err != nil {
		t.Fatal("swept a young temporary file")
	}
	if _, err := b.Get(ctx, "data/ab/obj", 0, -1); err != nil {
		t.Fatal("swept an object")
	}
}
