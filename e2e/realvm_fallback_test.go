package e2e

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/vault"
)

// TestRealVMFallbacks protects a running Debian VM with a root and a data
// disk while its PostgreSQL takes inserts, and checks that what would
// make the dirty bitmaps lie is never trusted, and what keeps them honest
// keeps them in use:
//   - QEMU killed with SIGKILL and the VM booted again on the same disks:
//     the next point reads both disks whole, tagged why, and restores to
//     a disk whose PostgreSQL holds every row acknowledged before it;
//   - the agent restarted: the next point stays incremental (the trust
//     rule of docs/agent.md) and a point of the paused VM restores
//     bit-exact;
//   - the data disk grown with QMP block_resize: the next point reads it
//     whole at its new size, tagged, and restores bit-exact, as does the
//     point after the guest wrote into the new space.
func TestRealVMFallbacks(t *testing.T) {
	l := newRVLab(t)
	data := dataDisk(t, l.dir, 64<<20)
	spec := l.spec("pg", []machine.Disk{{Name: "root", Path: l.disk()}, {Name: "data", Path: data}}, l.nic("eth0", "prim", 10))
	vm := l.boot(l.qemu, spec)
	w := startWriter(t, l.client["prim"], l.addr("prim", 10), 1)
	a := l.startAgent(l.sock(spec, "qmp.sock"), l.sock(spec, "qga.sock"),
		"[{name: root, device: d0}, {name: data, device: d1}]", "{frequency: 15s, app_frequency: 1h, rpo_alert: 1m}")
	first := a.firstAfter("first point", time.Time{})
	t.Logf("first point %s: %v", first.ID, first.Tags)

	// (a) QEMU dies; the same disks boot again.
	l.killQEMU(vm)
	killed := time.Now()
	vm = l.boot(l.qemu, spec)
	p := a.firstAfter("first point after QEMU's restart", killed)
	for _, d := range []string{"root", "data"} {
		if tag := p.Tags["full_read"]; !strings.Contains(tag, d+": dirty bitmap hv") || !strings.Contains(tag, "QEMU restarted since the previous point") {
			t.Fatalf("point %s after QEMU restarted: full_read %q, want both disks read whole because QEMU restarted", p.ID, tag)
		}
	}
	if st, img := a.cycle(p.ID), allocated(t, l.img.Path); st.ReadBytes < img*9/10 {
		t.Fatalf("point %s after QEMU restarted read %s; the image alone holds %s", p.ID, mib(st.ReadBytes), mib(img))
	}
	m := l.boot(l.ns, l.spec("aftercrash", []machine.Disk{{Name: "root", Path: a.restore(p, "root", "aftercrash")}}, l.nic("eth0", "rec", 11)))
	checkAcked(t, w, p.Time, l.client["rec"], l.addr("rec", 11))
	l.recoveredFromCrash(m)
	stopNow(t, m)

	// (b) The agent restarts; QEMU and its bitmaps live on.
	restarted := time.Now()
	a.restart()
	p = a.firstAfter("first point after the agent's restart", restarted)
	if st := a.cycle(p.ID); p.Tags["full_read"] != "" || !st.Incremental || st.ReadBytes*20 > st.DiskBytes {
		t.Fatalf("point %s after the agent restarted: tags %v, incremental %v, read %s of %s: want incremental",
			p.ID, p.Tags, st.Incremental, mib(st.ReadBytes), mib(st.DiskBytes))
	}
	a.pausedPoint(l, spec, "after the agent's restart", func(p vault.Point) {
		if p.Tags["full_read"] != "" {
			t.Fatalf("point %s: full_read %q", p.ID, p.Tags["full_read"])
		}
	})

	// (c) The data disk grows by 32 MiB while the VM is paused.
	const grown = 96 << 20
	// Taken once the disk grew: a scheduled cycle that began before the
	// resize (and so rightly saw no change of size) is not the one asked
	// for.
	var resized time.Time
	a.pausedPoint(l, spec, "after the resize", func(p vault.Point) {
		if d, err := p.Disk("data"); err != nil || d.Size != grown {
			t.Fatalf("point %s: data disk %+v %v, want %d bytes", p.ID, d, err, grown)
		}
	}, func() {
		l.monitor(spec, "block_resize", map[string]any{"device": "d1", "size": grown})
		resized = time.Now()
	})
	p = a.firstAfter("first point after the resize", resized)
	if tag := p.Tags["full_read"]; !strings.Contains(tag, "data: disk resized from 67108864 to 100663296 bytes") || strings.Contains(tag, "root:") {
		t.Fatalf("point %s after the resize: full_read %q, want the data disk (only) read whole because it grew", p.ID, tag)
	}
	// The guest sees the new size and writes into the new space.
	l.guestExec(spec, "/bin/sh", "-c", fmt.Sprintf(`set -e
for i in $(seq 100); do for d in /dev/vd?; do [ "$(blockdev --getsize64 $d)" = %d ] && break 2; done; sleep 0.1; done
dd if=/dev/urandom of=$d bs=1M seek=80 count=8 oflag=direct conv=notrunc,fsync 2>&1`, grown))
	a.pausedPoint(l, spec, "after the guest wrote into the new space", func(vault.Point) {})
	if n, err := w.errorsSeen(); n == 0 {
		t.Fatalf("the writer never failed, yet QEMU was killed under it (last error %v)", err)
	}
}

// pausedPoint pauses the VM (QMP stop: QEMU drains and flushes its I/O,
// so the raw files are then exactly what the guest sees), runs during,
// takes the reference sums of both disks and a point, and resumes the VM.
// That point, and any scheduled one taken meanwhile, must restore
// bit-exact to the reference; check sees each.
func (a *rvAgent) pausedPoint(l *rvLab, spec machine.Spec, what string, check func(vault.Point), during ...func()) {
	t := a.t
	t.Helper()
	l.monitor(spec, "stop", nil)
	for _, f := range during {
		f()
	}
	from := time.Now()
	want := map[string]string{}
	for _, d := range spec.Disks {
		want[d.Name] = fileSHA(t, d.Path)
	}
	mine := a.snapshot()
	to := time.Now()
	l.monitor(spec, "cont", nil)
	for _, p := range a.points() {
		if p.Time.Before(from) || p.Time.After(to) {
			continue
		}
		check(p)
		for _, d := range spec.Disks {
			out := a.restore(p, d.Name, "paused-"+d.Name)
			if got := fileSHA(t, out); got != want[d.Name] {
				t.Fatalf("%s: disk %s of point %s restores to sha256 %s, the paused VM's disk is %s", what, d.Name, p.ID, got, want[d.Name])
			}
			if fileSize(t, out) != fileSize(t, d.Path) {
				t.Fatalf("%s: disk %s of point %s restores to %d bytes, the VM's is %d", what, d.Name, p.ID, fileSize(t, out), fileSize(t, d.Path))
			}
			os.Remove(out)
		}
		t.Logf("%s: point %s of the paused VM restores bit-exact (mine: %v; tags %v)", what, p.ID, p.ID == mine.ID, p.Tags)
	}
}

// dataDisk is a sparse raw disk of size with random data at a few places.
func dataDisk(t *testing.T, dir string, size int64) string {
	t.Helper()
	path := filepath.Join(dir, "data.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	blk := make([]byte, 1<<20)
	for off := int64(0); off < size; off += size / 4 {
		rand.Read(blk)
		if _, err := f.WriteAt(blk, off); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// stopNow stops a machine that has served its purpose (the test's
// cleanup would too, but it holds CPU meanwhile).
func stopNow(t *testing.T, m machine.Instance) {
	t.Helper()
	if err := m.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
}
