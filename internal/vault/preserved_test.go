package vault

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// TestPruneKeepsPreservedUntilReleased: an old primary's preserved state
// survives every prune, however old and however many newer points the
// machine has, until ReleasePoint; the next prune then removes it.
func TestPruneKeepsPreservedUntilReleased(t *testing.T) {
	v, _ := testVault(t)
	ctx := context.Background()
	img := filepath.Join(t.TempDir(), "d.img")
	base := time.Now().Add(-48 * time.Hour)
	take := func(i int, tags map[string]string) *Point {
		writeImage(t, img, uint64(90+i), segment{"random", 64 << 10})
		p, _, err := v.Snapshot(ctx, SnapshotOptions{Machine: "db", Time: base.Add(time.Duration(i) * time.Hour),
			Disks: []DiskSource{{Name: "root", Path: img}}, Tags: tags})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	take(0, nil)
	kept := take(1, map[string]string{PreservedTag: "true"})
	for i := 2; i < 5; i++ {
		take(i, nil)
	}
	newest := take(5, nil)
	if _, err := v.Prune(ctx, PruneOptions{Retention: Retention{Last: 1}}); err != nil {
		t.Fatal(err)
	}
	ps, err := v.Points(ctx, "db")
	if err != nil || len(ps) != 2 || ps[0].ID != kept.ID || ps[1].ID != newest.ID {
		t.Fatalf("after prune: %v %v; want the preserved %s and the newest %s", ids(ps), err, kept.ID, newest.ID)
	}
	if _, err := v.ReleasePoint(ctx, "db", newest.ID); !errors.Is(err, ErrNotPreserved) {
		t.Errorf("release of an ordinary point = %v, want ErrNotPreserved", err)
	}
	for range 2 { // idempotent
		if _, err := v.ReleasePoint(ctx, "db", kept.ID); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := v.Prune(ctx, PruneOptions{Retention: Retention{Last: 1}})
	if err != nil || rep.Forgotten != 1 {
		t.Fatalf("prune after release: %+v %v", rep, err)
	}
	if ps, _ := v.Points(ctx, "db"); len(ps) != 1 || ps[0].ID != newest.ID {
		t.Fatalf("after release and prune: %v", ids(ps))
	}
	if names, _ := listNames(ctx, v.be, releasedPrefix); len(names) != 0 {
		t.Errorf("release markers left: %v", names)
	}
	checkAndRestoreAll(t, v)
}

// TestRetentionPreservedOutsideRules: a preserved point neither takes the
// "newest" slot nor a "last" one from the machine's real points.
func TestRetentionPreservedOutsideRules(t *testing.T) {
	now := time.Now()
	real := &Point{ID: "a", Machine: "m", Time: now.Add(-time.Hour)}
	older := &Point{ID: "b", Machine: "m", Time: now.Add(-2 * time.Hour)}
	pres := &Point{ID: "c", Machine: "m", Time: now, Tags: map[string]string{PreservedTag: "true"}}
	got := map[string]Decision{}
	for _, d := range (Retention{Last: 2}).Apply([]*Point{real, older, pres}, now) {
		got[d.Point.ID] = d
	}
	if !got["a"].Keep || !got["b"].Keep || !got["c"].Keep || got["c"].Reasons != "preserved" {
		t.Errorf("decisions: %+v", got)
	}
}

func ids(ps []*Point) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}
