package qemudrv

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/vnet"
)

func TestModuleOrderDepsFirst(t *testing.T) {
	dir := t.TempDir()
	dep := "kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/lib/crc16.ko\n" +
		"kernel/fs/jbd2/jbd2.ko:\nkernel/lib/crc16.ko:\n" +
		"kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko\n" +
		"kernel/drivers/virtio/virtio.ko:\n"
	os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644)
	got, err := moduleOrder(dir, []string{"ext4", "virtio_blk", "evdev"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"kernel/fs/jbd2/jbd2.ko", "kernel/lib/crc16.ko", "kernel/fs/ext4/ext4.ko",
		"kernel/drivers/virtio/virtio.ko", "kernel/drivers/block/virtio_blk.ko"}
	if !slices.Equal(got, want) {
		t.Fatalf("order %v", got)
	}
}

type nets map[string]vnet.Attachment

func (n nets) Attachment(name string) (vnet.Attachment, error) { return n[name], nil }

func TestArgsCarryNICsAndDisks(t *testing.T) {
	p := netip.MustParsePrefix("10.5.0.0/24")
	d := &Driver{Networks: nets{"app": {Network: vnet.Network{Name: "app", Subnet: p, Gateway: netip.MustParseAddr("10.5.0.1")}}},
		Boot: BootFiles{Kernel: "/k", Initrd: "/i"}}
	spec := machine.Spec{Name: "web", Disks: []machine.Disk{{Name: "root", Path: "/d/a,b.img"}},
		NICs: []vnet.NIC{{Name: "eth0", Network: "app", Addr: netip.MustParsePrefix("10.5.0.7/24")}}}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	a := strings.Join(d.args(spec, "/s", "/c", "tcg", nil), " ")
	for _, want := range []string{"file=/d/a,,b.img,format=raw,if=virtio", "tap,id=n0,fd=3",
		"mac=" + vnet.StableMAC("web", "eth0").String(), "haven.nic=" + vnet.StableMAC("web", "eth0").String() + ",10.5.0.7/24,10.5.0.1",
		"-accel tcg", "haven.init=/sbin/init"} {
		if !strings.Contains(a, want) {
			t.Errorf("args lack %q:\n%s", want, a)
		}
	}
}

// TestMemoryOf: a qemu machine reports the size it was given (its guest's
// own OOMs are not seen from the host), the driver's default without one.
func TestMemoryOf(t *testing.T) {
	for _, c := range []struct {
		spec machine.Spec
		want int
	}{{machine.Spec{}, 256}, {machine.Spec{Firmware: "uefi"}, 1024}, {machine.Spec{MemoryMB: 512, Firmware: "bios"}, 512}} {
		got, err := (&instance{spec: c.spec}).Memory()
		if err != nil || got != (machine.MemoryStatus{Source: machine.MemoryVM, LimitMB: c.want}) {
			t.Errorf("%+v: %+v %v, want a VM of %d MiB", c.spec, got, err, c.want)
		}
	}
}
