package machine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/haven-dr/haven/internal/vnet"
)

// OwnerFile, in a machine's state directory, records the Haven process
// that started the machine (vnet.Owner), so cleanup spares the machines of
// a Haven that is still running.
const OwnerFile = "owner"

// ClaimStateDir creates dir, the state directory of one machine, holding
// an owner record for this process and the given empty subdirectories. It
// is built under a temporary name and renamed into place, so cleanup never
// finds it without its owner, and it refuses a second start of a machine.
func ClaimStateDir(dir string, subdirs ...string) error {
	parent, name := filepath.Split(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+name+".claim-")
	if err != nil {
		return err
	}
	err = vnet.WriteOwner(filepath.Join(tmp, OwnerFile), vnet.Self())
	for _, s := range subdirs {
		if err == nil {
			err = os.Mkdir(filepath.Join(tmp, s), 0o755)
		}
	}
	if err == nil {
		err = os.Rename(tmp, dir)
	}
	if err != nil {
		os.RemoveAll(tmp)
	}
	if errors.Is(err, os.ErrExist) { // EEXIST or ENOTEMPTY: the name is taken
		return fmt.Errorf("%w: %s is already running (or left over: run haven site cleanup)", ErrBadSpec, name)
	}
	return err
}

// CleanupStateDirs removes the machine state directories under stateDir
// that a crashed run left, calling kill on each first. A directory whose
// owner is another running process is kept and reported with
// vnet.ErrOwned, unless force. It returns the names removed and kept.
func CleanupStateDirs(stateDir string, force bool, kill func(dir string)) (removed, kept []string, err error) {
	ents, err := os.ReadDir(stateDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var errs []error
	for _, e := range ents {
		dir := filepath.Join(stateDir, e.Name())
		if err := vnet.Owned(filepath.Join(dir, OwnerFile), "machine "+e.Name()); err != nil && !force {
			kept = append(kept, e.Name())
			errs = append(errs, err)
			continue
		}
		kill(dir)
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, e.Name())
	}
	return removed, kept, errors.Join(errs...)
}
