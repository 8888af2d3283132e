package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
)

// TestRecoveredMachines: the machines a failover (site rec) and a test
// failover (site test) started are listed with the job and the host each
// runs on now (after recover-machines moved one, the new host); a host
// that cannot report memory says so; after the cancel and the cleanup
// nothing is listed.
func TestRecoveredMachines(t *testing.T) {
	w, fakes := hostsWorld(t)
	ctx := context.Background()
	fo := w.run(PlannedFailover, "alpha", Params{})
	x := w.placed()["alpha-db"]
	fakes[x].Lose(nil)
	w.run(RecoverMachines, "alpha", Params{})
	tf := w.run(TestFailover, "beta", Params{})
	list := func() []string {
		rms, err := w.o.RecoveredMachines(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, rm := range rms {
			if !errors.Is(rm.Err, ErrNoMemoryStatus) || !rm.Running {
				t.Errorf("%s: running %v, err %v: want running, on a host that cannot report memory", rm.Machine, rm.Running, rm.Err)
			}
			out = append(out, fmt.Sprintf("%s %s %s %s %s", rm.Plan, rm.Machine, rm.Site, rm.Job, rm.Host))
		}
		return out
	}
	p := w.placed()
	want := []string{
		fmt.Sprintf("alpha alpha-db rec %s %s", fo.ID, p["alpha-db"]),
		fmt.Sprintf("alpha alpha-web rec %s %s", fo.ID, p["alpha-web"]),
		fmt.Sprintf("beta beta-db test %s %s", tf.ID, p["beta-db"]),
		fmt.Sprintf("beta beta-web test %s %s", tf.ID, p["beta-web"]),
	}
	if got := list(); !slices.Equal(got, want) || p["alpha-db"] == x {
		t.Fatalf("recovered machines:\n%q\nwant\n%q (alpha-db off the lost host %s)", got, want, x)
	}
	w.run(CancelFailover, "alpha", Params{})
	w.run(TestCleanup, "beta", Params{})
	if got := list(); len(got) != 0 {
		t.Fatalf("after cancel and cleanup: %q", got)
	}
}
