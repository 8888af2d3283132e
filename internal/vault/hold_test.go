package vault

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// TestHoldKeepsLastCleanWhileOpen: the last clean point of an open
// encryption alert survives prunes that would remove it, is what
// "last-clean" selects, and after the operator closes the alert retention
// governs it again.
func TestHoldKeepsLastCleanWhileOpen(t *testing.T) {
	v, _ := testVault(t)
	ctx := context.Background()
	img := filepath.Join(t.TempDir(), "d.img")
	base := time.Now().Add(-48 * time.Hour)
	var ps []*Point
	for i := range 5 {
		writeImage(t, img, uint64(40+i), segment{"random", 64 << 10})
		p, _, err := v.Snapshot(ctx, SnapshotOptions{Machine: "db", Time: base.Add(time.Duration(i) * time.Hour),
			Disks: []DiskSource{{Name: "root", Path: img}}})
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	if _, err := v.FindPoint(ctx, "db", LastClean); !errors.Is(err, ErrNoPoint) {
		t.Fatalf("last-clean without an alert: %v, want ErrNoPoint", err)
	}
	h := Hold{Machine: "db", Disk: "root", FirstSuspect: ps[2].ID, SuspectTime: ps[2].Time, LastClean: ps[1].ID,
		Detected: time.Now().UTC(), Reason: "test"}
	if err := v.PutHold(ctx, h); err != nil {
		t.Fatal(err)
	}
	if p, err := v.FindPoint(ctx, "db", LastClean); err != nil || p.ID != ps[1].ID {
		t.Fatalf("last-clean: %v %v, want %s", p, err, ps[1].ID)
	}
	rep, err := v.Prune(ctx, PruneOptions{Retention: Retention{Last: 1}})
	if err != nil {
		t.Fatal(err)
	}
	left, _ := v.Points(ctx, "db")
	if rep.Forgotten != 3 || len(left) != 2 || left[0].ID != ps[1].ID || left[1].ID != ps[4].ID {
		t.Fatalf("prune with an open alert kept %v (forgot %d); want the last clean %s and the newest", ids(left), rep.Forgotten, ps[1].ID)
	}
	restore(t, v, "db", LastClean, "root", filepath.Join(t.TempDir(), "back.img"))
	if _, err := v.CloseHold(ctx, "db", "nope", ""); !errors.Is(err, ErrNoHold) {
		t.Fatalf("closing an unknown alert: %v", err)
	}
	closed, err := v.CloseHold(ctx, "db", ps[2].ID[:10], "restored, primary rebuilt")
	if err != nil || closed.Open() || closed.Note != "restored, primary rebuilt" {
		t.Fatalf("close: %+v %v", closed, err)
	}
	hs, err := v.Holds(ctx, "")
	if err != nil || len(hs) != 1 || hs[0].Open() || hs[0].LastClean != ps[1].ID {
		t.Fatalf("holds after close: %+v %v", hs, err)
	}
	if _, err := v.Prune(ctx, PruneOptions{Retention: Retention{Last: 1}}); err != nil {
		t.Fatal(err)
	}
	if left, _ = v.Points(ctx, "db"); len(left) != 1 || left[0].ID != ps[4].ID {
		t.Fatalf("after close, prune left %v; want only the newest", ids(left))
	}
}
