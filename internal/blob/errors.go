package blob

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// Unavailable marks err as transient (ErrUnavailable) while keeping the
// cause visible to errors.Is/As and in the message. Context errors are
// returned unchanged: a cancelled caller must not be retried.
func Unavailable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// NotFound wraps ErrNotFound with the object's name.
func NotFound(name string) error {
	return fmt.Errorf("%w: %s", ErrNotFound, name)
}

// ErrInvalidName is returned for object names that are not clean relative
// slash-separated paths.
var ErrInvalidName = errors.New("invalid object name")

// CheckName rejects names that could escape a prefix or a directory
// ("..", absolute paths, empty elements, trailing slashes). Backends call it
// so every backend accepts exactly the same names.
func CheckName(name string) error {
	if !fs.ValidPath(name) || name == "." || strings.ContainsRune(name, '\\') {
		return fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	if path.Clean(name) != name {
		return fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	return nil
}
