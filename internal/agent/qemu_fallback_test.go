package agent

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestQemuFallbacks: the agent trusts a bitmap only while it provably
// covers the interval; each fallback reads the whole disk, says why in the
// point's tags, and every point restores exactly.
func TestQemuFallbacks(t *testing.T) {
	dir := t.TempDir()
	vm := startVM(t, mkDisk(t, dir, "disk0", "raw", 32<<20))
	v := newVault(t, nil)
	cfg := qemuConfig(t, vm, "    disks: [{name: root, device: disk0}]\n")
	a := newAgent(cfg, v)
	cs := int64(v.Config().ChunkSize)
	want := func() map[string][]byte { return map[string][]byte{"root": vm.content(0)} }
	expect := func(step, fullRead string, maxRead int64) {
		t.Helper()
		s, p := qemuCycle(t, a, v, step, want())
		if !strings.Contains(p.Tags["full_read"], fullRead) || (fullRead == "") != (p.Tags["full_read"] == "") {
			t.Fatalf("%s: full_read tag %q, want %q", step, p.Tags["full_read"], fullRead)
		}
		if maxRead >= 0 && s.LastCycle.ReadBytes > maxRead {
			t.Fatalf("%s: read %d bytes, at most %d expected", step, s.LastCycle.ReadBytes, maxRead)
		}
	}
	expect("first", "root: no tracked previous point", -1)

	// The agent restarts: the cache recorded the bitmap durably with the
	// IDs and both are checked against the vault, so it is trusted.
	vm.write("disk0", 0x01, 3<<20, 64<<10)
	a = newAgent(cfg, v)
	expect("agent restarted", "", 64<<10)

	// QEMU restarts: its bitmaps are gone, so is every proof.
	vm.restart()
	vm.write("disk0", 0x02, 5<<20, 64<<10)
	expect("qemu restarted", "QEMU restarted", -1)
	vm.write("disk0", 0x03, 7<<20, 4096)
	expect("after the qemu restart", "", cs)

	// The disk grows: read whole, at the new size.
	vm.hmp("block_resize disk0 48M")
	vm.write("disk0", 0x04, 40<<20, 64<<10)
	expect("resized", "disk resized from 33554432 to 50331648 bytes", -1)
	if p, _ := v.FindPoint(context.Background(), "m1", "latest"); p.Disks[0].Size != 48<<20 {
		t.Fatalf("point has %d bytes, want 48 MiB", p.Disks[0].Size)
	}

	// A cycle fails after its instant (the export vanishes mid-read): the
	// new bitmap is merged back into the old, so the next point is still
	// incremental and has the writes of the failed interval.
	vm.write("disk0", 0x05, 9<<20, 64<<10)
	a.afterCapture = func() {
		vm.write("disk0", 0x06, 11<<20, 64<<10)
		var exports []map[string]any
		vm.mon.Execute(context.Background(), "query-block-exports", nil, &exports)
		for _, e := range exports {
			vm.mon.Execute(context.Background(), "block-export-del", map[string]any{"id": e["id"], "mode": "hard"}, nil)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := a.Cycle(context.Background(), "m1"); err == nil {
		t.Fatal("cycle with its export deleted succeeded")
	}
	a.afterCapture = nil
	expect("after a failed cycle", "", 2*64<<10)
	assertNoLeftovers(t, vm, 1)
}

// assertNoLeftovers: no fleecing node, job or export is left in QEMU, and
// exactly bitmaps hv- bitmaps exist (the one recording since the point).
func assertNoLeftovers(t *testing.T, vm *testVM, bitmaps int) {
	t.Helper()
	ctx := context.Background()
	var nodes, jobs, exports []map[string]any
	vm.mon.Execute(ctx, "query-named-block-nodes", map[string]any{"flat": true}, &nodes)
	vm.mon.Execute(ctx, "query-block-jobs", nil, &jobs)
	vm.mon.Execute(ctx, "query-block-exports", nil, &exports)
	for _, n := range nodes {
		if name, _ := n["node-name"].(string); strings.HasPrefix(name, hvPrefix) {
			t.Errorf("node %s left", name)
		}
	}
	if len(jobs)+len(exports) > 0 {
		t.Errorf("jobs %v, exports %v left", jobs, exports)
	}
	var blocks []struct {
		Inserted struct {
			Bitmaps []bitmapInfo `json:"dirty-bitmaps"`
		} `json:"inserted"`
	}
	vm.mon.Execute(ctx, "query-block", nil, &blocks)
	n := 0
	for _, b := range blocks {
		for _, bm := range b.Inserted.Bitmaps {
			if strings.HasPrefix(bm.Name, hvPrefix) {
				n++
			}
		}
	}
	if n != bitmaps {
		t.Errorf("%d hv- bitmaps, want %d", n, bitmaps)
	}
}

// TestQemuCrashedAgentLeftovers: an agent that died mid-cycle left an
// overlay, a job, an export, the NBD server and a disabled bitmap; the next
// cycle removes them, reads the whole disk (the old bitmap stopped
// recording) and is correct.
func TestQemuCrashedAgentLeftovers(t *testing.T) {
	dir := t.TempDir()
	vm := startVM(t, mkDisk(t, dir, "disk0", "qcow2", 16<<20))
	v := newVault(t, nil)
	cfg := qemuConfig(t, vm, "")
	a := newAgent(cfg, v)
	want := func() map[string][]byte { return map[string][]byte{"disk0": vm.content(0)} }
	qemuCycle(t, a, v, "first", want())

	ctx := context.Background()
	m := a.groups[0].machines[0]
	crashed, err := openQemu(ctx, m, m.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := crashed.begin(ctx, int(v.Config().ChunkSize)); err != nil {
		t.Fatal(err)
	}
	if err := crashed.export(ctx); err != nil {
		t.Fatal(err)
	}
	crashed.mon.Close() // and nothing else: the agent died here

	vm.write("disk0", 0x07, 1<<20, 64<<10)
	_, p := qemuCycle(t, a, v, "after the crash", want())
	if !strings.Contains(p.Tags["full_read"], "not recording") {
		t.Fatalf("tags %v", p.Tags)
	}
	assertNoLeftovers(t, vm, 1)
	vm.write("disk0", 0x08, 2<<20, 64<<10)
	if s, p := qemuCycle(t, a, v, "next", want()); s.LastCycle.ReadBytes > 64<<10 || p.Tags["full_read"] != "" {
		t.Fatalf("read %d, tags %v", s.LastCycle.ReadBytes, p.Tags)
	}
}
