package qemudrv

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/haven-dr/haven/internal/machine"
)

// Cleanup kills VMs a crashed run left in stateDir (only processes that are
// still QEMU with that state directory on their command line) and removes
// their state. Taps vanish with QEMU. VMs that another running Haven owns
// are kept (vnet.ErrOwned).
func Cleanup(stateDir string) ([]string, error) {
	removed, _, err := machine.CleanupStateDirs(stateDir, false, killIfOurs)
	return prefixed("vm ", removed), err
}

// ForceCleanup is Cleanup that also removes the VMs of running Havens.
func ForceCleanup(stateDir string) ([]string, error) {
	removed, _, err := machine.CleanupStateDirs(stateDir, true, killIfOurs)
	return prefixed("vm ", removed), err
}

func prefixed(p string, ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = p + s
	}
	return out
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
