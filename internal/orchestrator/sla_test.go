package orchestrator

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/store"
)

// TestMachineRPOHandComputed: a constructed history over a 100-minute
// window with a 10-minute target and points at -5, 20, 25 and 60 min.
// By hand: [0,20) newest -5, within until 5: 5 min; [20,25) newest 20:
// 5 min; [25,60) newest 25, within until 35: 10 min; [60,100) newest 60,
// within until 70: 10 min. Within 30 of 100 min = 0.30; the worst RPO is
// 40 min, at the end (100 - 60); 3 points were captured in the window.
func TestMachineRPOHandComputed(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	rec := func(min int) store.PointRecord {
		return store.PointRecord{Machine: "db", Point: "p", Captured: at(min), TargetSeconds: 600}
	}
	got := MachineRPO("db", []store.PointRecord{rec(60), rec(-5), rec(25), rec(20)}, at(0), at(100))
	if got.WithinTarget == nil || math.Abs(*got.WithinTarget-0.30) > 1e-9 || got.WithinSeconds != 30*60 || got.MeasuredSeconds != 100*60 {
		t.Errorf("within = %v (%v of %v s), want 0.30 (1800 of 6000 s)", got.WithinTarget, got.WithinSeconds, got.MeasuredSeconds)
	}
	if got.WorstRPOSeconds != 40*60 || got.WorstAt == nil || !got.WorstAt.Equal(at(100)) {
		t.Errorf("worst = %v s at %v, want 2400 s at %v", got.WorstRPOSeconds, got.WorstAt, at(100))
	}
	if got.Points != 3 || got.TargetSeconds != 600 || !got.MeasuredFrom.Equal(at(0)) {
		t.Errorf("points %d target %v from %v", got.Points, got.TargetSeconds, got.MeasuredFrom)
	}

	// No point before the window: measured from the first one (the
	// machine was not protected before). [30,100): within 10 of 70.
	got = MachineRPO("db", []store.PointRecord{rec(30)}, at(0), at(100))
	if !got.MeasuredFrom.Equal(at(30)) || got.MeasuredSeconds != 70*60 || got.WithinSeconds != 10*60 || got.WorstRPOSeconds != 70*60 {
		t.Errorf("first point inside: %+v", got)
	}
	// The first point was seen before the agent reported its target: it
	// is held to the first target recorded after it. [0,30) newest -5:
	// within 5; [30,100) newest 30: within 10. 15 of 100 min.
	first := store.PointRecord{Machine: "db", Captured: at(-5)}
	got = MachineRPO("db", []store.PointRecord{first, rec(30)}, at(0), at(100))
	if got.WithinSeconds != 15*60 || got.TargetSeconds != 600 {
		t.Errorf("target filled back: within %v s, target %v", got.WithinSeconds, got.TargetSeconds)
	}
	// No target ever recorded: no share, but the worst RPO is measured.
	norec := store.PointRecord{Machine: "db", Captured: at(0)}
	got = MachineRPO("db", []store.PointRecord{norec}, at(0), at(100))
	if got.WithinTarget != nil || got.WorstRPOSeconds != 100*60 {
		t.Errorf("without a target: %+v", got)
	}
	// Nothing recorded: nothing measured.
	got = MachineRPO("db", nil, at(0), at(100))
	if got.MeasuredSeconds != 0 || got.WithinTarget != nil {
		t.Errorf("empty history: %+v", got)
	}
}

// TestSLAReportFromStore: the report reads the store's history: points,
// drills (run, skipped) and a failover's data-loss window, and leaves out
// what falls in another month.
func TestSLAReportFromStore(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	now := time.Now().UTC()
	month := now.Format("2006-01")
	from, _, _ := ParseMonth(month)
	// The world's seeded points, recorded as the standby loop does.
	if err := w.o.RefreshStandby(ctx); err != nil {
		t.Fatal(err)
	}
	w.run(TestFailover, "alpha", Params{})
	w.run(TestCleanup, "alpha", Params{})
	skip := store.Drill{JobID: "scheduled:alpha:x", Plan: "alpha", Started: time.Now().UTC(), Skipped: "plan alpha is failed-over"}
	old := store.Drill{JobID: "old", Plan: "alpha", Started: from.Add(-time.Hour), Passed: true, RTOSeconds: 1}
	for _, d := range []store.Drill{skip, old} {
		if err := w.env.Store.AddDrill(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	w.run(UnplannedFailover, "alpha", Params{Force: true})
	rep, err := w.o.SLA(ctx, "alpha", month, time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Machines) != 2 || rep.Machines[0].Machine != "alpha-db" || rep.Machines[0].Points != 1 {
		t.Fatalf("machines: %+v", rep.Machines)
	}
	if rep.DrillsRun != 1 || rep.Passed != 1 || rep.Skipped != 1 || len(rep.Drills) != 2 {
		t.Fatalf("drills: run %d passed %d skipped %d: %+v", rep.DrillsRun, rep.Passed, rep.Skipped, rep.Drills)
	}
	ds, _ := w.env.Store.Drills(ctx, "alpha")
	var rec store.Drill
	for _, d := range ds {
		if d.Skipped == "" && d.JobID != "old" {
			rec = d
		}
	}
	d := rep.Drills[0]
	if d.Job != rec.JobID || d.RTOSeconds == nil || *d.RTOSeconds != rec.RTOSeconds || d.RPOSeconds == nil ||
		*d.RPOSeconds != max(rec.PointAges["alpha-db"], rec.PointAges["alpha-web"]) {
		t.Fatalf("drill %+v vs record %+v", d, rec)
	}
	if len(rep.Failovers) != 1 || rep.Failovers[0].Type != string(UnplannedFailover) || rep.Failovers[0].DataLossSeconds == nil ||
		len(rep.Failovers[0].DataLoss) != 2 {
		t.Fatalf("failovers: %+v", rep.Failovers)
	}
	j, _ := w.env.Store.Job(ctx, rep.Failovers[0].Job)
	jr, _ := BuildReport(j)
	for _, p := range jr.Points {
		if rep.Failovers[0].DataLoss[p.Machine] != *p.DataLossSeconds {
			t.Errorf("data loss of %s: %v, job report says %v", p.Machine, rep.Failovers[0].DataLoss[p.Machine], *p.DataLossSeconds)
		}
	}
	if _, err := w.o.SLA(ctx, "alpha", "2026-13", now); err == nil {
		t.Error("month 2026-13 accepted")
	}
	if _, err := w.o.SLA(ctx, "nope", month, now); err == nil {
		t.Error("unknown plan accepted")
	}
}
