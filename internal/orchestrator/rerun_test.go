package orchestrator

import (
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/store"
)

// RerunAll: every step runs again, except that a job past its point of
// no return keeps that step begun, so cancel is still refused.
func TestRerunAll(t *testing.T) {
	now := time.Now()
	steps := func(last store.StepState) []store.Step {
		return []store.Step{{Name: "first", State: store.StepDone, Started: &now, Ended: &now, Tries: 1},
			{Name: "remove the recovery copy", State: last, Started: &now, Error: "boom", Tries: 2},
			{Name: "after", State: store.StepPending}}
	}
	j := &store.Job{Type: Failback, Steps: steps(store.StepFailed)}
	RerunAll(j)
	if _, past := pastNoReturn(j); !past {
		t.Fatal("a failback past its point of no return may be canceled after RerunAll")
	}
	for i, s := range j.Steps {
		want := store.StepPending
		if i == 1 {
			want = store.StepRunning
		}
		if s.State != want || s.Ended != nil || s.Error != "" {
			t.Errorf("step %d: %+v, want %s", i, s, want)
		}
	}
	if j.Steps[1].Tries != 2 || j.Steps[0].Started != nil {
		t.Errorf("tries or start kept wrong: %+v", j.Steps)
	}
	j = &store.Job{Type: Failback, Steps: steps(store.StepPending)}
	RerunAll(j)
	for i, s := range j.Steps {
		if s.State != store.StepPending {
			t.Errorf("before the point of no return, step %d: %+v, want pending", i, s)
		}
	}
	if _, past := pastNoReturn(j); past {
		t.Error("a failback before its point of no return is past it after RerunAll")
	}
}
