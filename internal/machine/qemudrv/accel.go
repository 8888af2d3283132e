package qemudrv

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"sync"
	"time"
)

// probeResult caches one KVM probe per process and kind of boot.
type probeResult struct {
	sync.Once
	ok bool
}

var probes = map[string]*probeResult{"": {}, "bios": {}, "uefi": {}}

// accel resolves d.Accel for a machine booting with firmware. "" means
// "tcg" for direct kernel boots (small, quick under TCG, deterministic in
// tests) but "auto" for firmware boots: a stock OS takes minutes to boot
// under TCG, and whoever recovers a real VM expects KVM where it works.
func (d *Driver) accel(ctx context.Context, firmware string) (string, error) {
	a := d.Accel
	if a == "" {
		a = "tcg"
		if firmware != "" {
			a = "auto"
		}
	}
	switch a {
	case "tcg", "kvm":
		return a, nil
	case "auto":
		p, ok := probes[firmware]
		if !ok {
			return "", fmt.Errorf("qemu: unknown firmware %q", firmware)
		}
		p.Do(func() {
			if firmware == "" {
				p.ok = d.ProbeKVM(ctx)
			} else {
				p.ok = d.ProbeFirmware(ctx, "kvm", firmware) == nil
			}
		})
		if p.ok {
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
