package libvirtdrv

import (
	"errors"
	"strings"
	"testing"

	"libvirt.org/go/libvirtxml"

	"github.com/haven-dr/haven/internal/machine"
)

// TestDomainXML: the domain libvirt is given, read back through
// libvirtxml: size from the spec, disks in order with the seed last and
// read-only, NICs on Haven's unmanaged taps, UEFI through libvirt's
// firmware selection, TCG as type qemu.
func TestDomainXML(t *testing.T) {
	m := &instance{domain: "haven-s-web", console: "/log/web.console.log",
		spec: machine.Spec{Name: "web", Firmware: "uefi", MemoryMB: 2048, CPUs: 3,
			Disks: []machine.Disk{{Name: "root", Path: "/d/root.img"}, {Name: "data", Path: "/d/data.qcow2"}}},
		nics: []nic{{tap: "hv0123456789ab", mac: "52:54:00:00:00:01"}}}
	x, err := domainXML(m, "tcg", []string{"raw", "qcow2"}, "/s/seed.iso")
	if err != nil {
		t.Fatal(err)
	}
	var d libvirtxml.Domain
	if err := d.Unmarshal(x); err != nil {
		t.Fatal(err)
	}
	if d.Type != "qemu" || d.Name != "haven-s-web" || d.Memory.Value != 2048 || d.Memory.Unit != "MiB" || d.VCPU.Value != 3 || d.OS.Firmware != "efi" {
		t.Fatalf("domain %+v %+v %+v %+v", d.Type, d.Memory, d.VCPU, d.OS)
	}
	var disks []string
	for _, k := range d.Devices.Disks {
		disks = append(disks, k.Source.File.File+":"+k.Driver.Type+":"+k.Target.Dev+":"+map[bool]string{true: "ro", false: "rw"}[k.ReadOnly != nil])
	}
	if got := strings.Join(disks, " "); got != "/d/root.img:raw:vda:rw /d/data.qcow2:qcow2:vdb:rw /s/seed.iso:raw:vdc:ro" {
		t.Fatalf("disks %s", got)
	}
	nic := d.Devices.Interfaces[0]
	if nic.Source.Ethernet == nil || nic.Target.Dev != "hv0123456789ab" || nic.Target.Managed != "no" || nic.MAC.Address != "52:54:00:00:00:01" || nic.Model.Type != "virtio" {
		t.Fatalf("nic %s", x)
	}
	if d.Devices.Serials[0].Log.File != "/log/web.console.log" || d.Devices.Serials[0].Source.Pty == nil {
		t.Fatalf("serial %s", x)
	}
	m.spec.Firmware, m.spec.MemoryMB, m.spec.CPUs = "bios", 0, 0
	x, _ = domainXML(m, "kvm", []string{"raw", "raw"}, "")
	d = libvirtxml.Domain{}
	if err := d.Unmarshal(x); err != nil {
		t.Fatal(err)
	}
	if d.Type != "kvm" || d.OS.Firmware != "" || d.Memory.Value != defaultMemoryMB || d.VCPU.Value != 1 || len(d.Devices.Disks) != 2 {
		t.Fatalf("bios defaults: %s", x)
	}
}

// TestStartRefusesDirectKernelBoot: without firmware the spec is refused
// before libvirt is asked anything.
func TestStartRefusesDirectKernelBoot(t *testing.T) {
	d := &Driver{Socket: "/nonexistent/libvirt-sock"}
	_, err := d.Start(t.Context(), machine.Spec{Name: "web", Disks: []machine.Disk{{Name: "root", Path: "/d/root.img"}}})
	if !errors.Is(err, machine.ErrBadSpec) || !strings.Contains(err.Error(), "firmware") {
		t.Fatalf("Start = %v, want ErrBadSpec about firmware", err)
	}
}

// TestMemoryIsDomainSize: a domain reports the size it was defined with.
func TestMemoryIsDomainSize(t *testing.T) {
	for spec, want := range map[int]int{0: 1024, 300: 300} {
		got, err := (&instance{spec: machine.Spec{MemoryMB: spec}}).Memory()
		if err != nil || got != (machine.MemoryStatus{Source: machine.MemoryVM, LimitMB: want}) {
			t.Errorf("memory_mb %d: %+v %v, want a VM of %d MiB", spec, got, err, want)
		}
	}
}
