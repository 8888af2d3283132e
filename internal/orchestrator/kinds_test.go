package orchestrator

import (
	"errors"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/store"
)

// A version that reorders or inserts steps resumes each recorded step by
// name: a done step stays done wherever it moved, an inserted one runs, and
// a recorded step it does not know (done or running) is refused, never
// silently dropped. Matching by count would have skipped "b" here.
func TestMatchStepsByName(t *testing.T) {
	rec := []store.Step{{Name: "a", State: store.StepDone}, {Name: "b", State: store.StepRunning, Tries: 1}, {Name: "c", State: store.StepPending}}
	steps := []step{{name: "new"}, {name: "b"}, {name: "a"}, {name: "c"}}
	got, err := matchSteps("j", rec, steps)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Step{{Name: "new", State: store.StepPending}, {Name: "b", State: store.StepRunning, Tries: 1}, {Name: "a", State: store.StepDone}, {Name: "c", State: store.StepPending}}
	for i := range want {
		if got[i].Name != want[i].Name || got[i].State != want[i].State || got[i].Tries != want[i].Tries {
			t.Errorf("step %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if _, err := matchSteps("j", rec, []step{{name: "a"}, {name: "c"}}); err == nil || !strings.Contains(err.Error(), `"b"`) {
		t.Errorf("a running step unknown to this version: err = %v, want it named", err)
	}
	if _, err := matchSteps("j", rec, []step{{name: "a"}, {name: "b"}}); err != nil {
		t.Errorf("a pending step dropped by this version is harmless: %v", err)
	}
	// Two steps of one name keep their own states, in order.
	twice := []store.Step{{Name: "dns", State: store.StepDone}, {Name: "dns", State: store.StepPending}}
	got, err = matchSteps("j", twice, []step{{name: "dns"}, {name: "dns"}})
	if err != nil || got[0].State != store.StepDone || got[1].State != store.StepPending {
		t.Errorf("two steps of one name: %+v, %v", got, err)
	}
}

// Every job type is in the registry with a precondition and steps, and a
// kind refuses the options it does not take.
func TestKindsRegistry(t *testing.T) {
	for _, typ := range Kinds() {
		k, err := kindOf(typ)
		if err != nil || k.precondition == nil || k.steps == nil {
			t.Errorf("%s: kind %+v, err %v", typ, k, err)
		}
	}
	if _, err := kindOf("reboot-everything"); !errors.Is(err, ErrBadRequest) {
		t.Errorf("unknown type: %v", err)
	}
	if err := kinds[Commit].check(Commit, Params{Point: "latest"}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("commit --point: %v, want a bad request", err)
	}
	if err := kinds[UnplannedFailover].check(UnplannedFailover, Params{Point: "latest", Force: true}); err != nil {
		t.Errorf("unplanned --point --force: %v", err)
	}
	if err := kinds[PlannedFailover].check(PlannedFailover, Params{Force: true}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("planned --force: %v, want a bad request", err)
	}
}
