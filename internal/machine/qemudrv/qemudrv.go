// Package qemudrv is the qemu machine driver: a real VM with
// qemu-system-x86_64, virtio disks, virtio-net on a tap in the network's
// bridge, serial console to the log, and graceful shutdown over QMP. It
// boots either the ns driver's images (direct kernel boot of a Debian
// kernel and Haven's small initramfs, Spec.Firmware "") or real VM disks
// through their own bootloader (SeaBIOS or OVMF), re-addressed with a
// cloud-init NoCloud seed when Spec.Readdress.
package qemudrv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/vnet"
)

// DefaultStateDir holds one directory per running VM (QMP socket, pid).
const DefaultStateDir = "/run/haven/qemu"

// DefaultLogDir keeps console logs after machines stop.
const DefaultLogDir = "/var/log/haven/machines"

// Driver starts machines as QEMU VMs.
type Driver struct {
	Networks machine.Networks
	Ops      vnet.Ops  // default vnet.Netlink{}
	Boot     BootFiles // direct kernel boot only
	OVMF     OVMF      // UEFI firmware; default Debian's ovmf package
	StateDir string    // default DefaultStateDir
	QEMU     string    // default qemu-system-x86_64
	// Accel is "tcg", "kvm", or "auto": KVM only if a probe proves it
	// works (on some hosts /dev/kvm exists but cannot boot a stock
	// kernel). Default: "tcg" for direct kernel boots, "auto" for
	// firmware boots (see accel).
	Accel string
}

var _ machine.Driver = (*Driver)(nil)

func (d *Driver) Name() string { return "qemu" }

// SetStateDir moves the driver's state (tests keep theirs apart).
func (d *Driver) SetStateDir(dir string) { d.StateDir = dir }

func (d *Driver) ops() vnet.Ops {
	if d.Ops == nil {
		return vnet.Netlink{}
	}
	return d.Ops
}

func (d *Driver) stateDir() string {
	if d.StateDir == "" {
		return DefaultStateDir
	}
	return d.StateDir
}

func (d *Driver) qemu() string {
	if d.QEMU == "" {
		return "qemu-system-x86_64"
	}
	return d.QEMU
}

// Start boots spec and returns once QEMU runs; the guest is healthy later.
func (d *Driver) Start(ctx context.Context, spec machine.Spec) (machine.Instance, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if spec.Firmware == "" && (d.Boot.Kernel == "" || d.Boot.Initrd == "") {
		return nil, fmt.Errorf("%w: %s: direct kernel boot needs boot files (or set firmware)", machine.ErrBadSpec, spec.Name)
	}
	formats, err := machine.DiskFormats(spec.Disks)
	if err != nil {
		return nil, err
	}
	accel, err := d.accel(ctx, spec.Firmware)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(d.stateDir(), spec.Name)
	if err := machine.ClaimStateDir(dir); err != nil {
		return nil, err
	}
	m, err := d.boot(spec, dir, accel, formats)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("qemu: start %s: %w", spec.Name, err)
	}
	return m, nil
}

func (d *Driver) boot(spec machine.Spec, dir, accel string, formats []string) (*instance, error) {
	if err := d.prepareFirmware(spec, dir); err != nil {
		return nil, err
	}
	m := &instance{spec: spec, dir: dir, ops: d.ops(), done: make(chan struct{})}
	m.status.Set(machine.Starting)
	taps, err := d.openTaps(m)
	defer func() {
		for _, t := range taps {
			t.Close() // QEMU holds its own copies
		}
	}()
	if err != nil {
		m.removeLinks()
		return nil, err
	}
	console := spec.ConsoleLog
	if console == "" {
		console = filepath.Join(DefaultLogDir, spec.Name+".console.log")
	}
	if err := os.MkdirAll(filepath.Dir(console), 0o755); err != nil {
		return nil, err
	}
	m.console = console
	args := d.args(spec, dir, console, accel, formats)
	if err := m.start(d.qemu(), args, taps); err != nil {
		m.removeLinks()
		return nil, err
	}
	return m, nil
}

// openTaps creates one tap per NIC in its network's namespace and puts it
// on the bridge.
func (d *Driver) openTaps(m *instance) ([]*os.File, error) {
	var taps []*os.File
	for _, n := range m.spec.NICs {
		if d.Networks == nil {
			return taps, fmt.Errorf("%w: driver has no networks", machine.ErrBadSpec)
		}
		att, err := d.Networks.Attachment(n.Network)
		if err != nil {
			return taps, err
		}
		name := tapName(m.spec.Name, n.Name)
		f, err := vnet.OpenTap(att.NS, name)
		if err != nil {
			return taps, err
		}
		taps = append(taps, f)
		m.links = append(m.links, [2]string{att.NS, name})
		if err := d.ops().SetMaster(att.NS, name, att.Bridge); err != nil {
			return taps, err
		}
		if err := d.ops().LinkUp(att.NS, name); err != nil {
			return taps, err
		}
	}
	return taps, nil
}

func tapName(machineName, nic string) string {
	sum := sha256.Sum256([]byte("tap\x00" + machineName + "\x00" + nic))
	return vnet.Prefix + hex.EncodeToString(sum[:6])
}
