package agent

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestQemuRestoreInPlace: failback of a qemu VM writes an older point into
// its raw image file once QEMU is gone (refused while QEMU answers, and
// for a qcow2 file), keeping what the disk held as a preserved point.
func TestQemuRestoreInPlace(t *testing.T) {
	dir := t.TempDir()
	raw, q := mkDisk(t, dir, "disk0", "raw", 16<<20), mkDisk(t, dir, "disk1", "qcow2", 16<<20)
	vm := startVM(t, raw, q)
	v := newVault(t, nil)
	ctx := context.Background()
	disks := fmt.Sprintf("    disks: [{name: disk0, device: disk0, path: %s}%%s]\n    control: {stop: 'true', start: 'true'}\n", raw.path)

	a := newAgent(qemuConfig(t, vm, fmt.Sprintf(disks, "")), v)
	want := vm.content(0)
	_, p1 := qemuCycle(t, a, v, "first", map[string][]byte{"disk0": want})
	vm.write("disk0", 0xab, 1<<20, 64<<10)
	changed := vm.content(0)
	qemuCycle(t, a, v, "after writes", map[string][]byte{"disk0": changed})
	if err := a.StopMachine(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.RestoreMachine(ctx, "m1", RestoreRequest{Point: p1.ID}); err == nil || !strings.Contains(err.Error(), "still answers") {
		t.Fatalf("restore into a running VM: %v", err)
	}
	vm.kill()
	res, err := a.RestoreMachine(ctx, "m1", RestoreRequest{Point: p1.ID, Preserve: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(raw.path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the raw image does not hold the restored point")
	}
	if res.Preserved == "" || res.Disks[0].Differing == 0 {
		t.Fatalf("restore result %+v: want a preserved point and differing bytes", res)
	}
	pp, err := v.FindPoint(ctx, "m1", res.Preserved)
	if err != nil || pp.Tags[PreservedTag] != "true" {
		t.Fatalf("preserved point %s: %v %v", res.Preserved, pp, err)
	}
	if got := restored(t, v, "disk0"); !bytes.Equal(got, changed) {
		t.Fatal("the preserved point does not hold what the disk held before the restore")
	}

	b := newAgent(qemuConfig(t, vm, fmt.Sprintf(disks, fmt.Sprintf(", {name: disk1, device: disk1, path: %s}", q.path))), v)
	if err := b.StopMachine(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.RestoreMachine(ctx, "m1", RestoreRequest{Point: p1.ID}); err == nil || !strings.Contains(err.Error(), "is qcow2") {
		t.Fatalf("restore into a qcow2 image: %v", err)
	}
}
