package qemudrv

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/haven-dr/haven/internal/machine"
)

// Default sizes: Haven's initramfs and test guest need little; a stock OS
// booted by its firmware (OVMF alone wants well over 128 MiB) needs more.
const (
	defaultMemoryMB         = 256
	defaultFirmwareMemoryMB = 1024
)

// GuestAgentSocket is the guest agent's channel in a firmware-booted
// machine's state directory (org.qemu.guest_agent.0 in the guest).
const GuestAgentSocket = "qga.sock"

func memoryMB(spec machine.Spec) int {
	switch {
	case spec.MemoryMB > 0:
		return spec.MemoryMB
	case spec.Firmware != "":
		return defaultFirmwareMemoryMB
	}
	return defaultMemoryMB
}

// MemoryOf is what the host knows of a qemu machine's memory: the size it
// gave the VM.
func MemoryOf(spec machine.Spec) machine.MemoryStatus {
	return machine.MemoryStatus{Source: machine.MemoryVM, LimitMB: memoryMB(spec)}
}

// Memory is the VM's size (machine.MemoryVM).
func (m *instance) Memory() (machine.MemoryStatus, error) { return MemoryOf(m.spec), nil }

// args is the QEMU command line; formats are the disks' formats.
func (d *Driver) args(spec machine.Spec, dir, console, accel string, formats []string) []string {
	mem, cpus := memoryMB(spec), spec.CPUs
	if cpus == 0 {
		cpus = 1
	}
	a := []string{"-name", spec.Name, "-accel", accel, "-m", fmt.Sprint(mem), "-smp", fmt.Sprint(cpus),
		"-nodefaults", "-no-user-config", "-display", "none",
		"-chardev", "file,id=con,append=on,path=" + console, "-serial", "chardev:con",
		"-qmp", "unix:" + filepath.Join(dir, "qmp.sock") + ",server=on,wait=off"}
	if spec.Firmware == "" {
		return append(a, d.kernelArgs(spec, formats)...)
	}
	return append(a, d.firmwareArgs(spec, dir, formats)...)
}

func format(formats []string, i int) string {
	if i < len(formats) {
		return formats[i]
	}
	return "raw"
}

func escape(path string) string { return strings.ReplaceAll(path, ",", ",,") }

// kernelArgs boot Haven's kernel and initramfs. NIC addresses go on the
// kernel command line for the initramfs to apply (haven.nic=MAC,ADDR,GW);
// the guest powers off instead of rebooting (-no-reboot, panic=-1).
func (d *Driver) kernelArgs(spec machine.Spec, formats []string) []string {
	cmdline := []string{"console=ttyS0", "quiet", "panic=-1", "haven.host=" + spec.Name, "haven.init=" + spec.Init}
	a := []string{"-no-reboot", "-kernel", d.Boot.Kernel, "-initrd", d.Boot.Initrd}
	for i, disk := range spec.Disks {
		a = append(a, "-drive", "file="+escape(disk.Path)+",format="+format(formats, i)+",if=virtio")
	}
	for i, n := range spec.NICs {
		a = append(a, "-netdev", fmt.Sprintf("tap,id=n%d,fd=%d", i, 3+i),
			"-device", fmt.Sprintf("virtio-net-pci,netdev=n%d,mac=%s", i, n.MAC))
		gw := ""
		if att, err := d.Networks.Attachment(n.Network); err == nil {
			gw = att.Network.Gateway.String()
		}
		cmdline = append(cmdline, fmt.Sprintf("haven.nic=%s,%s,%s", n.MAC, n.Addr, gw))
	}
	return append(a, "-append", strings.Join(cmdline, " "))
}

// firmwareArgs boot the first disk through SeaBIOS or OVMF, like any VM:
// the guest's own bootloader, kernel and network configuration (or the
// NoCloud seed, attached after the disks so theirs keep their names).
// Guest reboots stay reboots. The NICs carry no option ROM: nothing is
// ever booted from the network, and the firmware starts quicker.
func (d *Driver) firmwareArgs(spec machine.Spec, dir string, formats []string) []string {
	// The default CPU model, not -cpu host: on nested hosts KVM may
	// refuse host MSRs (QEMU aborts), and qemu64 runs any x86-64 OS.
	a := []string{"-machine", machineType}
	if spec.Firmware == "uefi" {
		fw, _ := d.ovmf() // checked by prepareFirmware
		a = append(a, "-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+escape(fw.Code),
			"-drive", "if=pflash,format=raw,unit=1,file="+escape(filepath.Join(dir, varsFile)))
	}
	for i, disk := range spec.Disks {
		dev := fmt.Sprintf("virtio-blk-pci,drive=d%d", i)
		if i == 0 {
			dev += ",bootindex=0"
		}
		a = append(a, "-drive", fmt.Sprintf("if=none,id=d%d,format=%s,file=%s", i, format(formats, i), escape(disk.Path)),
			"-device", dev)
	}
	if spec.Readdress {
		a = append(a, "-drive", "if=none,id=seed,format=raw,readonly=on,file="+escape(filepath.Join(dir, seedFile)),
			"-device", "virtio-blk-pci,drive=seed")
	}
	for i, n := range spec.NICs {
		a = append(a, "-netdev", fmt.Sprintf("tap,id=n%d,fd=%d", i, 3+i),
			"-device", fmt.Sprintf("virtio-net-pci,netdev=n%d,mac=%s,romfile=", i, n.MAC))
	}
	return append(a, "-device", "virtio-serial-pci,id=vser",
		"-chardev", "socket,id=qga,server=on,wait=off,path="+filepath.Join(dir, GuestAgentSocket),
		"-device", "virtserialport,bus=vser.0,chardev=qga,name=org.qemu.guest_agent.0")
}
