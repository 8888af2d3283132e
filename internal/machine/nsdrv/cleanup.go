package nsdrv

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/haven-dr/haven/internal/machine/loop"
)

// startTime is field 22 of /proc/pid/stat (after the parenthesised name).
func startTime(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		if f := strings.Fields(s[i+1:]); len(f) > 19 {
			return f[19]
		}
	}
	return ""
}

// Cleanup kills machines a crashed run left in stateDir, removes their
// state, and detaches loop devices whose tag starts with loopPrefix
// (LoopName tags them "hv-<machine>/<disk>"). It returns what it removed.
func Cleanup(stateDir, loopPrefix string) ([]string, error) {
	var done []string
	var errs []error
	ents, err := os.ReadDir(stateDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, e := range ents {
		dir := filepath.Join(stateDir, e.Name())
		killRecorded(filepath.Join(dir, "pid"))
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, "machine "+e.Name())
	}
	loops, err := loop.Attached(loopPrefix)
	errs = append(errs, err)
	for _, l := range loops {
		if err := loop.Detach(l.Path); err != nil {
			errs = append(errs, fmt.Errorf("detach %s: %w", l.Path, err))
			continue
		}
		slog.Info("detached leftover loop device", "dev", l.Path, "name", l.Name)
		done = append(done, "loop "+l.Path)
	}
	return done, errors.Join(errs...)
}

func killRecorded(pidFile string) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	var pid int
	var start string
	if _, err := fmt.Sscanf(string(b), "%d %s", &pid, &start); err != nil || pid <= 1 {
		return
	}
	if startTime(pid) == start {
		syscall.Kill(pid, syscall.SIGKILL)
		slog.Info("killed leftover machine", "pid", pid)
	}
}
