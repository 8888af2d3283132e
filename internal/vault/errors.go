package vault

import (
	"errors"
	"fmt"
	"log/slog"
)

// Sentinel errors. Each maps to its own exit code in cmd/haven, so scripts can
// tell "wrong password" from "the storage is down" from "the data is damaged".
var (
	ErrNoVault            = errors.New("no vault at this location (run 'haven vault init')")
	ErrVaultExists        = errors.New("a vault already exists at this location")
	ErrWrongPassword      = errors.New("wrong password: no key in the vault opens with it")
	ErrUnsupportedVersion = errors.New("vault format version not supported by this haven")
	ErrMissing            = errors.New("object missing from the vault")
	ErrCorrupt            = errors.New("object corrupt")
	ErrLocked             = errors.New("vault is locked by another process")
	ErrNoPoint            = errors.New("no such recovery point")
	ErrNoDisk             = errors.New("no such disk")
)

// ObjectError names the stored object an integrity problem was found in, so an
// operator can see exactly which file or blob is damaged.
type ObjectError struct {
	Object string // object name in the backend, e.g. "data/3f/3fa9..."
	Detail string // what is wrong
	Err    error  // ErrMissing or ErrCorrupt (or a backend error)
}

func (e *ObjectError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("%s: %v", e.Object, e.Err)
	}
	return fmt.Sprintf("%s: %v: %s", e.Object, e.Err, e.Detail)
}

func (e *ObjectError) Unwrap() error { return e.Err }

// detailUnauthentic: the object does not open with the vault's key. Whoever
// wrote it held no key (or it was damaged): it cannot carry a point's data.
const detailUnauthentic = "authentication failed (damaged or truncated)"

// unauthentic reports a sealed object that fails authentication.
func unauthentic(err error) bool {
	var oe *ObjectError
	return errors.As(err, &oe) && oe.Detail == detailUnauthentic
}

// passOver logs an unauthentic object that a reader leaves out. Such
// objects are what a writer without the key (a compromised primary's
// storage credential, on storage that refuses deletes and overwrites) can
// still add; check reports them, and only prune, which must see everything,
// refuses to run while they exist.
func passOver(err error) {
	slog.Warn("vault: passing over an object that fails authentication (planted or damaged; see haven vault check)", "err", err)
}

func corrupt(object, format string, args ...any) error {
	return &ObjectError{Object: object, Detail: fmt.Sprintf(format, args...), Err: ErrCorrupt}
}
