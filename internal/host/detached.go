package host

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/vnet"
)

// Detached machines run in their own `haven machine run` process (started
// with `haven machine start`), not as children of the server: a server
// that crashes or restarts leaves the recovered machines serving, and the
// resumed job finds them running instead of booting them twice.

// MachineFile is what `haven machine run` reads.
type MachineFile struct {
	Machine  machine.Spec               `json:"machine"`
	Networks map[string]vnet.Attachment `json:"networks"`
	StateDir string                     `json:"state_dir"`
	PIDFile  string                     `json:"pid_file"`
	Log      string                     `json:"log,omitempty"`
}

func (h *Local) machineDir(site string) string {
	return filepath.Join(h.dir, "machines", site, "detached")
}

func (h *Local) machineFile(site, name string) string {
	return filepath.Join(h.machineDir(site), name+".json")
}

func (h *Local) pidFile(site, name string) string {
	return filepath.Join(h.machineDir(site), name+".pid")
}

// pidAlive reads a pid file and reports the pid if that process runs our
// binary (a reused pid of another program does not count).
func (h *Local) pidAlive(pidFile string) int {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || syscall.Kill(pid, 0) != nil {
		return 0
	}
	cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if !strings.Contains(string(cmd), "machine\x00run") {
		return 0
	}
	return pid
}

func (h *Local) startDetached(ctx context.Context, site string, spec machine.Spec) error {
	if h.pidAlive(h.pidFile(site, spec.Name)) != 0 {
		return nil
	}
	nets := map[string]vnet.Attachment{}
	for _, n := range spec.NICs {
		a, err := h.Attachment(n.Network)
		if err != nil {
			return err
		}
		nets[n.Network] = a
	}
	stateDir := filepath.Join(h.machineDir(site), "state")
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return err
	}
	// The run process of a crashed host left its state: clear it (it
	// kills nothing alive: the pid file says nothing runs).
	if err := clearLeftoverDir(stateDir, spec.Name); err != nil {
		return err
	}
	mf := MachineFile{Machine: spec, Networks: nets, StateDir: stateDir, PIDFile: h.pidFile(site, spec.Name),
		Log: filepath.Join(h.machineDir(site), spec.Name+".run.log")}
	b, _ := json.MarshalIndent(mf, "", "  ")
	if err := writeFileAtomic(h.machineFile(site, spec.Name), b); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, h.Exec, "machine", "start", "--file", h.machineFile(site, spec.Name)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("haven machine start %s: %v: %s", spec.Name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (h *Local) stopDetached(ctx context.Context, site, name string) error {
	if h.pidAlive(h.pidFile(site, name)) == 0 {
		return nil
	}
	out, err := exec.CommandContext(ctx, h.Exec, "machine", "stop", "--file", h.machineFile(site, name)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("haven machine stop %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (h *Local) detachedNames(site string) []string {
	files, _ := filepath.Glob(filepath.Join(h.machineDir(site), "*.json"))
	var out []string
	for _, f := range files {
		out = append(out, strings.TrimSuffix(filepath.Base(f), ".json"))
	}
	return out
}
