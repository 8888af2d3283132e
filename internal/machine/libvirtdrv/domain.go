package libvirtdrv

import (
	"fmt"

	"libvirt.org/go/libvirtxml"

	"github.com/haven-dr/haven/internal/machine"
)

// defaultMemoryMB: a stock OS booted by its firmware (OVMF alone wants
// well over 128 MiB), as the qemu driver's firmware boots.
const defaultMemoryMB = 1024

// size is the machine's memory and vCPUs, from its spec.
func size(spec machine.Spec) (memMB, cpus uint) {
	memMB, cpus = uint(spec.MemoryMB), uint(spec.CPUs)
	if memMB == 0 {
		memMB = defaultMemoryMB
	}
	if cpus == 0 {
		cpus = 1
	}
	return memMB, cpus
}

// Memory is the domain's size (machine.MemoryVM).
func (m *instance) Memory() (machine.MemoryStatus, error) {
	mem, _ := size(m.spec)
	return machine.MemoryStatus{Source: machine.MemoryVM, LimitMB: int(mem)}, nil
}

// domainXML describes m as a q35 domain booting its first disk through
// SeaBIOS or (libvirt's choice of) OVMF, like the qemu driver's firmware
// boots: virtio disks in spec order, the NoCloud seed after them (so
// theirs keep their names), virtio NICs on Haven's taps without option
// ROMs (nothing boots from the network), the serial console on a pty
// (virsh console) logged to m.console, and the guest agent's channel.
func domainXML(m *instance, accel string, formats []string, seed string) (string, error) {
	mem, cpus := size(m.spec)
	dom := &libvirtxml.Domain{
		Type:        map[string]string{"kvm": "kvm", "tcg": "qemu"}[accel],
		Name:        m.domain,
		Description: fmt.Sprintf("Haven recovery machine %s (started and removed by Haven)", m.spec.Name),
		Memory:      &libvirtxml.DomainMemory{Value: mem, Unit: "MiB"},
		VCPU:        &libvirtxml.DomainVCPU{Value: cpus},
		OS: &libvirtxml.DomainOS{Type: &libvirtxml.DomainOSType{Arch: "x86_64", Machine: "q35", Type: "hvm"},
			BootDevices: []libvirtxml.DomainBootDevice{{Dev: "hd"}}},
		Features:   &libvirtxml.DomainFeatureList{ACPI: &libvirtxml.DomainFeature{}},
		OnPoweroff: "destroy", OnReboot: "restart", OnCrash: "destroy",
		Devices: &libvirtxml.DomainDeviceList{},
	}
	if m.spec.Firmware == "uefi" {
		dom.OS.Firmware = "efi"
	}
	dev := dom.Devices
	for i, d := range m.spec.Disks {
		dev.Disks = append(dev.Disks, disk(d.Path, formats[i], fmt.Sprintf("vd%c", 'a'+i), false))
	}
	if seed != "" {
		dev.Disks = append(dev.Disks, disk(seed, "raw", fmt.Sprintf("vd%c", 'a'+len(m.spec.Disks)), true))
	}
	for _, n := range m.nics {
		dev.Interfaces = append(dev.Interfaces, libvirtxml.DomainInterface{
			MAC:    &libvirtxml.DomainInterfaceMAC{Address: n.mac},
			Source: &libvirtxml.DomainInterfaceSource{Ethernet: &libvirtxml.DomainInterfaceSourceEthernet{}},
			Target: &libvirtxml.DomainInterfaceTarget{Dev: n.tap, Managed: "no"},
			Model:  &libvirtxml.DomainInterfaceModel{Type: "virtio"},
			ROM:    &libvirtxml.DomainROM{Enabled: "no"},
		})
	}
	dev.Serials = []libvirtxml.DomainSerial{{
		Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
		Log:    &libvirtxml.DomainChardevLog{File: m.console, Append: "on"},
	}}
	dev.Channels = []libvirtxml.DomainChannel{{
		Source: &libvirtxml.DomainChardevSource{UNIX: &libvirtxml.DomainChardevSourceUNIX{Mode: "bind"}},
		Target: &libvirtxml.DomainChannelTarget{VirtIO: &libvirtxml.DomainChannelTargetVirtIO{Name: "org.qemu.guest_agent.0"}},
	}}
	return dom.Marshal()
}

func disk(path, format, target string, readonly bool) libvirtxml.DomainDisk {
	d := libvirtxml.DomainDisk{Device: "disk",
		Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: format},
		Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: path}},
		Target: &libvirtxml.DomainDiskTarget{Dev: target, Bus: "virtio"},
	}
	if readonly {
		d.ReadOnly = &libvirtxml.DomainDiskReadOnly{}
	}
	return d
}
