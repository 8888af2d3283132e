package vault

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/blobtest"
	"github.com/haven-dr/haven/internal/blob/fileblob"
)

// createOnly wraps the copy's storage and fails the test on any delete, or
// any put over an existing object, outside locks/ (whose protocol is the
// lock's business, not the copy's).
func createOnly(t *testing.T, be blob.Backend) *blobtest.Fault {
	f := blobtest.NewFault(be)
	var mu sync.Mutex
	f.Set(func(ctx context.Context, op, name string) error {
		if strings.HasPrefix(name, locksPrefix) {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		switch op {
		case "delete":
			t.Errorf("copy deleted %s in the destination", name)
			return errors.New("refused: create-only")
		case "put":
			if _, err := be.Stat(ctx, name); err == nil {
				t.Errorf("copy overwrote %s in the destination", name)
				return errors.New("refused: create-only")
			}
		}
		return nil
	})
	return f
}

func copyDest(t *testing.T, src *Vault) (*Vault, blob.Backend) {
	t.Helper()
	be, err := fileblob.New(filepath.Join(t.TempDir(), "copy"))
	if err != nil {
		t.Fatal(err)
	}
	dst, err := InitCopy(context.Background(), be, src, "other password", fastKDF)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dst.Close() })
	return dst, be
}

func reopen(t *testing.T, be blob.Backend, pw string) *Vault {
	t.Helper()
	v, err := Open(context.Background(), be, pw, fastKDF)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

func mustCopy(t *testing.T, dst, src *Vault) *CopyReport {
	t.Helper()
	rep, err := dst.Copy(context.Background(), src, CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func checkClean(t *testing.T, v *Vault) *CheckReport {
	t.Helper()
	rep, err := v.Check(context.Background(), CheckOptions{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Err() != nil {
		t.Fatalf("copy does not check: %v", rep.Problems)
	}
	return rep
}

func TestCopyIncrementalAndRestorable(t *testing.T) {
	ctx := context.Background()
	src, _ := testVault(t)
	dir := t.TempDir()
	img, img2 := filepath.Join(dir, "a.img"), filepath.Join(dir, "b.img")
	writeImage(t, img, 1, segment{"random", 600 << 10}, segment{"hole", 1 << 20}, segment{"text", 200 << 10})
	writeImage(t, img2, 2, segment{"text", 300 << 10})
	p1, _ := snap(t, src, "web", DiskSource{Name: "root", Path: img})
	snap(t, src, "db", DiskSource{Name: "data", Path: img2})
	want1 := sha(t, img)

	dst, dbe := copyDest(t, src)
	if lag, _ := Lag(ctx, src, dst); lag <= 0 {
		t.Fatalf("lag of an empty copy = %s, want > 0", lag)
	}
	var events []CopyEvent
	rep, err := dst.Copy(ctx, src, CopyOptions{Progress: func(e CopyEvent) { events = append(events, e) }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Points != 2 || rep.Packs == 0 || rep.Lag != 0 || len(rep.Problems) != 0 || len(events) != 2 || events[1].Done != 2 {
		t.Fatalf("first copy: %+v, events %+v", rep, events)
	}

	writeImage(t, img, 3, segment{"random", 64 << 10}) // a small change
	p2, st := snap(t, src, "web", DiskSource{Name: "root", Path: img})
	want2 := sha(t, img)
	rep = mustCopy(t, dst, src)
	if rep.Points != 1 || rep.Present != 2 || rep.Packs != int(st.Packs) {
		t.Fatalf("second copy: %+v; the snapshot wrote %d packs", rep, st.Packs)
	}
	rep = mustCopy(t, dst, src)
	if rep.Points != 0 || rep.Packs != 0 || rep.Present != 3 {
		t.Fatalf("copy of an up-to-date vault: %+v", rep)
	}

	// The copy stands alone, under its own password.
	c := reopen(t, dbe, "other password")
	checkClean(t, c)
	for id, want := range map[string]string{p1.ID: want1, p2.ID: want2} {
		out := filepath.Join(dir, "out-"+id)
		restore(t, c, "web", id, "root", out)
		if sha(t, out) != want {
			t.Fatalf("point %s restored from the copy differs", id)
		}
	}
	if _, err := Open(ctx, dbe, "secret", fastKDF); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("the first vault's password opens the copy: %v", err)
	}
}

func TestCopyRefusesForeignVault(t *testing.T) {
	src, _ := testVault(t)
	other, _ := testVault(t)
	if _, err := other.Copy(context.Background(), src, CopyOptions{}); !errors.Is(err, ErrNotACopy) {
		t.Fatalf("copy into a vault with other keys: %v", err)
	}
	if _, err := src.Copy(context.Background(), src, CopyOptions{}); err == nil {
		t.Fatal("copy of a vault into itself accepted")
	}
}

// TestCopyCompromisedSource: whoever controls the first vault deletes
// points and corrupts a pack, a manifest and an index object there; the
// copy keeps everything it had, copies nothing damaged, says what it
// skipped, and never deletes or overwrites in the destination.
func TestCopyCompromisedSource(t *testing.T) {
	ctx := context.Background()
	src, sbe := testVault(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "a.img")
	var wants []string
	for i := range 3 {
		writeImage(t, img, uint64(10+i), segment{"random", 300 << 10})
		snap(t, src, "web", DiskSource{Name: "root", Path: img})
		wants = append(wants, sha(t, img))
	}
	dst, dbe := copyDest(t, src)
	mustCopy(t, dst, src)
	before, _ := dst.Points(ctx, "")

	// The attack: every point deleted, then two new points, one with a
	// damaged pack and one with a damaged manifest, and a damaged index.
	names, _ := src.pointNames(ctx, "")
	for _, n := range names {
		if err := sbe.Delete(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	old := objectSet(t, sbe, "data/")
	writeImage(t, img, 20, segment{"random", 300 << 10})
	bad1, _ := snap(t, src, "web", DiskSource{Name: "root", Path: img})
	for name := range objectSet(t, sbe, "data/") {
		if !old[name] {
			damage(t, sbe, name, 100)
		}
	}
	writeImage(t, img, 21, segment{"random", 300 << 10})
	bad2, _ := snap(t, src, "web", DiskSource{Name: "root", Path: img})
	damage(t, sbe, src.pointName("web", bad2.ID), 30)
	oldIdx := objectSet(t, sbe, indexPrefix)
	writeImage(t, img, 23, segment{"random", 300 << 10})
	bad3, _ := snap(t, src, "web", DiskSource{Name: "root", Path: img})
	bad3Idx := objectSet(t, sbe, indexPrefix)
	img2 := filepath.Join(dir, "b.img")
	writeImage(t, img2, 22, segment{"text", 100 << 10})
	good, _ := snap(t, src, "db", DiskSource{Name: "data", Path: img2})
	wantGood := sha(t, img2)
	for name := range bad3Idx {
		if !oldIdx[name] {
			damage(t, sbe, name, 50)
		}
	}

	dst = reopen(t, createOnly(t, dbe), "other password")
	rep, err := dst.Copy(ctx, src, CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Points != 1 || rep.Skipped != 3 || len(rep.Problems) != 4 || rep.Kept != 3 || !errors.Is(rep.Err(), ErrCorrupt) {
		t.Fatalf("report %+v", rep)
	}
	joined := strings.Join(rep.Problems, "\n")
	for _, id := range []string{bad1.ID, bad2.ID, bad3.ID} {
		if !strings.Contains(joined, id) {
			t.Errorf("problems do not name damaged point %s: %s", id, joined)
		}
	}
	c := reopen(t, dbe, "other password")
	checkClean(t, c)
	after, _ := c.Points(ctx, "")
	if len(after) != len(before)+1 {
		t.Fatalf("copy has %d points, want %d", len(after), len(before)+1)
	}
	for i, p := range before {
		out := filepath.Join(dir, fmt.Sprint("out", i))
		restore(t, c, "web", p.ID, "root", out)
		if sha(t, out) != wants[i] {
			t.Fatalf("point %s in the copy changed", p.ID)
		}
	}
	out := filepath.Join(dir, "good")
	restore(t, c, "db", good.ID, "data", out)
	if sha(t, out) != wantGood {
		t.Fatal("the undamaged new point was not copied intact")
	}
}

// TestCopyResumes: a copy cut off after uploading packs but before
// indexing them, and one cut off before the manifest, finish on the next
// run; packs already uploaded are read back and verified, not uploaded again.
func TestCopyResumes(t *testing.T) {
	ctx := context.Background()
	src, _ := testVault(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "a.img")
	_, dbe := copyDest(t, src)
	cutCopy := func(cut string) {
		t.Helper()
		f := blobtest.NewFault(dbe)
		f.Set(blobtest.FailWhen(func(op, name string) bool { return op == "put" && strings.HasPrefix(name, cut) }))
		dst := reopen(t, f, "other password")
		if _, err := dst.Copy(ctx, src, CopyOptions{}); !errors.Is(err, blob.ErrUnavailable) {
			t.Fatalf("cut at %s: %v", cut, err)
		}
	}
	points := func() int {
		ps, err := reopen(t, dbe, "other password").Points(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		return len(ps)
	}

	writeImage(t, img, 5, segment{"random", 3 << 20})
	snap(t, src, "web", DiskSource{Name: "root", Path: img})
	cutCopy(indexPrefix)
	if n := points(); n != 0 {
		t.Fatalf("cut before the index: %d points listed", n)
	}
	rep := mustCopy(t, reopen(t, dbe, "other password"), src)
	if rep.Points != 1 || rep.Packs != 0 || rep.Adopted == 0 {
		t.Fatalf("resumed after a cut before the index: %+v", rep)
	}

	writeImage(t, img, 6, segment{"random", 1 << 20})
	snap(t, src, "web", DiskSource{Name: "root", Path: img})
	want := sha(t, img)
	cutCopy(pointsPrefix)
	if n := points(); n != 1 {
		t.Fatalf("cut before the manifest: %d points listed, want 1", n)
	}
	rep = mustCopy(t, reopen(t, dbe, "other password"), src)
	if rep.Points != 1 || rep.Packs != 0 || rep.Adopted != 0 {
		t.Fatalf("resumed after a cut before the manifest: %+v", rep)
	}
	c := reopen(t, dbe, "other password")
	checkClean(t, c)
	out := filepath.Join(dir, "out")
	restore(t, c, "web", "latest", "root", out)
	if sha(t, out) != want {
		t.Fatal("restored copy differs")
	}
}

// TestCopyPartialPackNotPresent: a damaged object under a pack's name in
// the destination (a partial write by a store without atomic puts) is
// not taken as the pack: the point is not copied and the copy says why.
func TestCopyPartialPackNotPresent(t *testing.T) {
	ctx := context.Background()
	src, sbe := testVault(t)
	img := filepath.Join(t.TempDir(), "a.img")
	writeImage(t, img, 7, segment{"random", 500 << 10})
	snap(t, src, "web", DiskSource{Name: "root", Path: img})
	_, dbe := copyDest(t, src)
	for name := range objectSet(t, sbe, "data/") {
		data, _ := sbe.Get(ctx, name, 0, -1)
		dbe.Put(ctx, name, data[:len(data)/2])
	}
	rep, err := reopen(t, dbe, "other password").Copy(ctx, src, CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Points != 0 || rep.Skipped != 1 || !strings.Contains(strings.Join(rep.Problems, " "), "in the copy") {
		t.Fatalf("report %+v", rep)
	}
	if ps, _ := reopen(t, dbe, "other password").Points(ctx, ""); len(ps) != 0 {
		t.Fatal("a point referencing a partial pack was written")
	}
}

func TestCopyCatalog(t *testing.T) {
	ctx := context.Background()
	src, sbe := testVault(t)
	for i := uint64(1); i <= 3; i++ {
		if err := src.WriteCatalog(ctx, "server", i, []byte(fmt.Sprint("state ", i))); err != nil {
			t.Fatal(err)
		}
	}
	damage(t, sbe, catalogObject("server", 3), 40)
	dst, _ := copyDest(t, src)
	rep, _ := dst.Copy(ctx, src, CopyOptions{})
	if rep.Catalogs != 2 || len(rep.Problems) != 1 {
		t.Fatalf("report %+v", rep)
	}
	seq, data, _, err := dst.LatestCatalog(ctx, "server")
	if err != nil || seq != 2 || string(data) != "state 2" {
		t.Fatalf("copy's catalog: %d %q %v", seq, data, err)
	}
}

func objectSet(t *testing.T, be blob.Backend, prefix string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	if err := be.List(context.Background(), prefix, func(fi blob.Info) error { out[fi.Name] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func damage(t *testing.T, be blob.Backend, name string, pos int) {
	t.Helper()
	data, err := be.Get(context.Background(), name, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	data[pos%len(data)] ^= 0x55
	if err := be.Put(context.Background(), name, data); err != nil {
		t.Fatal(err)
	}
}

// TestCopyOnlyNewer: a copy pruned to a shorter retention than the first
// vault's does not get the forgotten points back with OnlyNewer, and still
// gets new ones.
func TestCopyOnlyNewer(t *testing.T) {
	ctx := context.Background()
	src, _ := testVault(t)
	img := filepath.Join(t.TempDir(), "a.img")
	for i := range 3 {
		writeImage(t, img, uint64(40+i), segment{"random", 200 << 10})
		snap(t, src, "web", DiskSource{Name: "root", Path: img})
	}
	dst, _ := copyDest(t, src)
	mustCopy(t, dst, src)
	if _, err := dst.Prune(ctx, PruneOptions{Retention: Retention{Last: 1}}); err != nil {
		t.Fatal(err)
	}
	rep, err := dst.Copy(ctx, src, CopyOptions{OnlyNewer: true})
	if err != nil || rep.Points != 0 || rep.Older != 2 || rep.Present != 1 || len(rep.Problems) != 0 {
		t.Fatalf("only newer after the copy's prune: %+v %v", rep, err)
	}
	writeImage(t, img, 50, segment{"random", 200 << 10})
	p, _ := snap(t, src, "web", DiskSource{Name: "root", Path: img})
	if rep, err = dst.Copy(ctx, src, CopyOptions{OnlyNewer: true}); err != nil || rep.Points != 1 || rep.Older != 2 {
		t.Fatalf("only newer, a new point: %+v %v", rep, err)
	}
	if _, err := dst.FindPoint(ctx, "web", p.ID); err != nil {
		t.Fatal(err)
	}
	checkClean(t, dst)
}

// TestCopyRefusedWriteStops: a write the copy's storage refuses (here a
// permanent error, as a 403 would be) stops the run with that error; it
// is not reported as damage in the source.
func TestCopyRefusedWriteStops(t *testing.T) {
	ctx := context.Background()
	src, _ := testVault(t)
	img := filepath.Join(t.TempDir(), "a.img")
	writeImage(t, img, 60, segment{"random", 200 << 10})
	snap(t, src, "web", DiskSource{Name: "root", Path: img})
	_, dbe := copyDest(t, src)
	f := blobtest.NewFault(dbe)
	refused := errors.New("403 access denied")
	f.Set(func(_ context.Context, op, name string) error {
		if op == "put" && strings.HasPrefix(name, "data/") {
			return refused
		}
		return nil
	})
	rep, err := reopen(t, f, "other password").Copy(ctx, src, CopyOptions{})
	if !errors.Is(err, refused) || (rep != nil && len(rep.Problems) != 0) {
		t.Fatalf("refused write: %v, report %+v", err, rep)
	}
}
