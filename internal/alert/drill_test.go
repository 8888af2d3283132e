package alert

import (
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/store"
)

func TestScheduledDrillRules(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	slot := now.Add(-time.Hour)
	failed := &store.Drill{JobID: "j1", Plan: "shop", Scheduled: &slot, Started: slot, CleanedUp: slot.Add(time.Minute), Error: "drill check: script app: exit status 1"}
	passed := &store.Drill{JobID: "j2", Plan: "shop", Scheduled: &slot, Started: slot, Passed: true}
	missed := &store.Drill{JobID: "scheduled:shop:x", Plan: "shop", Scheduled: &slot, Started: slot, Missed: true, Skipped: "missed 2 scheduled drill(s) from …"}
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	for _, tc := range []struct {
		name string
		p    Plan
		want map[string]string // id -> part of the summary
	}{
		{"passed, next ahead", Plan{Name: "shop", LastScheduled: passed, NextDrill: at(time.Hour)}, nil},
		{"failed", Plan{Name: "shop", LastScheduled: failed, NextDrill: at(time.Hour)},
			map[string]string{"drill-failed/shop": "exit status 1 (haven job show j1)"}},
		{"missed", Plan{Name: "shop", LastScheduled: missed}, map[string]string{"drill-missed/shop": "missed 2 scheduled"}},
		{"due within grace", Plan{Name: "shop", LastScheduled: passed, NextDrill: at(-time.Minute)}, nil},
		{"overdue, not started", Plan{Name: "shop", LastScheduled: passed, NextDrill: at(-20 * time.Minute)},
			map[string]string{"drill-overdue/shop": "overdue: not started"}},
		{"overdue, previous still runs", Plan{Name: "shop", NextDrill: at(-20 * time.Minute), DrillRunning: "t9"},
			map[string]string{"drill-overdue/shop": "test failover t9) still runs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]Alert{}
			for _, a := range Evaluate(Inputs{Now: now, DrillGrace: 10 * time.Minute, Plans: []Plan{tc.p}}) {
				got[a.ID] = a
			}
			if len(got) != len(tc.want) {
				t.Fatalf("alerts %v, want %v", got, tc.want)
			}
			for id, part := range tc.want {
				if a, ok := got[id]; !ok || !strings.Contains(a.Summary, part) {
					t.Errorf("alert %s = %+v, want a summary with %q", id, a, part)
				}
			}
		})
	}
}
