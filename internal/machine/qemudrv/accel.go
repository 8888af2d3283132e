package qemudrv

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// probeResult caches one KVM probe per process and kind of boot.
type probeResult struct {
	sync.Once
	ok bool
}

var kernelProbe, firmwareProbe probeResult

// accel resolves d.Accel for a machine. "" means "tcg" for direct kernel
// boots (small, quick under TCG, and deterministic in tests) but "auto"
// for firmware boots: a stock OS takes minutes to boot under TCG, and
// whoever recovers a real VM expects KVM where the host has it.
func (d *Driver) accel(ctx context.Context, firmware bool) (string, error) {
	a := d.Accel
	if a == "" {
		a = "tcg"
		if firmware {
			a = "auto"
		}
	}
	switch a {
	case "tcg", "kvm":
		return a, nil
	case "auto":
		p, probe := &kernelProbe, d.ProbeKVM
		if firmware {
			p, probe = &firmwareProbe, d.ProbeFirmwareKVM
		}
		p.Do(func() { p.ok = probe(ctx) })
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

// ProbeFirmwareKVM proves KVM runs guest code without any boot files: it
// starts the firmware machine with no disk under KVM and waits for SeaBIOS
// to say "Running on KVM" on its debug port (0x402), which it does after
// it has run under KVM and asked the CPU what hypervisor it is on.
func (d *Driver) ProbeFirmwareKVM(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.qemu(), "-accel", "kvm", "-machine", machineType, "-m", "32",
		"-cpu", "host", "-nodefaults", "-no-user-config", "-display", "none",
		"-chardev", "stdio,id=dbg", "-device", "isa-debugcon,iobase=0x402,chardev=dbg")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return false
	}
	if err := cmd.Start(); err != nil {
		return false
	}
	defer cmd.Wait()
	defer cmd.Process.Kill() // SeaBIOS waits for a boot disk forever
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "Running on KVM") {
			return true
		}
	}
	return false
}
