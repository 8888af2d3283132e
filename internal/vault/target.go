package vault

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// target is where a restore writes: a new file (written under a temporary
// name and renamed at the end), an existing file, or a block device.
type target struct {
	f        *os.File // nil for a new file in a dry run
	path     string
	tmp      string
	size     int64 // before the restore (0 for a new file)
	existing bool
	device   bool
	readOnly bool // dry run
	touched  bool // an existing target may have been changed
}

// openTarget never changes an existing target: its size too stays as it is
// until the restore has written everything (see grow and commit). A block
// device is opened exclusively, which Linux refuses with EBUSY while the
// device is mounted or held by another exclusive opener.
func openTarget(path string, size int64, dryRun bool) (*target, error) {
	fi, err := os.Stat(path)
	if os.IsNotExist(err) {
		return newTarget(path, size, dryRun)
	}
	t := &target{path: path, existing: true, readOnly: dryRun}
	if err != nil {
		return t, err
	}
	t.device = fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0
	if !t.device && !fi.Mode().IsRegular() {
		return t, fmt.Errorf("%s is neither a regular file nor a block device", path)
	}
	flag := os.O_RDWR
	if dryRun {
		flag = os.O_RDONLY
	}
	if t.device {
		flag |= unix.O_EXCL
	}
	if t.f, err = os.OpenFile(path, flag, 0); err != nil {
		if t.device && errors.Is(err, unix.EBUSY) {
			err = fmt.Errorf("block device %s is in use (mounted, or held by another program): refusing to write to it", path)
		}
		return t, err
	}
	if t.size, err = t.f.Seek(0, 2); err == nil && t.device && t.size < size {
		err = fmt.Errorf("device %s has %d bytes, the disk needs %d", path, t.size, size)
	}
	if err != nil {
		t.f.Close()
		return t, err
	}
	return t, nil
}

func newTarget(path string, size int64, dryRun bool) (*target, error) {
	t := &target{path: path, readOnly: dryRun}
	if dryRun {
		return t, nil
	}
	removeStaleTemps(path)
	tmp := tempPrefix(path) + randomHex(4)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return t, err
	}
	// Held while the restore writes: a temporary file nobody holds is
	// the leftover of a killed restore (removeStaleTemps).
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		os.Remove(tmp)
		return t, err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		os.Remove(tmp)
		return t, err
	}
	t.f, t.tmp = f, tmp
	return t, nil
}

func tempPrefix(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".haven-restore-")
}

// RemoveRestoreLeftovers deletes what killed restores to target left
// beside it (callers removing a disk use it; a restore does it itself).
func RemoveRestoreLeftovers(target string) { removeStaleTemps(target) }

// removeStaleTemps deletes the temporary files of earlier restores of path
// that were killed before they could rename or remove them (a live one
// holds its flock and is left alone), so a crash does not leak disk space.
func removeStaleTemps(path string) {
	old, _ := filepath.Glob(tempPrefix(path) + "*")
	for _, o := range old {
		f, err := os.Open(o)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			os.Remove(o)
		}
		f.Close()
	}
}

// state names what a failure leaves (see RestoreError).
func (t *target) state() string {
	switch {
	case t == nil || !t.existing:
		return TargetNotCreated
	case t.touched:
		return TargetPartial
	}
	return TargetUntouched
}

// grow extends a shorter file to size before anything is written, so the
// written chunks land inside it; shrinking waits for commit.
func (t *target) grow(size int64) error {
	if t.device || t.size >= size {
		return nil
	}
	t.touched = true
	return t.f.Truncate(size)
}

// zero makes [off, off+n) read as zeros: a punched hole in a file, written
// zeros on a device.
func (t *target) zero(off, n int64) error {
	t.touched = true
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

func (t *target) writeAt(b []byte, off int64) error {
	t.touched = true
	if _, err := t.f.WriteAt(b, off); err != nil {
		return fmt.Errorf("write %s: %w", t.path, err)
	}
	return nil
}

// commit makes the written data durable and only then shrinks a larger
// file to size, so a failure never leaves a target shorter than it was
// with its data not yet restored.
func (t *target) commit(size int64) error {
	if t.readOnly {
		t.abort()
		return nil
	}
	err := t.f.Sync()
	if err == nil && t.existing && !t.device && t.size > size {
		t.touched = true
		if err = t.f.Truncate(size); err == nil {
			err = t.f.Sync()
		}
	}
	if err == nil {
		err = t.f.Close()
	} else {
		t.f.Close()
	}
	if err != nil {
		t.removeTmp()
		return fmt.Errorf("%s: %w", t.path, err)
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
	if t.f != nil {
		t.f.Close()
	}
	t.removeTmp()
}

func (t *target) removeTmp() {
	if t.tmp != "" {
		os.Remove(t.tmp)
	}
}
