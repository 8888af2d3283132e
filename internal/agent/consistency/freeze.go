package consistency

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"golang.org/x/sys/unix"
)

// FIFREEZE and FITHAW are _IOWR('X', 119/120, int); x/sys/unix lacks them.
const (
	fifreeze = 0xC0045877
	fithaw   = 0xC0045878
)

// Frozen is a set of frozen filesystems; Thaw releases them.
type Frozen struct {
	files []*os.File
}

// Freeze freezes the filesystems mounted at mountpoints (FIFREEZE): pending
// writes are flushed and new writes block until Thaw. Mountpoints are frozen
// in order; on failure those already frozen are thawed again.
func Freeze(mountpoints []string) (*Frozen, error) {
	fz := &Frozen{}
	for _, mp := range mountpoints {
		f, err := os.Open(mp)
		if err != nil {
			fz.Thaw()
			return nil, fmt.Errorf("freeze %s: %w", mp, err)
		}
		if err := unix.IoctlSetInt(int(f.Fd()), fifreeze, 0); err != nil {
			f.Close()
			fz.Thaw()
			return nil, fmt.Errorf("freeze %s: %w", mp, err)
		}
		fz.files = append(fz.files, f)
	}
	return fz, nil
}

// Thaw unfreezes in reverse order. Safe on nil and to call twice.
func (fz *Frozen) Thaw() error {
	if fz == nil {
		return nil
	}
	var errs []error
	for i := len(fz.files) - 1; i >= 0; i-- {
		f := fz.files[i]
		if err := unix.IoctlSetInt(int(f.Fd()), fithaw, 0); err != nil {
			slog.Error("thaw failed", "mount", f.Name(), "err", err)
			errs = append(errs, fmt.Errorf("thaw %s: %w", f.Name(), err))
		}
		f.Close()
	}
	fz.files = nil
	return errors.Join(errs...)
}
