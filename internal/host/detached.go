package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/haven-dr/haven/internal/atomicfile"
	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/qemudrv"
	"github.com/haven-dr/haven/internal/vnet"
)

// Detached machines run in their own `haven machine run` process, in a
// session of its own, not in the server's: a server that crashes or
// restarts leaves the recovered machines serving, and the resumed job
// finds them running instead of booting them twice. The server execs the
// runner itself (StartRunner, as `haven machine start` does) and stops it
// itself (StopRunner): one exec per start, none per stop.

// MachineFile is what `haven machine run` reads.
type MachineFile struct {
	Machine  machine.Spec               `json:"machine"`
	Driver   string                     `json:"driver,omitempty"` // ns (default) or qemu
	QEMUBoot *qemudrv.BootFiles         `json:"qemu_boot,omitempty"`
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

// alive reports whether the machine's runner holds its run lock.
func (h *Local) alive(site, name string) bool { return RunLockHeld(h.pidFile(site, name)) }

func (h *Local) startDetached(ctx context.Context, site, kind string, spec machine.Spec) error {
	if h.alive(site, spec.Name) {
		// Running, or started by a server that died before it saw it
		// run: StartRunner waits for that one.
		return h.runStart(ctx, site, spec.Name)
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
	mf := MachineFile{Machine: spec, Driver: kind, QEMUBoot: h.QEMUBoot, Networks: nets, StateDir: stateDir, PIDFile: h.pidFile(site, spec.Name),
		Log: filepath.Join(h.machineDir(site), spec.Name+".run.log")}
	b, _ := json.MarshalIndent(mf, "", "  ")
	if err := atomicfile.WriteFile(h.machineFile(site, spec.Name), b, 0o600); err != nil {
		return err
	}
	return h.runStart(ctx, site, spec.Name)
}

func (h *Local) runStart(ctx context.Context, site, name string) error {
	path := h.machineFile(site, name)
	mf, err := readMachineFile(path)
	if err == nil {
		err = StartRunner(ctx, h.Exec, path, mf, time.Minute)
	}
	if err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	return nil
}

func (h *Local) stopDetached(ctx context.Context, site, name string) error {
	if !h.alive(site, name) {
		return nil
	}
	mf, err := readMachineFile(h.machineFile(site, name))
	if err == nil {
		err = StopRunner(ctx, mf, 2*time.Minute)
	}
	if err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	return nil
}

func readMachineFile(path string) (MachineFile, error) {
	f, err := LoadMachineFile(path)
	if err != nil {
		return MachineFile{}, err
	}
	return *f, nil
}

// LoadMachineFile reads a machine file strictly: a key it does not know
// is an error, not a setting silently ignored.
func LoadMachineFile(path string) (*MachineFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f MachineFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if f.PIDFile == "" || f.StateDir == "" {
		return nil, errors.New(path + ": pid_file and state_dir are required")
	}
	return &f, nil
}

func (h *Local) detachedNames(site string) []string {
	files, _ := filepath.Glob(filepath.Join(h.machineDir(site), "*.json"))
	var out []string
	for _, f := range files {
		out = append(out, strings.TrimSuffix(filepath.Base(f), ".json"))
	}
	return out
}
