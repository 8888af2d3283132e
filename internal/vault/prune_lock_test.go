package vault

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob/s3blob"
	"github.com/haven-dr/haven/internal/testenv"
)

// TestPruneWaitsForObjectLock: on a real S3 server enforcing Object Lock
// (versitygw, GOVERNANCE, 5 s), a prune with the admin key before the
// locks expire deletes nothing, carries on and reports what the storage
// retained; both points stay and restore. After expiry a prune forgets the
// old point, and one after the deletion grace deletes its packs. No lock is
// ever bypassed: s3blob sends no bypass header, the server decides.
func TestPruneWaitsForObjectLock(t *testing.T) {
	const retain = 5 * time.Second
	ctx := context.Background()
	l := testenv.LockedS3Bucket(t, s3blob.LockGovernance, retain)
	be, err := s3blob.New(l.Config(l.Admin))
	if err != nil {
		t.Fatal(err)
	}
	v, err := Init(ctx, be, "secret", fastKDF)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	dir := t.TempDir()
	var points []*Point
	for i := range 2 {
		img := filepath.Join(dir, "disk.img")
		writeImage(t, img, uint64(i+1), segment{"random", 3 << 20})
		p, _ := snap(t, v, "m", DiskSource{Name: "root", Path: img})
		points = append(points, p)
	}
	written := time.Now()
	keepLast := PruneOptions{Retention: Retention{Last: 1}, Now: afterGrace()}

	rep, err := v.Prune(ctx, keepLast)
	if err != nil {
		t.Fatalf("prune under lock: %v", err)
	}
	old := v.pointName("m", points[0].ID)
	if rep.Forgotten != 0 || rep.Retained == 0 || !slices.Contains(rep.RetainedNames, old) {
		t.Fatalf("prune under lock: forgot %d, retained %d %v; want the old point retained", rep.Forgotten, rep.Retained, rep.RetainedNames)
	}
	if ps, err := v.Points(ctx, "m"); err != nil || len(ps) != 2 {
		t.Fatalf("points after prune under lock: %d, %v", len(ps), err)
	}
	checkAndRestoreAll(t, v)

	// The server, not this clock, decides; the sleep only makes it likely
	// that the locks have run out (retain-until has whole seconds).
	time.Sleep(time.Until(written.Add(retain + 1500*time.Millisecond)))
	if rep, err = v.Prune(ctx, keepLast); err != nil {
		t.Fatalf("prune after expiry: %v", err)
	}
	if rep.Forgotten != 1 || rep.MarkedPacks == 0 || slices.Contains(rep.RetainedNames, old) {
		t.Fatalf("prune after expiry: forgot %d, marked %d packs, retained %v", rep.Forgotten, rep.MarkedPacks, rep.RetainedNames)
	}
	compacted := time.Now()
	// That prune also compacted the index into a new object, locked now:
	// it still names the old point's packs, so they must stay until it can
	// be deleted (else it would send snapshots to dedupe against data that
	// is gone). Marks carry the prune's Now: the next one is a grace later.
	later := keepLast
	later.Now = keepLast.Now.Add(deleteGrace() + time.Minute)
	if rep, err = v.Prune(ctx, later); err != nil {
		t.Fatalf("prune after the grace, index locked: %v", err)
	}
	if rep.DeletedPacks != 0 || !slices.ContainsFunc(rep.RetainedNames, func(n string) bool { return strings.HasPrefix(n, indexPrefix) }) {
		t.Fatalf("prune while the index naming the packs is locked: deleted %d packs, retained %v", rep.DeletedPacks, rep.RetainedNames)
	}
	checkAndRestoreAll(t, v)
	time.Sleep(time.Until(compacted.Add(retain + 1500*time.Millisecond)))
	if rep, err = v.Prune(ctx, later); err != nil {
		t.Fatalf("prune after the grace: %v", err)
	}
	if rep.DeletedPacks == 0 {
		t.Fatalf("prune after the grace and expiry deleted no pack: %+v", rep)
	}
	if ps, err := v.Points(ctx, "m"); err != nil || len(ps) != 1 || ps[0].ID != points[1].ID {
		t.Fatalf("points after prune: %v, %v", ps, err)
	}
	checkAndRestoreAll(t, v)
}
