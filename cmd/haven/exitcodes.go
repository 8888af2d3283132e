package main

import (
	"errors"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/vault"
)

// Exit codes (README, "Exit codes"). Scripts rely on them: keep them stable.
const (
	exitOK          = 0
	exitFailure     = 1  // anything not listed below
	exitUsage       = 2  // bad flags, config or URL
	exitNoVault     = 3  // nothing at the vault URL
	exitPassword    = 4  // wrong password
	exitVersion     = 5  // vault format version unsupported
	exitMissing     = 6  // an object the vault needs is missing
	exitCorrupt     = 7  // an object is damaged or truncated
	exitUnavailable = 8  // storage unreachable after retries
	exitLocked      = 9  // another process holds the vault
	exitNoPoint     = 10 // no such machine, point or disk
)

type usageErr struct{ msg string }

func (e *usageErr) Error() string { return e.msg }

func usageError(msg string) error { return &usageErr{msg} }

// exitCode maps an error to the documented exit code table. The order
// matters: a corrupt object found while storage flickers is still corrupt.
func exitCode(err error) int {
	var ue *usageErr
	var ee *exitErr
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, vault.ErrNoVault):
		return exitNoVault
	case errors.Is(err, vault.ErrWrongPassword):
		return exitPassword
	case errors.Is(err, vault.ErrUnsupportedVersion):
		return exitVersion
	case errors.Is(err, vault.ErrCorrupt):
		return exitCorrupt
	case errors.Is(err, vault.ErrMissing):
		return exitMissing
	case errors.Is(err, blob.ErrUnavailable):
		return exitUnavailable
	case errors.Is(err, vault.ErrLocked):
		return exitLocked
	case errors.Is(err, vault.ErrNoPoint), errors.Is(err, vault.ErrNoDisk):
		return exitNoPoint
	}
	return exitFailure
}
