package vault

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// target is where a restore writes: a new file (written under a temporary
// name and renamed at the end), an existing file, or a block device.
type target struct {
	f        *os.File
	path     string
	tmp      string
	existing bool
	device   bool
}

func openTarget(path string, size int64) (*target, error) {
	fi, err := os.Stat(path)
	if os.IsNotExist(err) {
		tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".haven-restore-"+randomHex(4))
		f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, err
		}
		if err := f.Truncate(size); err != nil {
			f.Close()
			os.Remove(tmp)
			return nil, err
		}
		return &target{f: f, path: path, tmp: tmp}, nil
	}
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	t := &target{f: f, path: path, existing: true, device: fi.Mode()&os.ModeDevice != 0}
	if t.device {
		n, err := f.Seek(0, 2)
		if err == nil && n < size {
			err = fmt.Errorf("device %s has %d bytes, the disk needs %d", path, n, size)
		}
		if err != nil {
			f.Close()
			return nil, err
		}
		return t, nil
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is neither a regular file nor a block device", path)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, err
	}
	return t, nil
}

// zero makes [off, off+n) read as zeros: a punched hole in a file, written
// zeros on a device.
func (t *target) zero(off, n int64) error {
	if !t.device {
		err := unix.Fallocate(int(t.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
		if err == nil {
			return nil
		}
	}
	if _, err := t.f.WriteAt(zeroChunk[:n], off); err != nil {
		return fmt.Errorf("write %s: %w", t.path, err)
	}
	return nil
}

func (t *target) commit() error {
	if err := t.f.Sync(); err != nil {
		t.abort()
		return err
	}
	if err := t.f.Close(); err != nil {
		t.abort()
		return err
	}
	if t.tmp == "" {
		return nil
	}
	if err := os.Rename(t.tmp, t.path); err != nil {
		os.Remove(t.tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(t.path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func (t *target) abort() {
	t.f.Close()
	if t.tmp != "" {
		os.Remove(t.tmp)
	}
}
