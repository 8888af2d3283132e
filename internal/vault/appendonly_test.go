package vault

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob"
)

// TestWriterOnlyAppends: everything an agent does to a vault (snapshots
// long enough for lock refreshes and incremental index writes, a retried
// snapshot, adding a key, releasing a preserved point twice, catalog
// versions) goes through storage that refuses every delete and overwrite,
// and succeeds. Destructive work (removing a key, prune) is refused there
// and works with the admin's full backend, which then also removes the
// writers' lock objects.
func TestWriterOnlyAppends(t *testing.T) {
	ctx := context.Background()
	admin, be := testVault(t)
	l, r := LockLease, LockRefresh
	LockLease, LockRefresh = 3*time.Second, 50*time.Millisecond
	t.Cleanup(func() { LockLease, LockRefresh = l, r })
	v, err := Open(ctx, blob.NewAppendOnly(be), "secret", fastKDF)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	img := filepath.Join(t.TempDir(), "d.img")
	for i := range 3 {
		writeImage(t, img, uint64(300+i), segment{"random", 1 << 20}, segment{"text", 512 << 10})
		slow := func(int64) { time.Sleep(3 * time.Millisecond) } // several lock refreshes per snapshot
		tags := map[string]string{}
		if i == 0 {
			tags[PreservedTag] = "true"
		}
		if _, _, err := v.Snapshot(ctx, SnapshotOptions{Machine: "db", Disks: []DiskSource{{Name: "root", Path: img}},
			Progress: slow, Tags: tags}); err != nil {
			t.Fatalf("snapshot %d through append-only storage: %v", i, err)
		}
	}
	points, err := v.Points(ctx, "db")
	if err != nil || len(points) != 3 {
		t.Fatalf("points: %d %v", len(points), err)
	}
	for range 2 {
		if _, err := v.ReleasePoint(ctx, "db", points[0].ID); err != nil {
			t.Fatalf("release through append-only storage: %v", err)
		}
	}
	for seq := uint64(1); seq <= 2; seq++ {
		if err := v.WriteCatalog(ctx, "server", seq, []byte("state")); err != nil {
			t.Fatalf("catalog version %d: %v", seq, err)
		}
	}
	id, err := v.AddKey(ctx, "second")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.RemoveKey(ctx, id); !errors.Is(err, blob.ErrAppendOnly) {
		t.Errorf("remove key through append-only storage = %v, want ErrAppendOnly", err)
	}
	if _, err := v.Prune(ctx, PruneOptions{Retention: Retention{Last: 1}}); !errors.Is(err, blob.ErrAppendOnly) {
		t.Errorf("prune through append-only storage = %v, want ErrAppendOnly", err)
	}
	lockObjects, _ := listNames(ctx, be, locksPrefix)
	// Each lock leaves at least its first write and its release; more
	// writes only when a refresh fell inside a snapshot (machine speed).
	if len(lockObjects) < 2*3 {
		t.Fatalf("%d lock objects after 3 snapshots with refreshes: %v", len(lockObjects), lockObjects)
	}
	rep, err := admin.Prune(ctx, PruneOptions{Retention: Retention{Last: 1}})
	if err != nil || rep.Forgotten != 2 {
		t.Fatalf("admin prune: %+v %v", rep, err)
	}
	left, _ := listNames(ctx, be, locksPrefix)
	for _, n := range left {
		if !strings.HasPrefix(n, locksPrefix) || strings.Count(n, "/") != 2 {
			t.Errorf("unexpected lock object %s", n)
		}
	}
	if rep.DeletedLocks < len(lockObjects)-1 {
		t.Errorf("prune deleted %d of %d writer lock objects (left %v)", rep.DeletedLocks, len(lockObjects), left)
	}
	checkAndRestoreAll(t, admin)
}

// TestReleasedLockFreesAtOnce: a release object ends a lock for readers of
// this version at once, while a lock written by an older Haven (one object,
// rewritten in place) still counts until it expires.
func TestReleasedLockFreesAtOnce(t *testing.T) {
	ctx := context.Background()
	v, be := testVault(t)
	l, err := v.acquire(ctx, lockExclusive, 0)
	if err != nil {
		t.Fatal(err)
	}
	if live, _ := v.liveLocks(ctx, ""); len(live) != 1 {
		t.Fatalf("live locks while held: %+v", live)
	}
	l.Release()
	if live, _ := v.liveLocks(ctx, ""); len(live) != 0 {
		t.Fatalf("live locks after release: %+v", live)
	}
	legacy := lockFile{Kind: lockExclusive, Holder: "old", Created: time.Now().UTC(), Expires: time.Now().Add(LockLease).UTC()}
	data, _ := encodeSigned(&legacy, nil)
	if err := be.Put(ctx, locksPrefix+randomHex(16), data); err != nil {
		t.Fatal(err)
	}
	if _, err := v.acquire(ctx, lockExclusive, 0); !errors.Is(err, ErrLocked) {
		t.Fatalf("exclusive lock beside a live legacy one: %v, want ErrLocked", err)
	}
}
