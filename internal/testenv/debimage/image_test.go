package debimage

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/testenv"
)

// TestLayout checks the partition table others code against: GPT, the ESP
// first, the root second with the legacy-BIOS-bootable attribute, the
// fixed PARTUUIDs, and syslinux's boot code in the protective MBR.
func TestLayout(t *testing.T) {
	img := Require(t)
	out, err := exec.Command("sfdisk", "--json", img.Path).Output()
	if err != nil {
		t.Fatal(err)
	}
	var pt struct {
		PartitionTable struct {
			Label      string
			Partitions []struct {
				Start, Size int64
				Type, UUID  string
				Attrs       string
			}
		}
	}
	if err := json.Unmarshal(out, &pt); err != nil {
		t.Fatal(err)
	}
	ps := pt.PartitionTable.Partitions
	if pt.PartitionTable.Label != "gpt" || len(ps) != 2 {
		t.Fatalf("want GPT with 2 partitions:\n%s", out)
	}
	esp, root := ps[img.ESPPartition-1], ps[img.RootPartition-1]
	if !strings.EqualFold(esp.Type, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B") {
		t.Errorf("partition %d type %s, want EFI system", img.ESPPartition, esp.Type)
	}
	if !strings.EqualFold(root.Type, "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709") ||
		!strings.EqualFold(root.UUID, img.RootPartUUID) || !strings.Contains(root.Attrs, "LegacyBIOSBootable") {
		t.Errorf("root partition %+v, want Linux root x86-64, uuid %s, LegacyBIOSBootable", root, img.RootPartUUID)
	}
	if root.Start*512 != img.RootOffset || root.Size*512 != img.RootSize {
		t.Errorf("root at %d+%d sectors, Image says %d+%d bytes", root.Start, root.Size, img.RootOffset, img.RootSize)
	}
	if !strings.Contains(img.Cmdline, "root=PARTUUID="+img.RootPartUUID) {
		t.Errorf("cmdline %q does not name the root PARTUUID", img.Cmdline)
	}
	checkFiles(t, img)
}

// checkFiles reads the image's filesystems in place (debugfs at the root
// partition's offset, mtools at the ESP's): bootloader files, both loaders
// passing the same command line, an uninitialized machine-id.
func checkFiles(t *testing.T, img Image) {
	debugfs := testenv.LookPath(t, "debugfs")
	root := fmt.Sprintf("%s?offset=%d", img.Path, img.RootOffset)
	cat := func(p string) string {
		out, err := exec.Command(debugfs, "-R", "cat "+p, root).Output()
		if err != nil {
			t.Fatalf("debugfs cat %s: %v", p, err)
		}
		return string(out)
	}
	if id := cat("/etc/machine-id"); id != "" {
		t.Errorf("/etc/machine-id = %q, want empty", id)
	}
	if c := cat("/boot/extlinux/extlinux.conf"); !strings.Contains(c, "APPEND "+img.Cmdline) ||
		!strings.Contains(c, "vmlinuz-"+img.Kernel) {
		t.Errorf("extlinux.conf:\n%s", c)
	}
	if c := cat("/boot/extlinux/ldlinux.sys"); len(c) < 1024 {
		t.Errorf("ldlinux.sys is %d bytes: extlinux not installed", len(c))
	}
	esp := fmt.Sprintf("%s@@%d", img.Path, int64(espStart))
	mtype := func(p string) string {
		cmd := exec.Command("mtype", "-i", esp, p)
		cmd.Env = append(cmd.Environ(), "MTOOLS_SKIP_CHECK=1")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("mtype %s: %v", p, err)
		}
		return string(out)
	}
	if c := mtype("::/loader/entries/debian.conf"); !strings.Contains(c, "options "+img.Cmdline) {
		t.Errorf("systemd-boot entry:\n%s", c)
	}
	if c := mtype("::/EFI/BOOT/BOOTX64.EFI"); !strings.HasPrefix(c, "MZ") {
		t.Errorf("\\EFI\\BOOT\\BOOTX64.EFI is not a PE image")
	}
}
