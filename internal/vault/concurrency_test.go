package vault

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob/blobtest"
)

func TestConcurrentSnapshots(t *testing.T) {
	ctx := context.Background()
	_, be := testVault(t)
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	imgs := make([]string, 4)
	for i := range imgs {
		imgs[i] = filepath.Join(dir, fmt.Sprintf("d%d.img", i))
		// Two machines, two snapshots each, sharing some data.
		writeImage(t, imgs[i], uint64(i%2), segment{"random", 2 << 20}, segment{"text", 1 << 20})
		writeImage(t, imgs[i], uint64(100+i), segment{"hole", 3 << 20}, segment{"random", 512 << 10})
	}
	for i := range imgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := Open(ctx, be, "secret", fastKDF)
			if err != nil {
				errs[i] = err
				return
			}
			defer v.Close()
			_, _, errs[i] = v.Snapshot(ctx, SnapshotOptions{Machine: fmt.Sprintf("m%d", i%2), Disks: []DiskSource{{Name: "root", Path: imgs[i]}}})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("snapshot %d: %v", i, err)
		}
	}
	v, _ := Open(ctx, be, "secret", fastKDF)
	defer v.Close()
	points, _ := v.Points(ctx, "")
	if len(points) != 4 {
		t.Fatalf("%d points, want 4", len(points))
	}
	if rep, err := v.Check(ctx, CheckOptions{ReadData: true}); err != nil || rep.Err() != nil {
		t.Fatalf("check: %v %v", err, rep.Err())
	}
	sums := map[string]bool{}
	for _, img := range imgs {
		sums[sha(t, img)] = true
	}
	for _, p := range points {
		out := filepath.Join(dir, "out-"+p.ID)
		restore(t, v, p.Machine, p.ID, "root", out)
		if !sums[sha(t, out)] {
			t.Fatalf("point %s restores to an image that was never snapshotted", p.ID)
		}
	}
}

// afterGrace is a prune time at which every existing mark is due.
func afterGrace() time.Time { return time.Now().Add(deleteGrace() + time.Minute) }

// TestPruneDuringSnapshot holds a snapshot that dedupes against an old point
// while prune forgets that point and marks its data: the data must survive
// a prune after the grace while the snapshot still runs, and be unmarked
// once the snapshot's point uses it.
func TestPruneDuringSnapshot(t *testing.T) {
	ctx := context.Background()
	v, be := testVault(t)
	dir := t.TempDir()
	shared := filepath.Join(dir, "shared.img")
	other := filepath.Join(dir, "other.img")
	writeImage(t, shared, 20, segment{"random", 4 << 20})
	writeImage(t, other, 21, segment{"random", 1 << 20})
	snap(t, v, "old", DiskSource{Name: "root", Path: shared}) // will be forgotten
	snap(t, v, "old", DiskSource{Name: "root", Path: other})  // newest of "old": kept

	paused, resume, done := pausedSnapshot(t, blobtest.NewFault(be), "new", shared)
	<-paused
	rep, err := v.Prune(ctx, PruneOptions{Retention: Retention{Last: 1}, LockWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Forgotten != 1 || rep.MarkedPacks == 0 || rep.DeletedPacks != 0 {
		t.Fatalf("prune during snapshot: forgot %d, marked %d, deleted %d packs", rep.Forgotten, rep.MarkedPacks, rep.DeletedPacks)
	}
	rep, err = v.Prune(ctx, PruneOptions{Retention: Retention{Last: 1}, Now: afterGrace()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.DeletedPacks != 0 || !strings.Contains(rep.Deferred, "finishes") {
		t.Fatalf("prune after the grace deleted %d packs while a writer older than the mark runs (deferred %q)", rep.DeletedPacks, rep.Deferred)
	}
	close(resume)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rep, err = v.Prune(ctx, PruneOptions{Retention: Retention{Last: 1}, Now: afterGrace()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Unmarked == 0 {
		t.Fatalf("marked packs the new point uses were not unmarked: %+v", rep)
	}
	checkAndRestoreAll(t, v)
	out := filepath.Join(dir, "out.img")
	restore(t, v, "new", "latest", "root", out)
	if sha(t, out) != sha(t, shared) {
		t.Fatal("point taken during prune does not restore bit-exact")
	}
}

// TestWriterAfterMarkStoresAgain: a snapshot that starts after data was
// marked does not reference the marked packs (it stores the data again), so
// a prune may delete them while that snapshot is still running.
func TestWriterAfterMarkStoresAgain(t *testing.T) {
	ctx := context.Background()
	v, be := testVault(t)
	dir := t.TempDir()
	shared, other := filepath.Join(dir, "shared.img"), filepath.Join(dir, "other.img")
	writeImage(t, shared, 22, segment{"random", 3 << 20})
	writeImage(t, other, 23, segment{"random", 1 << 20})
	snap(t, v, "old", DiskSource{Name: "root", Path: shared})
	snap(t, v, "old", DiskSource{Name: "root", Path: other})
	shortLease(t)
	rep, err := v.Prune(ctx, PruneOptions{Retention: Retention{Last: 1}})
	if err != nil || rep.MarkedPacks == 0 {
		t.Fatalf("prune: %v %+v", err, rep)
	}
	// Lock creation times within the allowed clock skew of the mark count
	// as older than the mark.
	time.Sleep(markVisible() + LockRefresh)
	paused, resume, done := pausedSnapshot(t, blobtest.NewFault(be), "new", shared)
	<-paused
	rep, err = v.Prune(ctx, PruneOptions{Retention: Retention{Last: 1}, Now: afterGrace()})
	if err != nil || rep.DeletedPacks == 0 {
		t.Fatalf("prune after the grace with only a newer writer running: %v %+v", err, rep)
	}
	close(resume)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkAndRestoreAll(t, v)
	out := filepath.Join(dir, "out.img")
	restore(t, v, "new", "latest", "root", out)
	if sha(t, out) != sha(t, shared) {
		t.Fatal("point taken after the mark does not restore bit-exact")
	}
}

func TestPruneCollects(t *testing.T) {
	ctx := context.Background()
	v, _ := testVault(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "d.img")
	for i := range 4 {
		writeImage(t, img, uint64(30+i), segment{"random", 1 << 20})
		snap(t, v, "web", DiskSource{Name: "root", Path: img})
	}
	before, _ := v.Stats(ctx)
	dry, err := v.Prune(ctx, PruneOptions{Retention: Retention{Last: 2}, DryRun: true})
	if err != nil || dry.Forgotten != 0 {
		t.Fatalf("dry run: %v %+v", err, dry)
	}
	removed := 0
	for _, d := range dry.Decisions {
		if !d.Keep {
			removed++
		}
	}
	if removed != 2 {
		t.Fatalf("dry run would remove %d points, want 2", removed)
	}
	rep, err := v.Prune(ctx, PruneOptions{Retention: Retention{Last: 2}})
	if err != nil || rep.Forgotten != 2 || rep.MarkedPacks == 0 || rep.DeletedPacks != 0 {
		t.Fatalf("prune (marks, deletes nothing yet): %v %+v", err, rep)
	}
	marked := rep.MarkedPacks
	rep, err = v.Prune(ctx, PruneOptions{Retention: Retention{Last: 2}, Now: afterGrace()})
	if err != nil || rep.DeletedPacks != marked || rep.MarkedPacks != 0 {
		t.Fatalf("prune after the grace: %v %+v, want %d packs deleted", err, rep, marked)
	}
	after, _ := v.Stats(ctx)
	if after.StoredBytes >= before.StoredBytes*3/4 || after.Points != 2 {
		t.Fatalf("stored %d -> %d bytes, %d points", before.StoredBytes, after.StoredBytes, after.Points)
	}
	if rep, err := v.Check(ctx, CheckOptions{ReadData: true}); err != nil || rep.Err() != nil || rep.UnreferencedPacks != 0 {
		t.Fatalf("check after prune: %v %v %+v", err, rep.Err(), rep)
	}
	out := filepath.Join(dir, "out.img")
	restore(t, v, "web", "latest", "root", out)
	if sha(t, out) != sha(t, img) {
		t.Fatal("latest point damaged by prune")
	}
}

func TestRetention(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.Local)
	var ps []*Point
	for h := range 72 { // a point every hour for three days
		ps = append(ps, &Point{Machine: "m", ID: fmt.Sprint(h), Time: now.Add(-time.Duration(h) * time.Hour)})
	}
	count := func(r Retention) int {
		n := 0
		for _, d := range r.Apply(ps, now) {
			if d.Keep {
				n++
			}
		}
		return n
	}
	for _, c := range []struct {
		r    Retention
		want int
	}{
		{Retention{Last: 5}, 5},
		{Retention{Within: 10*time.Hour + time.Minute}, 11},
		{Retention{Hourly: 24}, 24},
		{Retention{Daily: 7}, 4},          // 12:00 today, and three earlier calendar days
		{Retention{Last: 3, Daily: 2}, 4}, // newest three + one from yesterday
	} {
		if got := count(c.r); got != c.want {
			t.Errorf("%+v keeps %d, want %d", c.r, got, c.want)
		}
	}
}

// TestPruneRepacksMostlyUnusedPacks: a pack that the remaining points use
// only a little is rewritten with just the used blobs.
func TestPruneRepacksMostlyUnusedPacks(t *testing.T) {
	ctx := context.Background()
	v, _ := testVault(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "d.img")
	writeImage(t, img, 50, segment{"random", 4 << 20}, segment{"text", 4 << 20})
	snap(t, v, "web", DiskSource{Name: "root", Path: img})
	writeImage(t, img, 51, segment{"random", 4 << 20}) // new data, same text
	snap(t, v, "web", DiskSource{Name: "root", Path: img})
	before, _ := v.Stats(ctx)

	rep, err := v.Prune(ctx, PruneOptions{Retention: Retention{Last: 1}, RepackUnused: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	if rep.RepackedPacks != 1 {
		t.Fatalf("repacked %d packs, want 1: %+v", rep.RepackedPacks, rep)
	}
	// The repacked pack is marked like unused ones, and goes after the grace.
	if rep, err = v.Prune(ctx, PruneOptions{Retention: Retention{Last: 1}, RepackUnused: 0.5, Now: afterGrace()}); err != nil {
		t.Fatal(err)
	}
	if rep.RepackedPacks != 0 || rep.DeletedPacks == 0 {
		t.Fatalf("second prune: %+v, want the marked packs deleted and nothing repacked again", rep)
	}
	after, _ := v.Stats(ctx)
	if freed := before.StoredBytes - after.StoredBytes; freed < 3<<20 {
		t.Fatalf("repack freed %d bytes, want the ~4 MiB only the forgotten point used", freed)
	}
	chk, err := v.Check(ctx, CheckOptions{ReadData: true})
	if err != nil || chk.Err() != nil || chk.UnreferencedPacks != 0 {
		t.Fatalf("check after repack: %v %v %+v", err, chk.Err(), chk)
	}
	out := filepath.Join(dir, "out.img")
	restore(t, v, "web", "latest", "root", out)
	if sha(t, out) != sha(t, img) {
		t.Fatal("point damaged by repack")
	}
}
