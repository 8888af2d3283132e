package agent

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/haven-dr/haven/internal/vault"
)

// validateQemu checks a provider qemu machine: a QMP socket instead of
// image paths, disks named by QEMU device (or all writable ones).
func (m *MachineConfig) validateQemu(stateDir string) error {
	if m.QMP == "" {
		return errors.New("provider qemu needs qmp: /path/to/the/vm/qmp.sock")
	}
	if !filepath.IsAbs(m.QMP) {
		return fmt.Errorf("qmp %q is not absolute", m.QMP)
	}
	if m.GuestAgent != "" && !filepath.IsAbs(m.GuestAgent) {
		return fmt.Errorf("guest_agent %q is not absolute", m.GuestAgent)
	}
	if len(m.Freeze) > 0 {
		return errors.New("provider qemu freezes the guest's filesystems through guest_agent, not freeze: (host mounts)")
	}
	seen := map[string]bool{}
	for _, d := range m.Disks {
		if err := vault.ValidName("disk", d.Name); err != nil {
			return err
		}
		// path is only where a restore in place (failback) writes while the
		// VM is off: points are always read through QEMU.
		if d.Path != "" && !filepath.IsAbs(d.Path) {
			return fmt.Errorf("disk %s: path %q is not absolute", d.Name, d.Path)
		}
		if d.Device == "" {
			return fmt.Errorf("disk %s: device missing (see query-block: device, qdev or node-name)", d.Name)
		}
		if seen[d.Device] {
			return fmt.Errorf("disk %s: device %q listed twice", d.Name, d.Device)
		}
		seen[d.Device] = true
	}
	if m.CloneDir == "" {
		m.CloneDir = filepath.Join(stateDir, m.Name, "fleece")
	}
	// QEMU binds the NBD socket there: sun_path holds 107 bytes.
	if n := len(nbdSocket(stateDir, m.Name)); n > 107 {
		return fmt.Errorf("state_dir %q is too long for the machine's NBD socket (%d bytes, at most 107)", stateDir, n)
	}
	return nil
}

func nbdSocket(stateDir, machine string) string { return filepath.Join(stateDir, machine, "nbd.sock") }
