package vault

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob/blobtest"
)

// TestSnapshotDuringPrune: machine A's prune is held in the middle of its
// work (a slow storage call); machine B's snapshot must not wait for it,
// so no prune can push another group past its RPO. A second prune must
// still wait for the first.
func TestSnapshotDuringPrune(t *testing.T) {
	ctx := context.Background()
	v, be := testVault(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.img"), filepath.Join(dir, "b.img")
	for i := range 3 {
		writeImage(t, a, uint64(40+i), segment{"random", 1 << 20})
		snap(t, v, "a", DiskSource{Name: "root", Path: a})
	}
	writeImage(t, b, 45, segment{"random", 2 << 20})

	slow := blobtest.NewFault(be)
	held, release := make(chan struct{}), make(chan struct{})
	slow.Set(func(ctx context.Context, op, name string) error {
		if op == "delete" && strings.HasPrefix(name, "points/") {
			close(held)
			slow.Set(nil)
			<-release
		}
		return nil
	})
	opt := fastKDF
	opt.Holder = "haven-agent"
	pa, err := Open(ctx, slow, "secret", opt)
	if err != nil {
		t.Fatal(err)
	}
	defer pa.Close()
	pruned := make(chan error, 1)
	go func() {
		_, err := pa.Prune(ctx, PruneOptions{Retention: Retention{Last: 1}, Machine: "a", LockWait: time.Second})
		pruned <- err
	}()
	<-held

	_, _, err = v.Snapshot(ctx, SnapshotOptions{Machine: "b", Disks: []DiskSource{{Name: "root", Path: b}}})
	if err != nil {
		close(release)
		t.Fatalf("snapshot of b while a's prune runs: %v", err)
	}
	_, err = v.Prune(ctx, PruneOptions{Retention: Retention{Last: 1}})
	close(release)
	host, _ := os.Hostname()
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("haven-agent@%s/%d", host, os.Getpid())) {
		t.Errorf("second prune while the first runs: err = %v, want ErrLocked naming the holder's process", err)
	}
	if err := <-pruned; err != nil {
		t.Fatal(err)
	}
	if rep, err := v.Check(ctx, CheckOptions{ReadData: true}); err != nil || rep.Err() != nil {
		t.Fatalf("check: %v %v", err, rep.Err())
	}
	out := filepath.Join(dir, "out.img")
	restore(t, v, "b", "latest", "root", out)
	if sha(t, out) != sha(t, b) {
		t.Fatal("b's point taken during a's prune does not restore bit-exact")
	}
}

// TestSnapshotSurvivesIndexRewrite: a prune replaces the index objects a
// running snapshot has listed but not read yet; the snapshot must list
// again and find the replacement, not fail.
func TestSnapshotSurvivesIndexRewrite(t *testing.T) {
	ctx := context.Background()
	v, be := testVault(t)
	img := filepath.Join(t.TempDir(), "d.img")
	for i := range 2 {
		writeImage(t, img, uint64(70+i), segment{"random", 1 << 20})
		snap(t, v, "web", DiskSource{Name: "root", Path: img})
	}
	f := blobtest.NewFault(be)
	held, release := make(chan struct{}), make(chan struct{})
	f.Set(func(ctx context.Context, op, name string) error {
		if op == "get" && strings.HasPrefix(name, indexPrefix) {
			f.Set(nil)
			close(held)
			<-release
		}
		return nil
	})
	w, err := Open(ctx, f, "secret", fastKDF)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	done := make(chan error, 1)
	go func() {
		_, _, err := w.Snapshot(ctx, SnapshotOptions{Machine: "web", Disks: []DiskSource{{Name: "root", Path: img}}})
		done <- err
	}()
	<-held
	rep, err := v.Prune(ctx, PruneOptions{Retention: Retention{Last: 10}})
	close(release)
	if err != nil || rep.RewrittenIdx < 2 {
		t.Fatalf("prune: %v, rewrote %d index objects, want the 2 the snapshot listed", err, rep.RewrittenIdx)
	}
	if err := <-done; err != nil {
		t.Fatalf("snapshot across an index rewrite: %v", err)
	}
	checkAndRestoreAll(t, v)
}
