package orchbench

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/haven-dr/haven/internal/vault"
)

const fillFile = 16 << 20

// dataDisk makes path an ext4 filesystem of gib GiB whose files fill a
// tenth of it with random (incompressible, never deduplicated) bytes: a
// disk with real allocated content and the holes a real one has. mkfs -d
// copies the files in, so no loop device or mount is needed.
func dataDisk(b *testing.B, path string, gib int) {
	stage, err := os.MkdirTemp(filepath.Dir(path), "hvfill")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(stage)
	var seed [32]byte
	crand.Read(seed[:])
	rng := rand.NewChaCha8(seed)
	buf := make([]byte, fillFile)
	for i := range int64(gib) << 30 / 10 / fillFile {
		rng.Read(buf)
		if err := os.WriteFile(filepath.Join(stage, fmt.Sprintf("f%04d.bin", i)), buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	out, err := exec.Command("mkfs.ext4", "-q", "-F", "-E", "root_owner=0:0", "-d", stage, path, fmt.Sprintf("%dG", gib)).CombinedOutput()
	if err != nil {
		b.Fatalf("mkfs.ext4 %s: %v\n%s", path, err, out)
	}
}

// evict drops the page cache of every file under dirs (fsync first, so
// no page stays dirty), so the next failover reads the vault and the
// standby images from the disk, as it would hours after they were
// written, and not from memory. Only our files are touched: the machine
// is shared, so no global drop_caches.
func evict(b *testing.B, dirs ...string) {
	for _, dir := range dirs {
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			continue // no standby images in this mode
		}
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := f.Sync(); err != nil {
				return err
			}
			return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		})
		if err != nil {
			b.Fatalf("evict %s from the page cache: %v", dir, err)
		}
	}
}

// splitPrep times, apart from any job, the two parts of preparing m's
// data disk from its standby: the reflink clone, and the vault's compare
// of the clone against the point (cold cache), which host.PrepareDisk runs
// even when the standby already holds that very point.
func (r *rig) splitPrep(b *testing.B, m string) (clone, verify time.Duration) {
	src := filepath.Join(r.xfs, "server", "host", "standby", m, "data.img")
	dst := filepath.Join(r.xfs, "hvsplit-"+m+".img")
	defer os.Remove(dst)
	evict(b, filepath.Dir(src), filepath.Join(r.dir, "vault"))
	t0 := time.Now()
	if err := reflink(src, dst); err != nil {
		b.Fatal(err)
	}
	clone = time.Since(t0)
	t0 = time.Now()
	_, err := r.vault.Restore(context.Background(), vault.RestoreOptions{Machine: m,
		Point: r.host.StandbyPoint(m, "data"), Disk: "data", Target: dst, DryRun: true})
	if err != nil {
		b.Fatal(err)
	}
	return clone, time.Since(t0)
}

func reflink(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if err := unix.IoctlFileClone(int(out.Fd()), int(in.Fd())); err != nil {
		out.Close()
		return fmt.Errorf("FICLONE %s: %w", src, err)
	}
	return out.Close()
}
