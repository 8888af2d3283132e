package orchestrator

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/testenv"
)

// TestScheduledDrillTwoServersPostgres: two servers' schedulers, each on
// its own connection pool to one real PostgreSQL state, look at every
// instant at the same moment: each instant gets exactly one drill, run to
// its end and recorded once, and no instant is recorded as skipped.
func TestScheduledDrillTwoServersPostgres(t *testing.T) {
	ctx := context.Background()
	pg := testenv.StartPostgres(t, "fsync=off")
	if _, err := pg.Query(ctx, "CREATE DATABASE hvdrill"); err != nil {
		t.Fatal(err)
	}
	w := newWorld(t) // the fake recovery host, agents and the vault
	var orchs [2]*Orchestrator
	var sts [2]*store.Postgres
	for i := range orchs {
		st, err := store.OpenPostgres(ctx, pg.URL("hvdrill"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		opts := w.o.Options
		opts.Store = st
		sts[i], orchs[i] = st, New(opts)
		t.Cleanup(orchs[i].Close)
	}
	doc := strings.Replace(twoPlansConfig(), "  - name: alpha\n", "  - name: alpha\n    drill: {schedule: \"@every 1h\"}\n", 1)
	if _, _, err := orchs[0].Apply(ctx, []byte(doc)); err != nil {
		t.Fatal(err)
	}
	settle := func() {
		js, err := sts[0].Jobs(ctx, store.JobFilter{Active: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range js {
			for _, o := range orchs {
				o.Wait(j.ID)
			}
		}
	}
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	if err := orchs[0].RunDrills(ctx, t0); err != nil {
		t.Fatal(err)
	}
	const instants = 5
	for k := 1; k <= instants; k++ {
		slot := t0.Add(time.Duration(k) * time.Hour)
		var wg sync.WaitGroup
		for _, o := range orchs {
			wg.Go(func() { o.RunDrills(ctx, slot.Add(time.Second)) }) // the loser's error (stale) is expected
		}
		wg.Wait()
		settle()
		for i := range 4 { // the end noted, cleanup, closed; alternating servers
			if err := orchs[i%2].RunDrills(ctx, slot.Add(time.Duration(2+i)*time.Second)); err != nil {
				t.Fatalf("instant %d, step %d: %v", k, i, err)
			}
			settle()
		}
	}
	js, err := sts[1].Jobs(ctx, store.JobFilter{Plan: "alpha"})
	if err != nil {
		t.Fatal(err)
	}
	n := map[JobType]int{}
	for _, j := range js {
		n[j.Type]++
		if j.State != store.Succeeded {
			t.Errorf("job %s (%s) %s: %s", j.ID, j.Type, j.State, j.Error)
		}
	}
	if n[TestFailover] != instants || n[TestCleanup] != instants || len(js) != 2*instants {
		t.Fatalf("jobs %v, want %d test failovers and %d cleanups", n, instants, instants)
	}
	ds, err := sts[1].Drills(ctx, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	slots := map[time.Time]bool{}
	for _, d := range ds {
		if d.Skipped != "" || !d.Passed || d.Scheduled == nil || slots[*d.Scheduled] {
			t.Errorf("drill record %+v: want one passed drill per instant", d)
			continue
		}
		slots[*d.Scheduled] = true
	}
	if len(slots) != instants {
		t.Fatalf("%d instants drilled, want %d", len(slots), instants)
	}
}
