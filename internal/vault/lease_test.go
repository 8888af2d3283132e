package vault

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob/blobtest"
)

// shortLease makes leases short enough for real-time tests, yet long
// enough (2.5 s trusted after each refresh) that a loaded machine does
// not lose a lease the test expects to hold.
func shortLease(t *testing.T) {
	t.Helper()
	l, r := LockLease, LockRefresh
	LockLease, LockRefresh = 3*time.Second, 500*time.Millisecond
	t.Cleanup(func() { LockLease, LockRefresh = l, r })
}

// waitNoLiveLocks polls until every lock other than self has expired.
func waitNoLiveLocks(t *testing.T, v *Vault) {
	t.Helper()
	for i := 0; ; i++ {
		live, err := v.liveLocks(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		if len(live) == 0 {
			return
		}
		if i > 1000 {
			t.Fatalf("locks still live: %+v", live)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pausedSnapshot starts a snapshot on be that stops after reading its first
// chunk until resume is closed; done gets its result.
func pausedSnapshot(t *testing.T, be *blobtest.Fault, machine, img string) (paused, resume chan struct{}, done chan error) {
	t.Helper()
	paused, resume, done = make(chan struct{}), make(chan struct{}), make(chan error, 1)
	var once sync.Once
	go func() {
		v, err := Open(context.Background(), be, "secret", fastKDF)
		if err != nil {
			close(paused)
			done <- err
			return
		}
		defer v.Close()
		_, _, err = v.Snapshot(context.Background(), SnapshotOptions{Machine: machine, Disks: []DiskSource{{Name: "root", Path: img}},
			Progress: func(int64) { once.Do(func() { close(paused); <-resume }) }})
		done <- err
	}()
	return paused, resume, done
}

// checkAndRestoreAll fails the test unless check --read-data is clean and
// every point restores.
func checkAndRestoreAll(t *testing.T, v *Vault) {
	t.Helper()
	ctx := context.Background()
	if rep, err := v.Check(ctx, CheckOptions{ReadData: true}); err != nil || rep.Err() != nil {
		t.Fatalf("check: %v %v", err, rep.Err())
	}
	points, err := v.Points(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range points {
		restore(t, v, p.Machine, p.ID, "root", filepath.Join(t.TempDir(), "out.img"))
	}
}

// TestLapsedWriterCannotCommit is the reported bug: a snapshot whose lock
// refreshes fail loses its lease; a prune then sees no live writer and
// collects the data of a forgotten point that the snapshot deduplicated
// against. The snapshot must refuse to commit rather than write a point
// that references deleted data.
func TestLapsedWriterCannotCommit(t *testing.T) {
	ctx := context.Background()
	v, be := testVault(t)
	dir := t.TempDir()
	shared, other := filepath.Join(dir, "shared.img"), filepath.Join(dir, "other.img")
	writeImage(t, shared, 20, segment{"random", 4 << 20})
	writeImage(t, other, 21, segment{"random", 1 << 20})
	snap(t, v, "old", DiskSource{Name: "root", Path: shared}) // forgotten by the prune
	snap(t, v, "old", DiskSource{Name: "root", Path: other})
	shortLease(t)

	f := blobtest.NewFault(be)
	paused, resume, done := pausedSnapshot(t, f, "new", shared)
	<-paused
	f.Set(blobtest.FailWhen(func(op, name string) bool { return op == "put" && strings.HasPrefix(name, locksPrefix) }))
	waitNoLiveLocks(t, v)
	if _, err := v.Prune(ctx, PruneOptions{Retention: Retention{Last: 1}, LockWait: time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Prune(ctx, PruneOptions{Retention: Retention{Last: 1}, Now: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	f.Set(nil)
	close(resume)
	if err := <-done; !errors.Is(err, ErrLeaseLost) {
		t.Errorf("snapshot after its lease lapsed: err = %v, want ErrLeaseLost", err)
	}
	checkAndRestoreAll(t, v)
}

// TestLeaseLapsesForGood: once refreshes have failed for the trusted
// window, guarded writes are refused, and a refresh that succeeds later
// does not revive the lease (a prune may have acted on its absence).
func TestLeaseLapsesForGood(t *testing.T) {
	ctx := context.Background()
	_, be := testVault(t)
	shortLease(t)
	f := blobtest.NewFault(be)
	v, err := Open(ctx, f, "secret", fastKDF)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	l, err := v.acquire(ctx, lockShared, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	wrote := false
	write := func(context.Context) error { wrote = true; return nil }
	if err := l.guarded(ctx, write); err != nil || !wrote {
		t.Fatalf("guarded write under a fresh lease: %v (ran: %v)", err, wrote)
	}
	f.Set(blobtest.FailWhen(func(op, name string) bool { return op == "put" && strings.HasPrefix(name, l.name+"/") }))
	for l.check() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	f.Set(nil)
	if err := l.write(ctx); err != nil {
		t.Fatal(err)
	}
	wrote = false
	if err := l.guarded(ctx, write); !errors.Is(err, ErrLeaseLost) || wrote {
		t.Fatalf("guarded write after the lease lapsed and a late refresh: err %v, ran %v", err, wrote)
	}
}

// TestDamagedMarkIsLoud: a damaged deletion mark is reported by check and
// stops snapshots (which could otherwise dedupe against a pack about to be
// deleted) instead of being skipped.
func TestDamagedMarkIsLoud(t *testing.T) {
	ctx := context.Background()
	v, be := testVault(t)
	img := filepath.Join(t.TempDir(), "d.img")
	for i := range 2 {
		writeImage(t, img, uint64(60+i), segment{"random", 1 << 20})
		snap(t, v, "web", DiskSource{Name: "root", Path: img})
	}
	if rep, err := v.Prune(ctx, PruneOptions{Retention: Retention{Last: 1}}); err != nil || rep.MarkedPacks == 0 {
		t.Fatalf("prune: %v %+v", err, rep)
	}
	names, err := listNames(ctx, be, garbagePrefix)
	if err != nil || len(names) != 1 {
		t.Fatalf("marks: %v %v", names, err)
	}
	data, _ := be.Get(ctx, names[0], 0, -1)
	data[len(data)/2] ^= 1
	if err := be.Put(ctx, names[0], data); err != nil {
		t.Fatal(err)
	}
	rep, err := v.Check(ctx, CheckOptions{})
	if err != nil || rep.Err() == nil || !strings.Contains(rep.Err().Error(), names[0]) {
		t.Fatalf("check with a damaged mark: %v %v", err, rep.Err())
	}
	if _, _, err := v.Snapshot(ctx, SnapshotOptions{Machine: "web", Disks: []DiskSource{{Name: "root", Path: img}}}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("snapshot with a damaged mark: %v, want ErrCorrupt", err)
	}
}
