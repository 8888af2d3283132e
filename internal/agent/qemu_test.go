package agent

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/vault"
)

// qemuCycle takes one point and checks every disk restores to want.
func qemuCycle(t *testing.T, a *Agent, v *vault.Vault, step string, want map[string][]byte) (*MachineStatus, *vault.Point) {
	t.Helper()
	ctx := context.Background()
	if err := a.Cycle(ctx, "m1"); err != nil {
		t.Fatalf("%s: %v", step, err)
	}
	p, err := v.FindPoint(ctx, "m1", "latest")
	if err != nil {
		t.Fatal(err)
	}
	for disk, w := range want {
		if got := restored(t, v, disk); !bytes.Equal(got, w) {
			t.Fatalf("%s: disk %s restores differently from the disk at the point (%d vs %d bytes)", step, disk, len(got), len(w))
		}
	}
	s := a.Status().Machines[0]
	t.Logf("%s: read %d bytes, known %d chunks, tags %v", step, s.LastCycle.ReadBytes, s.LastCycle.KnownChunks, p.Tags)
	return &s, p
}

// TestQemuDirtyBitmaps: a running VM with a raw and a qcow2 disk; the first
// point reads the data (not the zeros), later points only the chunks the
// guest wrote, an unchanged VM nothing, and writes racing with the read
// stay out of the point.
func TestQemuDirtyBitmaps(t *testing.T) {
	dir := t.TempDir()
	vm := startVM(t, mkDisk(t, dir, "disk0", "raw", 64<<20), mkDisk(t, dir, "disk1", "qcow2", 48<<20))
	v := newVault(t, nil)
	a := newAgent(qemuConfig(t, vm, ""), v)
	cs := int64(v.Config().ChunkSize)
	want := func() map[string][]byte { return map[string][]byte{"disk0": vm.content(0), "disk1": vm.content(1)} }

	s, p := qemuCycle(t, a, v, "first", want())
	if !strings.Contains(p.Tags["full_read"], "disk0: no tracked previous point") || p.Consistency != vault.CrashConsistent {
		t.Fatalf("first point: tags %v, consistency %s", p.Tags, p.Consistency)
	}
	// Each disk holds 5 blocks of 64 KiB; the rest reads as zeros and is skipped.
	if s.LastCycle.ReadBytes > 2*6*64<<10 {
		t.Fatalf("first point read %d bytes of 640 KiB of data", s.LastCycle.ReadBytes)
	}

	vm.write("disk0", 0xab, 1<<20, 64<<10)
	vm.write("disk0", 0xcd, 40<<20+4096, 8192) // one chunk, unaligned inside it
	vm.write("disk1", 0xef, 30<<20, 128<<10)
	dirty := int64(64<<10) + cs + 128<<10
	s, p = qemuCycle(t, a, v, "after writes", want())
	if s.LastCycle.ReadBytes > dirty || s.LastCycle.ReadBytes == 0 || p.Tags["full_read"] != "" {
		t.Fatalf("second point read %d bytes, %d dirty; tags %v", s.LastCycle.ReadBytes, dirty, p.Tags)
	}
	if s, _ = qemuCycle(t, a, v, "unchanged", want()); s.LastCycle.ReadBytes != 0 {
		t.Fatalf("unchanged VM: read %d bytes", s.LastCycle.ReadBytes)
	}

	// Writes after the point's instant, before its read, stay out of it.
	before := want()
	vm.write("disk0", 0x11, 2<<20, 64<<10) // in the bitmap of this point
	a.afterCapture = func() {
		vm.write("disk0", 0x22, 2<<20, 64<<10)
		vm.write("disk0", 0x33, 0, 1<<20)
		vm.write("disk1", 0x44, 0, 1<<20)
	}
	before["disk0"] = vm.content(0)
	qemuCycle(t, a, v, "racing writes", before)
	a.afterCapture = nil
	// The racing writes are in the next point.
	if s, _ = qemuCycle(t, a, v, "after the race", want()); s.LastCycle.ReadBytes > 3<<20 {
		t.Fatalf("read %d bytes for 2 MiB and 64 KiB written", s.LastCycle.ReadBytes)
	}
}
