package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/vault"
)

// TestRealVMProtectAndRecover protects a running Debian VM (SeaBIOS boot,
// re-addressed by cloud-init onto the primary network) whose PostgreSQL
// takes a stream of inserts from a client, with a real `haven agent`
// (provider qemu: fleecing and dirty bitmaps over QMP and NBD, the guest
// frozen through its guest agent on every other point). Then:
//   - a cycle of the quiet VM reads next to nothing, the first read the image's data;
//   - the newest app-consistent point taken under writes, restored with
//     `haven restore`, boots on the qemu driver (two NICs on two new
//     subnets) and on the ns driver, each holding every row acknowledged
//     before the point's time;
//   - a crash-consistent point taken under writes boots (ns driver), PostgreSQL
//     replays its WAL, and holds those rows too.
func TestRealVMProtectAndRecover(t *testing.T) {
	l := newRVLab(t)
	disk := l.disk()
	spec := l.spec("pg", []machine.Disk{{Name: "root", Path: disk}}, l.nic("eth0", "prim", 10))
	l.boot(l.qemu, spec)
	pgAddr := l.addr("prim", 10)
	w := startWriter(t, l.client["prim"], pgAddr, 1)

	a := l.startAgent(l.sock(spec, "qmp.sock"), l.sock(spec, "qga.sock"),
		"[{name: root, device: d0}]", "{frequency: 15s, app_frequency: 30s, rpo_alert: 1m}")
	begin := time.Now()
	first := a.firstAfter("first point", begin.Add(-time.Minute))
	if !strings.Contains(first.Tags["full_read"], "root: ") {
		t.Fatalf("first point %s: tags %v, want a full_read tag", first.ID, first.Tags)
	}
	// An app point and a crash point after the first, both under writes.
	app := a.waitPoint("an app-consistent point under writes", first.Time, func(p vault.Point) bool { return p.Consistency == "app" })
	crash := a.waitPoint("a crash-consistent point under writes", first.Time, func(p vault.Point) bool { return p.Consistency == "crash" })
	w.stop()
	stopped := time.Now()
	if n, err := w.errorsSeen(); n > 0 {
		t.Fatalf("%d inserts failed while the VM ran and was replicated: %v", n, err)
	}
	for _, p := range []vault.Point{app, crash} {
		if p.Tags["full_read"] != "" || p.Tags["guest_freeze_error"] != "" {
			t.Fatalf("point %s (%s): tags %v", p.ID, p.Consistency, p.Tags)
		}
		if len(w.before(p.Time)) == w.count() {
			t.Fatalf("point %s (%s): no row was acknowledged after it: not taken under writes", p.ID, p.Consistency)
		}
	}
	t.Logf("points under writes: first %s (%s), app %s, crash %s; %d rows acknowledged",
		first.ID, first.Consistency, app.ID, crash.ID, w.count())

	// Unchanged cycles read (almost) nothing; the first read the image.
	full := a.cycle(first.ID)
	if img := allocated(t, l.img.Path); full.ReadBytes < img*9/10 {
		t.Fatalf("first point read %s, the image holds %s of data", mib(full.ReadBytes), mib(img))
	}
	// Two scheduled cycles after the writer stopped: the first takes what
	// its last inserts changed, the second a whole period of a quiet VM
	// (PostgreSQL's and systemd's own background writes only).
	quiet := a.firstAfter("second point after the writer stopped", a.firstAfter("first point after the writer stopped", stopped).Time)
	qs := a.cycle(quiet.ID)
	size := fileSize(t, disk)
	t.Logf("read by the cycles: first %s (disk %s), quiet %s (%.3f %%), incremental %v, %s",
		mib(full.ReadBytes), mib(size), mib(qs.ReadBytes), 100*float64(qs.ReadBytes)/float64(size), qs.Incremental, quiet.Tags)
	if qs.ReadBytes*100 >= size || !qs.Incremental || quiet.Tags["full_read"] != "" {
		t.Fatalf("a quiet cycle read %d of %d bytes (incremental %v, tags %v): want under 1 %%, incremental",
			qs.ReadBytes, size, qs.Incremental, quiet.Tags)
	}

	// The app point restored twice, the crash point once; all boot at
	// once at the recovery site, each at its own address.
	onQemu := l.spec("appq", []machine.Disk{{Name: "root", Path: a.restore(app, "root", "appq")}},
		l.nic("eth0", "rec", 10), l.nic("eth1", "rec2", 10))
	onNS := l.spec("appn", []machine.Disk{{Name: "root", Path: a.restore(app, "root", "appn")}}, l.nic("eth0", "rec", 11))
	fromCrash := l.spec("crash", []machine.Disk{{Name: "root", Path: a.restore(crash, "root", "crash")}}, l.nic("eth0", "rec", 12))
	ms := []machine.Instance{l.start(l.qemu, onQemu), l.start(l.ns, onNS), l.start(l.ns, fromCrash)}
	for _, m := range ms {
		l.ready(m)
	}
	checkAcked(t, w, app.Time, l.client["rec"], l.addr("rec", 10))
	checkAcked(t, w, app.Time, l.client["rec2"], l.addr("rec2", 10))
	checkAcked(t, w, app.Time, l.client["rec"], l.addr("rec", 11))
	checkAcked(t, w, crash.Time, l.client["rec"], l.addr("rec", 12))
	l.recoveredFromCrash(ms[2])
	if got := l.defaultRoutes(onQemu); got != "10.72.0.1 eth0" {
		t.Errorf("recovered VM's default routes %q, want only via rec's gateway on eth0", got)
	}
}
