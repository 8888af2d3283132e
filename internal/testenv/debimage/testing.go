package debimage

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/testenv"
	"golang.org/x/sys/unix"
)

// BuildTimeout bounds a first build (a cold mirror fetch takes minutes).
const BuildTimeout = 20 * time.Minute

// Require returns the image for a test, building it if needed. It needs
// root; a missing build tool skips the test on a laptop and fails it under
// CI=true, like the rest of testenv.
func Require(t testing.TB) Image {
	t.Helper()
	testenv.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), BuildTimeout)
	defer cancel()
	img, err := Ensure(ctx)
	if errors.Is(err, ErrToolMissing) {
		testenv.Missing(t, "%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// Copy gives a test its own writable copy of the image in t.TempDir(): a
// reflink where the filesystem can, else a sparse copy (holes stay holes).
func Copy(t testing.TB, img Image) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "hv-"+filepath.Base(img.Path))
	if err := copyFile(img.Path, dst); err != nil {
		t.Fatal(err)
	}
	return dst
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	if unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) == nil {
		return out.Close()
	}
	if err := sparseCopy(in, out); err != nil {
		os.Remove(dst)
		return err
	}
	return out.Close()
}

// sparseCopy copies only the data extents (SEEK_DATA/SEEK_HOLE) and sets
// the size, so a 2 GiB image with 700 MiB of data costs 700 MiB.
func sparseCopy(in, out *os.File) error {
	st, err := in.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	var off int64
	for off < size {
		data, err := unix.Seek(int(in.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if err != nil {
			return err
		}
		hole, err := unix.Seek(int(in.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.NewOffsetWriter(out, data), io.NewSectionReader(in, data, hole-data)); err != nil {
			return err
		}
		off = hole
	}
	return out.Truncate(size)
}
