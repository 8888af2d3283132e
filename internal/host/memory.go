package host

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/nsdrv"
	"github.com/haven-dr/haven/internal/machine/qemudrv"
)

var _ MemoryChecker = (*Local)(nil)

// MachineMemory asks the machine's instance, or, for a machine its own
// `haven machine run` process runs, reads its cgroups from the state
// that process keeps (the runner is no server: nothing to ask).
func (h *Local) MachineMemory(_ context.Context, site, name string) (machine.MemoryStatus, error) {
	h.mu.Lock()
	m := h.instances[key(site, name)]
	h.mu.Unlock()
	if m != nil && alive(m) {
		if r, ok := m.(machine.MemoryReporter); ok {
			return r.Memory()
		}
		return machine.MemoryStatus{}, nil
	}
	if h.Exec == "" || !h.alive(site, name) {
		return machine.MemoryStatus{}, fmt.Errorf("%w: %s on site %s", machine.ErrNotRunning, name, site)
	}
	b, err := os.ReadFile(h.machineFile(site, name))
	if err != nil {
		return machine.MemoryStatus{}, err
	}
	var mf MachineFile
	if err := json.Unmarshal(b, &mf); err != nil {
		return machine.MemoryStatus{}, fmt.Errorf("%s: %w", h.machineFile(site, name), err)
	}
	if mf.Driver == "qemu" {
		return qemudrv.MemoryOf(mf.Machine), nil
	}
	return nsdrv.ReadMemory(mf.StateDir, name)
}
