package agent

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/vault"
)

// TestAppCadence: with points every 15 s and app-consistent ones every
// 30 s, every second point is app-consistent even though the pre hook
// takes time (the app interval was measured from the capture instant, after
// the hook, so the cycle 30 s later was "not yet due" and the app points
// came every 45 s).
func TestAppCadence(t *testing.T) {
	ctx := context.Background()
	v := newVault(t, nil)
	disk := filepath.Join(t.TempDir(), "disk.img")
	writeRandom(t, disk, 1<<20)
	cfg := testConfig(t, ProviderNone, disk)
	cfg.Machines[0].Policy.AppFrequency = 30 * time.Second
	cfg.Machines[0].Hooks.Pre = "sleep 0.2"
	a := newAgent(cfg, v)
	// Cycles start 15 s apart by this clock, as Run schedules them, each
	// a few milliseconds late by a varying amount (the first the latest):
	// the CI flake had the third cycle begin 29.995 s after the first.
	base := time.Now()
	var cycle int
	late := []time.Duration{9 * time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond, 0, 3 * time.Millisecond}
	a.now = func() time.Time { return base.Add(time.Duration(cycle)*15*time.Second + late[cycle]) }
	for cycle = 0; cycle < 5; cycle++ {
		if err := a.Cycle(ctx, "m1"); err != nil {
			t.Fatal(err)
		}
	}
	points, err := v.Points(ctx, "m1")
	if err != nil || len(points) != 5 {
		t.Fatalf("points: %d, %v", len(points), err)
	}
	for i, p := range points {
		want := vault.Inconsistent // provider none, read while running
		if i%2 == 0 {
			want = vault.AppConsistent
		}
		if p.Consistency != want {
			t.Errorf("point %d (cycle at +%ds): %s, want %s", i, 15*i, p.Consistency, want)
		}
	}
}
