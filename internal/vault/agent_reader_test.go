package vault

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// countingReader counts the bytes read through it.
type countingReader struct {
	r *bytes.Reader
	n atomic.Int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

// A disk given as a reader (not a file) snapshots and restores exactly,
// and hinted chunks, zero ones included, are not read.
func TestSnapshotFromReader(t *testing.T) {
	v, _ := testVault(t)
	ctx := context.Background()
	cs := int64(v.cfg.ChunkSize)
	data := make([]byte, 40*cs+100) // a partial last chunk too
	rand.Read(data)
	clear(data[10*cs : 20*cs])
	r := &countingReader{r: bytes.NewReader(data)}
	opt := SnapshotOptions{Machine: "m", Disks: []DiskSource{{Name: "d", Reader: r, Size: int64(len(data))}}}
	first, err := v.SnapshotKnown(ctx, opt, map[string]KnownFunc{"d": func(i int64) (ID, bool) {
		return ID{}, i >= 10 && i < 20 // known zero
	}})
	if err != nil {
		t.Fatal(err)
	}
	if r.n.Load() != int64(len(data))-10*cs {
		t.Fatalf("read %d bytes, want %d", r.n.Load(), int64(len(data))-10*cs)
	}
	rand.Read(data[30*cs : 31*cs])
	r.n.Store(0)
	ids := first.IDs["d"]
	_, err = v.SnapshotKnown(ctx, opt, map[string]KnownFunc{"d": func(i int64) (ID, bool) {
		return ids[i], i != 30 && i < 40
	}})
	if err != nil {
		t.Fatal(err)
	}
	if r.n.Load() != cs+100 {
		t.Fatalf("second read %d bytes, want %d", r.n.Load(), cs+100)
	}
	out := filepath.Join(t.TempDir(), "out")
	if _, err := v.Restore(ctx, RestoreOptions{Machine: "m", Disk: "d", Target: out}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("restore differs")
	}
}
