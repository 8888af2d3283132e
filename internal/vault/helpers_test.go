package vault

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/fileblob"
)

var fastKDF = Options{KDF: TestKDF}

func newBackend(t *testing.T) blob.Backend {
	t.Helper()
	be, err := fileblob.New(filepath.Join(t.TempDir(), "vault"))
	if err != nil {
		t.Fatal(err)
	}
	return be
}

func testVault(t *testing.T) (*Vault, blob.Backend) { return testVaultF(t) }

func testVaultF(t testing.TB) (*Vault, blob.Backend) {
	t.Helper()
	be, err := fileblob.New(filepath.Join(t.TempDir(), "vault"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := Init(context.Background(), be, "secret", fastKDF)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v, be
}

// writeImage makes a test disk image: pattern is a list of segments, each
// one of "hole", "zero", "random", "text", of the given sizes.
type segment struct {
	kind string
	size int64
}

func writeImage(t *testing.T, path string, seed uint64, segs ...segment) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b9))
	var off int64
	for _, s := range segs {
		buf := make([]byte, s.size)
		switch s.kind {
		case "hole":
			off += s.size
			if err := f.Truncate(off); err != nil {
				t.Fatal(err)
			}
			continue
		case "random":
			for i := range buf {
				buf[i] = byte(rng.Uint32())
			}
		case "text":
			words := []string{"haven ", "recovery ", "point ", "vault ", "disk ", "failover\n"}
			for i := 0; i < len(buf); {
				i += copy(buf[i:], words[rng.IntN(len(words))])
			}
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			t.Fatal(err)
		}
		off += s.size
	}
}

func sha(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func snap(t *testing.T, v *Vault, machine string, disks ...DiskSource) (*Point, *SnapshotStats) {
	t.Helper()
	p, st, err := v.Snapshot(context.Background(), SnapshotOptions{Machine: machine, Disks: disks})
	if err != nil {
		t.Fatal(err)
	}
	return p, st
}

func restore(t *testing.T, v *Vault, machine, point, disk, to string) *RestoreStats {
	t.Helper()
	st, err := v.Restore(context.Background(), RestoreOptions{Machine: machine, Point: point, Disk: disk, Target: to})
	if err != nil {
		t.Fatal(err)
	}
	return st
}
