package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/server"
	"github.com/haven-dr/haven/internal/store"
)

// submit starts a job of typ on plan shop and returns its ID.
func (r *running) submit(t *testing.T, typ string) string {
	t.Helper()
	a := r.admin(t, "POST", "/v1/plans/shop/jobs", []byte(fmt.Sprintf(`{"type":%q}`, typ)))
	if a.status != http.StatusAccepted {
		t.Fatalf("submit %s: %d %s", typ, a.status, a.body)
	}
	var j store.Job
	a.decode(t, &j)
	return j.ID
}

// waitJob waits until job id is in one of states and returns it.
func (r *running) waitJob(t *testing.T, id string, states ...store.JobState) *store.Job {
	t.Helper()
	var j store.Job
	eventually(t, "job "+id+" in "+fmt.Sprint(states), func() bool {
		r.admin(t, "GET", "/v1/jobs/"+id, nil).decode(t, &j)
		for _, s := range states {
			if j.State == s {
				return true
			}
		}
		return false
	})
	return &j
}

func (r *running) plan(t *testing.T) store.PlanState {
	t.Helper()
	var ps store.PlanState
	r.admin(t, "GET", "/v1/plans/shop", nil).decode(t, &ps)
	return ps
}

// failedOver runs an unplanned failover of shop on a server of e and
// leaves the plan failed-over with that failover's record in the vault's
// catalog. The failover is the server's own job (its steps, its config
// snapshot); what a recovery host would have done for its host steps —
// disks written, machines started — the test stands in for, writing disk
// files and the outputs those steps record. It returns the job and the
// disk files.
func failedOver(t *testing.T, e *env) (string, []string) {
	t.Helper()
	r := e.start(t)
	r.mustApply(t, e.doc())
	id := r.submit(t, string(orchestrator.UnplannedFailover))
	r.waitJob(t, id, store.Failed) // no points in the vault: it stops at choosing them
	ctx := context.Background()
	st := r.Orchestrator().Store
	j, err := st.Job(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var out orchestrator.Outputs
	if err := json.Unmarshal(j.Outputs, &out); err != nil {
		t.Fatal(err)
	}
	out.Site = orchestrator.SiteRecovery
	out.Points = map[string]orchestrator.PointUse{}
	out.Resources = []orchestrator.Resource{{Kind: orchestrator.ResSite, Site: orchestrator.SiteRecovery}}
	var disks []string
	for _, m := range []string{"db", "web"} {
		p := filepath.Join(e.dir, "lost-host", "disks", id, m, "root.img")
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("disk of "+m), 0o600); err != nil {
			t.Fatal(err)
		}
		disks = append(disks, p)
		out.Points[m] = orchestrator.PointUse{ID: "p-" + m, Time: time.Now().UTC()}
		out.Resources = append(out.Resources, orchestrator.Resource{Kind: orchestrator.ResDisk, Name: m, Path: p},
			orchestrator.Resource{Kind: orchestrator.ResMachine, Site: orchestrator.SiteRecovery, Name: m})
	}
	now := time.Now().UTC()
	for i := range j.Steps {
		j.Steps[i].State, j.Steps[i].Error, j.Steps[i].Ended = store.StepDone, "", &now
	}
	j.Outputs, _ = json.Marshal(out)
	j.State, j.Error, j.Ended = store.Succeeded, "", &now
	if err := st.SaveJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	if err := st.PutPlanState(ctx, &store.PlanState{Plan: "shop", Phase: orchestrator.PhaseFailedOver, Failover: id}); err != nil {
		t.Fatal(err)
	}
	// Any change saves the catalog; an apply is one the test can wait for.
	v := r.mustApply(t, edit(t, e.doc(), "tcp_port: 5432", "tcp_port: 5433"))
	eventually(t, "catalog with the failed-over plan", func() bool { return catalogVersion(t, e) == v })
	return id, disks
}

// recovered rebuilds a server from e's vault on a new state directory and
// starts it. Its token files stay the lost server's (the operator's
// copies): the token hashes come back with the catalog and accept them.
func recovered(t *testing.T, e *env, name string) *running {
	t.Helper()
	cfg := *e.cfg
	cfg.StateDir = filepath.Join(e.dir, name)
	if err := server.RecoverFromVault(context.Background(), &cfg, false, quiet); err != nil {
		t.Fatal(err)
	}
	e2 := *e
	e2.cfg = &cfg
	r := e2.start(t)
	if ps := r.plan(t); ps.Phase != orchestrator.PhaseFailedOver || ps.Failover == "" {
		t.Fatalf("recovered plan state %+v, want failed-over with its failover", ps)
	}
	return r
}

// TestRecoveredFailedOverPlanCanBeCanceled: a server recovered from the
// vault cancels a failover the lost server ran: it removes what that
// failover created (its disks here) and the plan is protected again.
func TestRecoveredFailedOverPlanCanBeCanceled(t *testing.T) {
	e := newEnv(t, nil)
	fo, disks := failedOver(t, e)
	r := recovered(t, e, "new-state")
	id := r.submit(t, string(orchestrator.CancelFailover))
	if j := r.waitJob(t, id, store.Succeeded, store.Failed); j.State != store.Succeeded {
		t.Fatalf("cancel-failover of the recovered failover %s: %s: %s", fo, j.State, j.Error)
	}
	if ps := r.plan(t); ps.Phase != orchestrator.PhaseProtected || ps.Failover != "" {
		t.Fatalf("plan after cancel: %+v", ps)
	}
	for _, d := range disks {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("disk %s the failover created is still there (%v)", d, err)
		}
	}
}

// TestRecoveredFailedOverPlanCanBeCommitted: commit, and reprotect after
// it finds the failover's record (its config and disks) to act on.
func TestRecoveredFailedOverPlanCanBeCommitted(t *testing.T) {
	e := newEnv(t, nil)
	fo, _ := failedOver(t, e)
	r := recovered(t, e, "new-state")
	id := r.submit(t, string(orchestrator.Commit))
	if j := r.waitJob(t, id, store.Succeeded, store.Failed); j.State != store.Succeeded {
		t.Fatalf("commit of the recovered failover: %s: %s", j.State, j.Error)
	}
	if ps := r.plan(t); ps.Phase != orchestrator.PhaseCommitted || ps.Failover != fo {
		t.Fatalf("plan after commit: %+v, want committed with failover %s", ps, fo)
	}
	st := r.Orchestrator().Store
	j, err := st.Job(context.Background(), fo)
	if err != nil || len(j.Config) == 0 || len(j.Steps) == 0 || len(j.Outputs) == 0 {
		t.Fatalf("recovered failover %s lacks its record (config %d bytes, %d steps): %v", fo, len(j.Config), len(j.Steps), err)
	}
}
