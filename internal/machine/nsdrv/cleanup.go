package nsdrv

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/loop"
	"github.com/haven-dr/haven/internal/vnet"
)

// Cleanup kills machines a crashed run left in stateDir, removes their
// state (with the cgroups they recorded), and removes the empty cgroups
// and detaches the loop devices whose names start with loopPrefix
// (CgroupName is "hv-<machine>-<random>", LoopName tags
// "hv-<machine>/<disk>"). Machines that another running Haven owns, and
// their cgroups and loop devices, are kept (vnet.ErrOwned); a cgroup with
// processes that no state directory here records may be another run's
// and is kept too. It returns what it removed.
func Cleanup(stateDir, loopPrefix string) ([]string, error) {
	return cleanup(stateDir, loopPrefix, false)
}

// ForceCleanup is Cleanup that also removes the machines of running Havens.
func ForceCleanup(stateDir, loopPrefix string) ([]string, error) {
	return cleanup(stateDir, loopPrefix, true)
}

func cleanup(stateDir, loopPrefix string, force bool) ([]string, error) {
	var done []string
	var errs []error
	removed, kept, err := machine.CleanupStateDirs(stateDir, force, func(dir string) {
		killRecorded(dir)
		cgs := recordedV1(dir)
		if cg := recordedCgroup(dir); cg != "" {
			cgs = append(cgs, cg)
		}
		for _, cg := range cgs {
			if err := removeCgroup(cg, time.Now().Add(10*time.Second)); err != nil {
				errs = append(errs, err)
			} else {
				done = append(done, "cgroup "+cg)
			}
		}
	})
	errs = append(errs, err)
	for _, r := range removed {
		done = append(done, "machine "+r)
	}
	keep := map[string]bool{}
	for _, k := range kept {
		keep[recordedCgroup(filepath.Join(stateDir, k))] = true
		for _, cg := range recordedV1(filepath.Join(stateDir, k)) {
			keep[cg] = true
		}
	}
	for _, cg := range leftoverCgroups(loopPrefix) {
		if keep[cg] || populated(cg) {
			continue
		}
		// cgroup.kill ends whatever the state directory did not record.
		if err := removeCgroup(cg, time.Now().Add(10*time.Second)); err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, "cgroup "+cg)
	}
	loops, err := loop.Attached(loopPrefix)
	errs = append(errs, err)
	for _, l := range loops {
		if keptLoop(l.Name, kept) {
			continue
		}
		if err := loop.Detach(l.Path); err != nil {
			errs = append(errs, fmt.Errorf("detach %s: %w", l.Path, err))
			continue
		}
		slog.Info("detached leftover loop device", "dev", l.Path, "name", l.Name)
		done = append(done, "loop "+l.Path)
	}
	return done, errors.Join(errs...)
}

// RemoveRecordedCgroups removes the cgroups that the machine state
// directories under stateDir record and leaves the directories: what a
// host's power loss takes along (the cgroups) while its disk keeps the
// rest. Its machines' processes must be dead.
func RemoveRecordedCgroups(stateDir string) error {
	ents, err := os.ReadDir(stateDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		dir := filepath.Join(stateDir, e.Name())
		cgs := recordedV1(dir)
		if cg := recordedCgroup(dir); cg != "" {
			cgs = append(cgs, cg)
		}
		for _, cg := range cgs {
			errs = append(errs, removeCgroup(cg, time.Now().Add(10*time.Second)))
		}
	}
	return errors.Join(errs...)
}

func keptLoop(tag string, kept []string) bool {
	for _, k := range kept {
		if strings.HasPrefix(tag, LoopName(k, "")) {
			return true
		}
	}
	return false
}

// killRecorded ends the machine a crashed run recorded in dir (pid and
// start time must match, so a reused pid is never hit); cleanup then
// removes the cgroup dir records, with whatever still runs in it.
func killRecorded(dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		return
	}
	o, err := vnet.ParseOwner(string(b))
	if err == nil && o.PID > 1 && o.Alive() {
		syscall.Kill(o.PID, syscall.SIGKILL)
		slog.Info("killed leftover machine", "pid", o.PID)
	}
}
