package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/store"
)

// historyTests cover scheduled drills and the point history (part of Run).
var historyTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"DrillScheduleCAS", testDrillScheduleCAS},
	{"DrillScheduleTx", testDrillScheduleTx},
	{"PointHistory", testPointHistory},
	{"PlacementsCAS", testPlacementsCAS},
}

// testPlacementsCAS: two servers placing machines from one read: the
// second is refused, so no machine is placed on two hosts.
func testPlacementsCAS(t *testing.T, s store.Store) {
	ctx := t.Context()
	p, err := s.Placements(ctx)
	must(t, err)
	if p.Version != 0 || len(p.Hosts) != 0 {
		t.Fatalf("new placements = %+v", p)
	}
	p.Hosts["db"] = "a"
	must(t, s.PutPlacements(ctx, p))
	a, err := s.Placements(ctx)
	must(t, err)
	b, err := s.Placements(ctx)
	must(t, err)
	a.Hosts["web"] = "b"
	must(t, s.PutPlacements(ctx, a))
	b.Hosts["web"] = "c"
	if err := s.PutPlacements(ctx, b); !errors.Is(err, store.ErrStale) {
		t.Fatalf("second put of stale placements = %v, want ErrStale", err)
	}
	got, err := s.Placements(ctx)
	must(t, err)
	if got.Hosts["db"] != "a" || got.Hosts["web"] != "b" || got.Version != a.Version {
		t.Fatalf("placements = %+v, want db on a, web on b at version %d", got, a.Version)
	}
}

// testDrillScheduleCAS: two servers' copies of one schedule: the second
// write of the same instant is refused, so one drill starts.
func testDrillScheduleCAS(t *testing.T, s store.Store) {
	ctx := t.Context()
	ds, err := s.DrillSchedule(ctx, "shop")
	must(t, err)
	if ds.Version != 0 || !ds.Last.IsZero() || ds.Run != nil {
		t.Fatalf("new schedule = %+v", ds)
	}
	ds.Last = base
	must(t, s.PutDrillSchedule(ctx, ds))
	a, err := s.DrillSchedule(ctx, "shop")
	must(t, err)
	b, err := s.DrillSchedule(ctx, "shop")
	must(t, err)
	a.Last, a.Run = base.Add(time.Hour), &store.DrillRun{Slot: base.Add(time.Hour), TestJob: "t1"}
	must(t, s.PutDrillSchedule(ctx, a))
	b.Last, b.Run = base.Add(time.Hour), &store.DrillRun{Slot: base.Add(time.Hour), TestJob: "t2"}
	if err := s.PutDrillSchedule(ctx, b); !errors.Is(err, store.ErrStale) {
		t.Fatalf("second put of a stale schedule = %v, want ErrStale", err)
	}
	got, err := s.DrillSchedule(ctx, "shop")
	must(t, err)
	if got.Run == nil || got.Run.TestJob != "t1" || !got.Last.Equal(base.Add(time.Hour)) || got.Version != a.Version {
		t.Fatalf("schedule = %+v run %+v, want t1's at version %d", got, got.Run, a.Version)
	}
	fresh := &store.DrillSchedule{Plan: "shop"}
	if err := s.PutDrillSchedule(ctx, fresh); !errors.Is(err, store.ErrStale) {
		t.Fatalf("create over an existing schedule = %v, want ErrStale", err)
	}
}

// testDrillScheduleTx: a skipped instant and its record commit together
// or not at all.
func testDrillScheduleTx(t *testing.T, s store.Store) {
	ctx := t.Context()
	boom := errors.New("boom")
	skip := store.Drill{JobID: "scheduled:shop:1", Plan: "shop", Started: base, Skipped: "plan is failed-over"}
	err := s.InTx(ctx, func(tx store.Tx) error {
		ds, err := tx.DrillSchedule(ctx, "shop")
		if err != nil {
			return err
		}
		ds.Last = base
		if err := tx.PutDrillSchedule(ctx, ds); err != nil {
			return err
		}
		if err := tx.AddDrill(ctx, skip); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx = %v", err)
	}
	if ds, _ := s.DrillSchedule(ctx, "shop"); ds.Version != 0 {
		t.Fatalf("rolled back schedule stored: %+v", ds)
	}
	if ds, _ := s.Drills(ctx, "shop"); len(ds) != 0 {
		t.Fatalf("rolled back drill stored: %+v", ds)
	}
	must(t, s.InTx(ctx, func(tx store.Tx) error { return tx.AddDrill(ctx, skip) }))
	ds, err := s.Drills(ctx, "shop")
	must(t, err)
	if len(ds) != 1 || ds[0].Skipped != skip.Skipped {
		t.Fatalf("drills = %+v", ds)
	}
}

func testPointHistory(t *testing.T, s store.Store) {
	ctx := t.Context()
	rec := func(m, id string, min int) store.PointRecord {
		c := base.Add(time.Duration(min) * time.Minute)
		return store.PointRecord{Machine: m, Point: id, Captured: c, Seen: c.Add(time.Minute), TargetSeconds: 600}
	}
	must(t, s.AddPoints(ctx, []store.PointRecord{rec("db", "p1", 0), rec("db", "p2", 10), rec("web", "w1", 5)}))
	// Seen again (every refresh lists the vault): the first record stays.
	again := rec("db", "p2", 10)
	again.TargetSeconds = 1
	must(t, s.AddPoints(ctx, []store.PointRecord{again, rec("db", "p3", 20), rec("db", "p4", 30)}))
	for _, tc := range []struct {
		from, to int
		want     []string
	}{
		{15, 30, []string{"p2", "p3"}}, // p2: the newest before the window
		{0, 100, []string{"p1", "p2", "p3", "p4"}},
		{-10, 0, nil},
		{40, 50, []string{"p4"}},
	} {
		got, err := s.PointHistory(ctx, "db", base.Add(time.Duration(tc.from)*time.Minute), base.Add(time.Duration(tc.to)*time.Minute))
		must(t, err)
		var ids []string
		for _, p := range got {
			ids = append(ids, p.Point)
			if p.Machine != "db" || p.TargetSeconds != 600 {
				t.Errorf("record %+v: want db's first record (target 600)", p)
			}
		}
		if len(ids) != len(tc.want) || (len(ids) > 0 && !equalStrings(ids, tc.want)) {
			t.Errorf("PointHistory(%d, %d) = %v, want %v", tc.from, tc.to, ids, tc.want)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
