package qemudrv

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/vnet"
)

func firmwareSpec(t *testing.T, fw string, readdress bool) (*Driver, machine.Spec) {
	p := netip.MustParsePrefix("10.5.0.0/24")
	d := &Driver{Networks: nets{"app": {Network: vnet.Network{Name: "app", Subnet: p, Gateway: netip.MustParseAddr("10.5.0.1")}}},
		OVMF: OVMF{Code: "/fw/CODE.fd", Vars: "/fw/VARS.fd"}}
	spec := machine.Spec{Name: "web", Firmware: fw, Readdress: readdress,
		Disks: []machine.Disk{{Name: "root", Path: "/d/root.img"}, {Name: "data", Path: "/d/data.qcow2"}},
		NICs:  []vnet.NIC{{Name: "eth0", Network: "app", Addr: netip.MustParsePrefix("10.5.0.7/24")}}}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	return d, spec
}

func TestFirmwareArgs(t *testing.T) {
	for _, tc := range []struct {
		fw        string
		readdress bool
		accel     string
	}{{"bios", false, "kvm"}, {"uefi", true, "tcg"}} {
		d, spec := firmwareSpec(t, tc.fw, tc.readdress)
		args := d.args(spec, "/s", "/c", tc.accel, []string{"raw", "qcow2"})
		a := strings.Join(args, " ")
		for _, bad := range []string{"-kernel", "-initrd", "-append", "-no-reboot", "haven.nic", "-netdev user"} {
			if slices.Contains(args, bad) || strings.Contains(a, bad) {
				t.Errorf("%s: args hold %q:\n%s", tc.fw, bad, a)
			}
		}
		want := []string{"-machine q35", "-accel " + tc.accel, "-m 1024", "-nodefaults",
			"if=none,id=d0,format=raw,file=/d/root.img", "virtio-blk-pci,drive=d0,bootindex=0",
			"if=none,id=d1,format=qcow2,file=/d/data.qcow2", "-device virtio-blk-pci,drive=d1 ",
			"virtio-net-pci,netdev=n0,mac=" + spec.NICs[0].MAC.String() + ",romfile=", "tap,id=n0,fd=3",
			"name=org.qemu.guest_agent.0", "path=/s/qga.sock", "-serial chardev:con"}
		if tc.fw == "uefi" {
			want = append(want, "if=pflash,format=raw,unit=0,readonly=on,file=/fw/CODE.fd",
				"if=pflash,format=raw,unit=1,file=/s/OVMF_VARS.fd")
		} else if strings.Contains(a, "pflash") {
			t.Errorf("bios with pflash:\n%s", a)
		}
		if tc.readdress {
			want = append(want, "if=none,id=seed,format=raw,readonly=on,file=/s/seed.iso")
		} else if strings.Contains(a, "seed") {
			t.Errorf("seed without readdress:\n%s", a)
		}
		for _, w := range want {
			if !strings.Contains(a, w) {
				t.Errorf("%s: args lack %q:\n%s", tc.fw, w, a)
			}
		}
		if strings.Contains(a, "-cpu host") {
			t.Errorf("-cpu host aborts QEMU on nested KVM hosts:\n%s", a)
		}
		if strings.Count(a, "bootindex") != 1 {
			t.Errorf("want one bootindex:\n%s", a)
		}
	}
}

// TestPrepareFirmware: the UEFI variable store is the machine's own copy,
// and the seed exists only when the machine is re-addressed.
func TestPrepareFirmware(t *testing.T) {
	fwDir, dir := t.TempDir(), t.TempDir()
	vars := filepath.Join(fwDir, "VARS.fd")
	os.WriteFile(vars, []byte("template vars"), 0o644)
	d, spec := firmwareSpec(t, "uefi", false)
	d.OVMF = OVMF{Code: filepath.Join(fwDir, "CODE.fd"), Vars: vars}
	if err := d.prepareFirmware(spec, dir); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, varsFile)); err != nil || string(b) != "template vars" {
		t.Fatalf("vars copy %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, seedFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("seed without readdress: %v", err)
	}
	dir = t.TempDir()
	_, spec = firmwareSpec(t, "bios", true)
	if err := d.prepareFirmware(spec, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, seedFile)); err != nil {
		t.Fatalf("no seed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, varsFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("bios got UEFI vars: %v", err)
	}
	dir = t.TempDir()
	_, spec = firmwareSpec(t, "", true) // the initramfs addresses NICs itself
	if err := d.prepareFirmware(spec, dir); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("direct kernel boot got %v", ents)
	}
}

func TestAccelDefaults(t *testing.T) {
	d := &Driver{}
	if a, _ := d.accel(t.Context(), ""); a != "tcg" {
		t.Fatalf("direct kernel boot default %q", a)
	}
	d.Accel = "bogus"
	if _, err := d.accel(t.Context(), "bios"); err == nil {
		t.Fatal("bogus accel accepted")
	}
}
