package debimage

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
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
	if !strings.EqualFold(root.Type, "4F68BCE3-E8CD-4C1D-96E7-2FCAF4C2CB0B") ||
		!strings.EqualFold(root.UUID, img.RootPartUUID) || !strings.Contains(root.Attrs, "LegacyBIOSBootable") {
		t.Errorf("root partition %+v, want Linux root x86-64, uuid %s, LegacyBIOSBootable", root, img.RootPartUUID)
	}
	if root.Start*512 != img.RootOffset || root.Size*512 != img.RootSize {
		t.Errorf("root at %d+%d sectors, Image says %d+%d bytes", root.Start, root.Size, img.RootOffset, img.RootSize)
	}
	if !strings.Contains(img.Cmdline, "root=PARTUUID="+img.RootPartUUID) {
		t.Errorf("cmdline %q does not name the root PARTUUID", img.Cmdline)
	}
}
