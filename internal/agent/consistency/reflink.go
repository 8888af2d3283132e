package consistency

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ErrNoReflink means the filesystem cannot clone files (not XFS with
// reflink=1 or btrfs, or source and clone on different filesystems).
var ErrNoReflink = errors.New("filesystem does not support reflink clones")

// Clone makes dst a reflink copy of src: an instant, space-sharing copy of
// the file's current contents. dst is created or truncated.
func Clone(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = unix.IoctlFileClone(int(out.Fd()), int(in.Fd()))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("clone %s: %w (%v)", src, ErrNoReflink, err)
		}
		return fmt.Errorf("clone %s: %w", src, err)
	}
	return nil
}
