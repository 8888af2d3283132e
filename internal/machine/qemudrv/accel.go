package qemudrv

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"sync"
	"time"
)

var kvmProbe struct {
	sync.Once
	ok bool
}

func (d *Driver) accel(ctx context.Context) (string, error) {
	switch d.Accel {
	case "", "tcg":
		return "tcg", nil
	case "kvm":
		return "kvm", nil
	case "auto":
		kvmProbe.Do(func() { kvmProbe.ok = d.ProbeKVM(ctx) })
		if kvmProbe.ok {
			return "kvm", nil
		}
		return "tcg", nil
	}
	return "", fmt.Errorf("qemu: unknown accel %q", d.Accel)
}

// ProbeKVM boots the kernel and initramfs under KVM with haven.probe, which
// prints a marker and powers off. Only that proves KVM works: /dev/kvm may
// exist and still fail to boot a stock kernel.
func (d *Driver) ProbeKVM(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.qemu(), "-accel", "kvm", "-m", "128", "-nodefaults",
		"-no-user-config", "-display", "none", "-no-reboot", "-serial", "stdio",
		"-kernel", d.Boot.Kernel, "-initrd", d.Boot.Initrd,
		"-append", "console=ttyS0 quiet panic=-1 haven.probe")
	out, _ := cmd.Output()
	return bytes.Contains(out, []byte("haven-probe-ok"))
}
