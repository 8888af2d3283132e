package qemudrv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Cleanup kills VMs a crashed run left in stateDir (only processes that are
// still QEMU with that state directory on their command line) and removes
// their state. Taps vanish with QEMU.
func Cleanup(stateDir string) ([]string, error) {
	ents, err := os.ReadDir(stateDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var done []string
	var errs []error
	for _, e := range ents {
		dir := filepath.Join(stateDir, e.Name())
		killIfOurs(dir)
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, "vm "+e.Name())
	}
	return done, errors.Join(errs...)
}

func killIfOurs(dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err == nil && strings.Contains(string(cmdline), dir) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}
