package vault

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// TestPointSelectorsTellConsistencyApart: a snapshot that names no
// consistency is recorded as inconsistent, and the selectors skip it.
func TestPointSelectorsTellConsistencyApart(t *testing.T) {
	ctx := context.Background()
	v, _ := testVault(t)
	img := filepath.Join(t.TempDir(), "d.img")
	writeImage(t, img, 71, segment{"text", 100 << 10})
	t0 := time.Now().Add(-time.Hour)
	ids := map[string]string{}
	for i, c := range []string{AppConsistent, CrashConsistent, ""} {
		p, _, err := v.Snapshot(ctx, SnapshotOptions{Machine: "db", Disks: []DiskSource{{Name: "d", Path: img}},
			Consistency: c, Time: t0.Add(time.Duration(i) * time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		ids[p.Consistency] = p.ID
	}
	if ids[Inconsistent] == "" {
		t.Fatalf("a snapshot naming no consistency was recorded as one of %v", ids)
	}
	for sel, want := range map[string]string{"latest": ids[Inconsistent], LatestConsistent: ids[CrashConsistent], LatestApp: ids[AppConsistent]} {
		p, err := v.FindPoint(ctx, "db", sel)
		if err != nil || p.ID != want {
			t.Errorf("%s: got %v, %v; want %s", sel, p, err, want)
		}
	}
	if _, err := v.FindPoint(ctx, "web", LatestConsistent); !errors.Is(err, ErrNoPoint) {
		t.Errorf("latest-consistent of an unknown machine: %v", err)
	}
}
