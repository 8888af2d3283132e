package orchestrator

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/store"
)

// running lists what runs on site for plan's machines.
func (w *world) running(site, plan string) []string {
	var out []string
	for _, m := range w.machinesOfPlan(plan) {
		if w.host.Running(site, m) {
			out = append(out, m)
		}
	}
	return out
}

func (w *world) requireRunning(site, plan string) {
	w.t.Helper()
	if got, want := w.running(site, plan), w.machinesOfPlan(plan); !slices.Equal(got, want) {
		w.t.Fatalf("plan %s runs %v on site %s, want %v", plan, got, site, want)
	}
}

// TestSharedSiteUndoKeepsOtherPlans: the plans share the recovery and the
// test site. Cancelling one plan's failover, cleaning up one plan's drill
// and failing one plan back leave the other plan's machines running (and
// its site in place); the last one out removes the site.
func TestSharedSiteUndoKeepsOtherPlans(t *testing.T) {
	w := newWorld(t)
	w.run(PlannedFailover, "alpha", Params{})
	w.run(PlannedFailover, "beta", Params{})
	w.run(CancelFailover, "alpha", Params{})
	w.requireRunning(SiteRecovery, "beta")
	if st := w.plan("beta"); st.Phase != PhaseFailedOver {
		t.Fatalf("beta is %s", st.Phase)
	}
	if got := w.running(SiteRecovery, "alpha"); len(got) != 0 {
		t.Fatalf("alpha's cancelled failover still runs %v", got)
	}
	// The site stays for beta; alpha's published service goes with its
	// failover, beta's stays.
	w.checkPublished("alpha", false)
	w.checkPublished("beta", true)

	w.run(TestFailover, "alpha", Params{})
	w.run(TestFailover, "beta", Params{})
	w.run(TestCleanup, "beta", Params{})
	w.requireRunning(SiteTest, "alpha")
	w.run(TestCleanup, "alpha", Params{})
	if _, ok := w.host.Site(SiteTest); ok {
		t.Fatal("the test site outlived its last drill")
	}

	w.run(PlannedFailover, "alpha", Params{})
	for _, typ := range []JobType{Commit, Reprotect, Failback} {
		w.run(typ, "alpha", Params{})
	}
	w.requireRunning(SiteRecovery, "beta")
	w.checkPublished("alpha", false) // failed back
	w.checkPublished("beta", true)
	if sites := w.host.SiteCreations(SiteRecovery); sites != 1 {
		t.Fatalf("the recovery site was made %d times while beta ran on it", sites)
	}
	w.run(CancelFailover, "beta", Params{})
	if _, ok := w.host.Site(SiteRecovery); ok {
		t.Fatal("the recovery site outlived the last failover")
	}
}

// TestSharedSiteRemadeForPendingStart: a plan's undo removes the site
// while another plan's failover sits between its network step and its
// start (failed at its disks); the retried failover makes the site again
// before it starts its machines.
func TestSharedSiteRemadeForPendingStart(t *testing.T) {
	w := newWorld(t)
	w.run(PlannedFailover, "beta", Params{})
	w.host.FailNth("PrepareDisk", w.host.Count("PrepareDisk")+1, nil)
	j := w.wait(w.submit(PlannedFailover, "alpha", Params{}).ID)
	if j.State != store.Failed || !strings.Contains(j.Error, "disks") {
		t.Fatalf("alpha: %s %s", j.State, j.Error)
	}
	w.run(CancelFailover, "beta", Params{})
	if _, ok := w.host.Site(SiteRecovery); ok {
		t.Fatal("setup: the idle site was kept")
	}
	if _, err := w.o.Retry(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	if j := w.wait(j.ID); j.State != store.Succeeded {
		t.Fatalf("alpha after retry: %s %s", j.State, j.Error)
	}
	w.requireRunning(SiteRecovery, "alpha")
}

// TestSiteNetworkEditWhileFailedOver: a recovery network added to the
// config while a plan is failed over is added to the live site when the
// next failover needs it; a changed subnet under running machines is
// refused with a message naming them, and nothing that runs is stopped.
func TestSiteNetworkEditWhileFailedOver(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.run(PlannedFailover, "alpha", Params{})
	base := twoPlansConfig()
	added := strings.Replace(base, "recovery: [{name: rec, subnet: 10.1.0.0/24, gateway: 10.1.0.1}]",
		"recovery: [{name: rec, subnet: 10.1.0.0/24, gateway: 10.1.0.1}, {name: rec2, subnet: 10.2.0.0/24, gateway: 10.2.0.1}]", 1)
	if added == base {
		t.Fatal("setup: config edit did not apply")
	}
	if _, _, err := w.o.Apply(ctx, []byte(added)); err != nil {
		t.Fatal(err)
	}
	w.run(PlannedFailover, "beta", Params{})
	w.requireRunning(SiteRecovery, "alpha")
	site, _ := w.host.Site(SiteRecovery)
	if len(site.Networks) != 2 || w.host.SiteCreations(SiteRecovery) != 1 {
		t.Fatalf("site %+v made %d times; want rec2 added in place", site, w.host.SiteCreations(SiteRecovery))
	}
	w.run(CancelFailover, "beta", Params{})

	moved := strings.Replace(added, "{name: rec, subnet: 10.1.0.0/24, gateway: 10.1.0.1}", "{name: rec, subnet: 10.9.0.0/24, gateway: 10.9.0.1}", 1)
	if _, _, err := w.o.Apply(ctx, []byte(strings.Replace(moved, "10.1.0.", "10.9.0.", -1))); err != nil {
		t.Fatal(err)
	}
	j := w.wait(w.submit(PlannedFailover, "beta", Params{}).ID)
	if j.State != store.Failed || !strings.Contains(j.Error, "alpha-db") || !strings.Contains(j.Error, "rec") {
		t.Fatalf("beta over a changed subnet: %s %q; want a refusal naming alpha's machines", j.State, j.Error)
	}
	w.requireRunning(SiteRecovery, "alpha")
	if w.host.SiteCreations(SiteRecovery) != 1 {
		t.Fatal("the site was remade under alpha")
	}
	if !strings.Contains(j.Error, host.ErrSiteBusy.Error()) {
		t.Fatalf("error %q does not say the site is in use", j.Error)
	}
}
