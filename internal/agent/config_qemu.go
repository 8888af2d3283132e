package agent

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/haven-dr/haven/internal/qmp"
	"github.com/haven-dr/haven/internal/vault"
)

// validateQemu checks a provider qemu machine: a QMP socket instead of
// image paths, disks named by QEMU device (or all writable ones).
func (m *MachineConfig) validateQemu(stateDir string) error {
	switch {
	case m.QMP == "" && m.LibvirtDomain == "":
		return errors.New("provider qemu needs qmp: /path/to/the/vm/qmp.sock, or libvirt_domain: <name>")
	case m.QMP != "" && m.LibvirtDomain != "":
		return errors.New("provider qemu takes qmp or libvirt_domain, not both")
	case m.LibvirtDomain == "" && m.LibvirtSocket != "":
		return errors.New("libvirt_socket without libvirt_domain")
	case m.QMP != "" && !filepath.IsAbs(m.QMP):
		return fmt.Errorf("qmp %q is not absolute", m.QMP)
	case m.LibvirtSocket != "" && !filepath.IsAbs(m.LibvirtSocket):
		return fmt.Errorf("libvirt_socket %q is not absolute", m.LibvirtSocket)
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

// dialMonitor connects to the VM's monitor: its QMP socket, or libvirtd
// for a libvirt domain.
func dialMonitor(ctx context.Context, cfg MachineConfig) (qmp.Monitor, error) {
	if cfg.LibvirtDomain != "" {
		return qmp.DialLibvirt(ctx, cfg.LibvirtSocket, cfg.LibvirtDomain)
	}
	return qmp.Dial(ctx, cfg.QMP)
}

// monitorName is where the VM's monitor is, for messages.
func monitorName(cfg MachineConfig) string {
	if cfg.LibvirtDomain != "" {
		return "libvirt domain " + cfg.LibvirtDomain
	}
	return cfg.QMP
}
