package nsdrv

import "github.com/haven-dr/haven/internal/machine/nsdrv/nschild"

// The child's side lives in package nschild, which imports nothing of
// Haven's: its init, which takes over a re-executed binary, then runs
// before the inits of the packages the rest of haven needs.
type (
	childConfig = nschild.Config
	childMount  = nschild.Mount
	childDev    = nschild.Dev
)

const (
	childEnv = nschild.Env
	fdSync   = nschild.FdSync
	fdStatus = nschild.FdStatus
	fdFirst  = nschild.FdFirst
)
