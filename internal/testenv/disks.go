package testenv

import (
	crand "crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

const fillFile = 16 << 20

// FilledExt4 makes path an ext4 filesystem of sizeMiB whose files hold
// fillMiB of random (incompressible, never deduplicated) bytes: a disk
// with real allocated content and the holes a real one has. mkfs -d
// copies the files in, so no loop device or mount is needed.
func FilledExt4(t testing.TB, path string, sizeMiB, fillMiB int64) {
	t.Helper()
	stage, err := os.MkdirTemp(filepath.Dir(path), "hvfill")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(stage)
	var seed [32]byte
	crand.Read(seed[:])
	rng := rand.NewChaCha8(seed)
	buf := make([]byte, fillFile)
	for i := range fillMiB << 20 / fillFile {
		rng.Read(buf)
		if err := os.WriteFile(filepath.Join(stage, fmt.Sprintf("f%04d.bin", i)), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command("mkfs.ext4", "-q", "-F", "-E", "root_owner=0:0", "-d", stage, path, fmt.Sprintf("%dM", sizeMiB)).CombinedOutput()
	if err != nil {
		t.Fatalf("mkfs.ext4 %s: %v\n%s", path, err, out)
	}
}

// Evict drops the page cache of every file under dirs (fsync first, so
// no page stays dirty), so the next read comes from the disk, as it would
// hours after the files were written, and not from memory. Only these
// files are touched: the machine is shared, so no global drop_caches. What
// does not exist (any more) is skipped.
func Evict(t testing.TB, dirs ...string) {
	t.Helper()
	for _, dir := range dirs {
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking (a catalog write's temporary file)
			}
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			f, err := os.Open(path)
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			} else if err != nil {
				return err
			}
			defer f.Close()
			if err := f.Sync(); err != nil {
				return err
			}
			return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		})
		if err != nil {
			t.Fatalf("evict %s from the page cache: %v", dir, err)
		}
	}
}
