package orchestrator

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
)

// withDrill applies the two-plan config with a drill on plan alpha whose
// check fails while the file fail exists in dir.
func withDrill(t *testing.T, w *world, dir, drill string) {
	t.Helper()
	if drill == "" {
		drill = `{schedule: "@every 1h", keep: 10m, checks: [{name: app, type: script, run: "test -n \"$HAVEN_ADDR_ALPHA_DB\" && test ! -e ` + filepath.Join(dir, "fail") + `"}]}`
	}
	doc := strings.Replace(twoPlansConfig(), "  - name: alpha\n", "  - name: alpha\n    drill: "+drill+"\n", 1)
	if _, _, err := w.o.Apply(context.Background(), []byte(doc)); err != nil {
		t.Fatal(err)
	}
}

// tick runs the scheduler once at now and waits for any job it started.
func (w *world) tick(now time.Time) {
	w.t.Helper()
	if err := w.o.RunDrills(context.Background(), now); err != nil {
		w.t.Fatalf("RunDrills(%s): %v", now, err)
	}
	js, err := w.env.Store.Jobs(context.Background(), store.JobFilter{Plan: "alpha", Active: true})
	if err != nil {
		w.t.Fatal(err)
	}
	for _, j := range js {
		w.wait(j.ID)
	}
}

func (w *world) schedule(plan string) *store.DrillSchedule {
	w.t.Helper()
	ds, err := w.env.Store.DrillSchedule(context.Background(), plan)
	if err != nil {
		w.t.Fatal(err)
	}
	return ds
}

func (w *world) drills(plan string) []store.Drill {
	w.t.Helper()
	ds, err := w.env.Store.Drills(context.Background(), plan)
	if err != nil {
		w.t.Fatal(err)
	}
	return ds
}

// TestScheduledDrill drives the scheduler with its own clock: a drill
// starts at its instant, keeps its copy for keep, cleans up and records
// a pass with RTO and point ages; a failing check fails the next one; a
// failed-over plan skips one; a server down past the grace misses one.
func TestScheduledDrill(t *testing.T) {
	w := newWorld(t)
	dir := t.TempDir()
	withDrill(t, w, dir, "")
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	w.tick(t0)
	if ds := w.schedule("alpha"); !ds.Last.Equal(t0) || ds.Run != nil {
		t.Fatalf("first look: schedule %+v, want it to start counting at %s", ds, t0)
	}
	w.tick(t0.Add(59 * time.Minute))
	if js, _ := w.env.Store.Jobs(context.Background(), store.JobFilter{Plan: "alpha"}); len(js) != 0 {
		t.Fatalf("a job before the first instant: %v", js[0].Type)
	}

	// The instant: the test failover runs, with the drill's check.
	slot1 := t0.Add(time.Hour)
	w.tick(slot1.Add(2 * time.Second))
	ds := w.schedule("alpha")
	if ds.Run == nil || !ds.Run.Slot.Equal(slot1) || !ds.Last.Equal(slot1) {
		t.Fatalf("after the instant: schedule %+v run %+v", ds, ds.Run)
	}
	tj, _ := w.env.Store.Job(context.Background(), ds.Run.TestJob)
	if tj.Type != TestFailover || tj.State != store.Succeeded || !hasStep(tj, "drill check: script app") {
		t.Fatalf("drill's test failover: %s %s %v", tj.Type, tj.State, tj.Steps)
	}
	if w.plan("alpha").Test != tj.ID {
		t.Fatalf("no test copy up after the drill's test failover")
	}
	w.tick(slot1.Add(3 * time.Second)) // notes the end
	w.tick(slot1.Add(5 * time.Minute)) // within keep: copy stays
	if w.plan("alpha").Test != tj.ID || w.schedule("alpha").Run.CleanupJob != "" {
		t.Fatalf("copy cleaned up before keep passed")
	}
	w.tick(slot1.Add(11 * time.Minute)) // keep passed: cleanup
	w.tick(slot1.Add(12 * time.Minute)) // cleanup ended: done
	if ds := w.schedule("alpha"); ds.Run != nil {
		t.Fatalf("drill still in flight: %+v", ds.Run)
	}
	if st := w.plan("alpha"); st.Test != "" || st.Phase != PhaseProtected {
		t.Fatalf("plan after the drill: %+v", st)
	}
	got := w.drills("alpha")
	if len(got) != 1 {
		t.Fatalf("drills: %+v", got)
	}
	d := got[0]
	if !d.Passed || d.JobID != tj.ID || d.Scheduled == nil || !d.Scheduled.Equal(slot1) || d.RTOSeconds <= 0 ||
		len(d.PointAges) != 2 || d.PointAges["alpha-db"] <= 0 {
		t.Fatalf("recorded drill: %+v", d)
	}

	// A failing check fails the next drill; it is cleaned up at once and
	// recorded as failed.
	if err := os.WriteFile(filepath.Join(dir, "fail"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	slot2 := slot1.Add(time.Hour)
	w.tick(slot2.Add(time.Second))
	w.tick(slot2.Add(2 * time.Second)) // failed test failover: cleanup now
	w.tick(slot2.Add(3 * time.Second))
	got = w.drills("alpha")
	if len(got) != 2 || got[0].Passed || !strings.Contains(got[0].Error, "drill check: script app") ||
		got[0].Scheduled == nil || !got[0].Scheduled.Equal(slot2) {
		t.Fatalf("failed drill record: %+v", got[0])
	}
	if w.plan("alpha").Test != "" || w.schedule("alpha").Run != nil {
		t.Fatalf("failed drill left its copy: plan %+v schedule %+v", w.plan("alpha"), w.schedule("alpha"))
	}
	os.Remove(filepath.Join(dir, "fail"))

	// Failed over: the instant is skipped, with why.
	w.run(PlannedFailover, "alpha", Params{})
	slot3 := slot2.Add(time.Hour)
	w.tick(slot3.Add(time.Second))
	got = w.drills("alpha")
	if len(got) != 3 || got[0].Skipped == "" || !strings.Contains(got[0].Skipped, "failed-over") || got[0].Missed {
		t.Fatalf("skip record: %+v", got[0])
	}
	if js, _ := w.env.Store.Jobs(context.Background(), store.JobFilter{Plan: "alpha", Active: true}); len(js) != 0 {
		t.Fatalf("a job started on a failed-over plan: %s", js[0].Type)
	}
	w.run(CancelFailover, "alpha", Params{})

	// Down for three instants and past the grace of the last: missed,
	// recorded once, and nothing runs late.
	slot6 := slot3.Add(3 * time.Hour)
	w.tick(slot6.Add(11 * time.Minute))
	got = w.drills("alpha")
	if len(got) != 4 || !got[0].Missed || !strings.Contains(got[0].Skipped, "missed 3 scheduled drill(s)") {
		t.Fatalf("missed record: %+v", got[0])
	}
	if ds := w.schedule("alpha"); ds.Run != nil || !ds.Last.Equal(slot6) {
		t.Fatalf("after missing: %+v", ds)
	}
	next, run, err := w.o.NextDrill(context.Background(), w.cfgWithDrill(t))
	if err != nil || run != nil || next == nil || !next.Equal(slot6.Add(time.Hour)) {
		t.Fatalf("NextDrill = %v, %+v, %v", next, run, err)
	}
}

func hasStep(j *store.Job, name string) bool {
	for _, s := range j.Steps {
		if s.Name == name {
			return true
		}
	}
	return false
}

func (w *world) cfgWithDrill(t *testing.T) *protection.Plan {
	t.Helper()
	cfg, _, err := w.o.Config(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Plan("alpha")
}

// TestScheduledDrillRemovedMidway: a schedule removed while its drill
// keeps its copy up still ends the drill (cleanup, record), and starts
// no other.
func TestScheduledDrillRemovedMidway(t *testing.T) {
	w := newWorld(t)
	withDrill(t, w, t.TempDir(), `{schedule: "@every 1h", keep: 10h}`)
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	w.tick(t0)
	w.tick(t0.Add(time.Hour))
	w.tick(t0.Add(time.Hour + time.Second))
	if _, _, err := w.o.Apply(context.Background(), []byte(twoPlansConfig())); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		w.tick(t0.Add(time.Hour + time.Duration(2+i)*time.Second))
	}
	if st, ds := w.plan("alpha"), w.schedule("alpha"); st.Test != "" || ds.Run != nil {
		t.Fatalf("drill of a removed schedule still up: plan %+v run %+v", st, ds.Run)
	}
	if got := w.drills("alpha"); len(got) != 1 || !got[0].Passed {
		t.Fatalf("drills: %+v", got)
	}
	w.tick(t0.Add(5 * time.Hour))
	if js, _ := w.env.Store.Jobs(context.Background(), store.JobFilter{Plan: "alpha"}); len(js) != 2 {
		t.Fatalf("%d jobs after the schedule was removed, want the drill's 2", len(js))
	}
}

// TestScheduledDrillUnknownJob: a schedule naming a job the state does
// not have (rebuilt without it) is closed instead of failing every tick.
func TestScheduledDrillUnknownJob(t *testing.T) {
	w := newWorld(t)
	withDrill(t, w, t.TempDir(), `{schedule: "@every 1h"}`)
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	ds := &store.DrillSchedule{Plan: "alpha", Last: t0, Run: &store.DrillRun{Slot: t0, TestJob: "gone"}}
	if err := w.env.Store.PutDrillSchedule(context.Background(), ds); err != nil {
		t.Fatal(err)
	}
	w.tick(t0.Add(time.Minute))
	if ds := w.schedule("alpha"); ds.Run != nil || !ds.Last.Equal(t0) {
		t.Fatalf("schedule after an unknown job: %+v", ds)
	}
	w.tick(t0.Add(time.Hour))
	if ds := w.schedule("alpha"); ds.Run == nil {
		t.Fatal("the next instant did not start a drill")
	}
}

// TestScheduledDrillOneStart: two servers looking at one instant at once
// (a deposed leader that has not noticed yet) start one drill, and
// neither records a skip.
func TestScheduledDrillOneStart(t *testing.T) {
	w := newWorld(t)
	withDrill(t, w, t.TempDir(), `{schedule: "@every 1h"}`)
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	w.tick(t0)
	other := New(w.o.Options)
	defer other.Close()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, o := range []*Orchestrator{w.o, other} {
		wg.Go(func() { errs[i] = o.RunDrills(context.Background(), t0.Add(time.Hour)) })
	}
	wg.Wait()
	js, err := w.env.Store.Jobs(context.Background(), store.JobFilter{Plan: "alpha"})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range js {
		w.wait(j.ID)
		other.Wait(j.ID)
	}
	if len(js) != 1 || js[0].Type != TestFailover {
		t.Fatalf("jobs after two schedulers looked (errors %v): %d", errs, len(js))
	}
	if ds := w.drills("alpha"); len(ds) != 0 {
		t.Fatalf("a skip was recorded for a drill that started: %+v", ds)
	}
	if ds := w.schedule("alpha"); ds.Run == nil || ds.Run.TestJob != js[0].ID {
		t.Fatalf("schedule names %+v, want job %s", ds.Run, js[0].ID)
	}
}

// TestScheduledDrillOverdue: a drill still running (kept up) when its
// next instant passes makes NextDrill report an instant in the past with
// the run in flight (the server's overdue alert), and the instants it
// covered are recorded as missed once it ends.
func TestScheduledDrillOverdue(t *testing.T) {
	w := newWorld(t)
	withDrill(t, w, t.TempDir(), `{schedule: "@every 1h", keep: 90m}`)
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	w.tick(t0)
	w.tick(t0.Add(time.Hour))
	w.tick(t0.Add(time.Hour + time.Second))
	now := t0.Add(2*time.Hour + 15*time.Minute)
	w.tick(now)
	next, run, err := w.o.NextDrill(context.Background(), w.cfgWithDrill(t))
	if err != nil || run == nil || next == nil || !next.Equal(t0.Add(2*time.Hour)) || !next.Before(now) {
		t.Fatalf("NextDrill = %v, %+v, %v; want %s with a run in flight", next, run, err, t0.Add(2*time.Hour))
	}
	w.tick(t0.Add(2*time.Hour + 31*time.Minute)) // keep passed: cleanup
	w.tick(t0.Add(2*time.Hour + 32*time.Minute)) // done
	w.tick(t0.Add(2*time.Hour + 33*time.Minute)) // the instant at 12:00 is past the grace
	got := w.drills("alpha")
	if len(got) != 2 || !got[0].Missed || !got[1].Passed {
		t.Fatalf("drills: %+v", got)
	}
}
