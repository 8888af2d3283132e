package orchestrator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/orchestrator/orchtest"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/vault"
)

// toReprotected fails plan over (planned), commits and reprotects it, and
// returns the failover job's ID.
func (w *world) toReprotected(plan string) string {
	w.t.Helper()
	fo := w.run(PlannedFailover, plan, Params{})
	w.run(Commit, plan, Params{})
	w.run(Reprotect, plan, Params{})
	return fo.ID
}

// diskBytes of machine m at the primary site and, for failover job fid,
// at the recovery site.
func (w *world) primaryDisk(m, d string) []byte {
	b, err := os.ReadFile(w.agents.DiskPath(m, d))
	if err != nil {
		w.t.Fatal(err)
	}
	return b
}

func (w *world) recoveryDiskPath(fid, m, d string) string {
	return filepath.Join(w.env.Dir, "disks", fid, m, d+".img")
}

func (w *world) outputsOf(j *store.Job) *Outputs {
	w.t.Helper()
	var out Outputs
	if err := json.Unmarshal(j.Outputs, &out); err != nil {
		w.t.Fatal(err)
	}
	return &out
}

func (w *world) disksOf(m string) []string {
	var out []string
	for _, d := range w.cfg.Machine(m).Disks {
		out = append(out, d.Name)
	}
	return out
}

func (w *world) pointBytes(m, id, d string) []byte {
	w.t.Helper()
	to := filepath.Join(w.t.TempDir(), "point.img")
	if _, err := w.env.Vault.Restore(context.Background(), vault.RestoreOptions{Machine: m, Point: id, Disk: d, Target: to}); err != nil {
		w.t.Fatal(err)
	}
	b, _ := os.ReadFile(to)
	return b
}

// TestFailbackRestoresRecoveryFinalPass: the old primary's agent is back,
// its machines up and writing, its points stamped an hour ahead. Failback
// fences it, restores exactly what the recovery copy held at its final
// pass, and keeps the primary's stale state as the preserved point.
func TestFailbackRestoresRecoveryFinalPass(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	fid := w.toReprotected("alpha")
	want, stale := map[string][]byte{}, map[string][]byte{}
	for _, m := range w.machinesOfPlan("alpha") {
		for _, d := range w.disksOf(m) {
			rec := w.recoveryDiskPath(fid, m, d)
			f, err := os.OpenFile(rec, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt([]byte("written at the recovery site: "+m+"/"+d), 100)
			f.Close()
			want[m+"/"+d], _ = os.ReadFile(rec)
			w.agents.Write(m, d, 100, []byte("the old primary came back and wrote this"))
			stale[m+"/"+d] = w.primaryDisk(m, d)
		}
		w.agents.SetRunning(m, true)
		if _, err := w.agents.SnapshotAt(ctx, m, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var order []string
	note := func(_ context.Context, c orchtest.Call) error {
		mu.Lock()
		order = append(order, c.Method+" "+c.Site)
		mu.Unlock()
		return nil
	}
	w.agents.SetHook(note)
	w.host.SetHook(note)
	j := w.run(Failback, "alpha", Params{})
	out := w.outputsOf(j)
	for _, m := range w.machinesOfPlan("alpha") {
		for _, d := range w.disksOf(m) {
			if !bytes.Equal(w.primaryDisk(m, d), want[m+"/"+d]) {
				t.Errorf("%s/%s: the primary did not get the recovery copy's final state (point %s)", m, d, out.Points[m].ID)
			}
			if p := out.Preserved[m]; p == "" || !bytes.Equal(w.pointBytes(m, p, d), stale[m+"/"+d]) {
				t.Errorf("%s/%s: preserved point %q does not hold the old primary's own writes", m, d, p)
			}
		}
		if !w.agents.Running(m) {
			t.Errorf("primary %s not started", m)
		}
	}
	if len(order) == 0 || order[0] != "Agent.Stop " {
		t.Errorf("the failback's calls began %v; want the old primary fenced first", order[:min(3, len(order))])
	}
}

// failbackRun submits a failback of plan, calling fn right after its step
// i is saved done; the caller clears the hook once the job stopped.
func (w *world) failbackRun(plan string, i int, fn func(id string)) *store.Job {
	var mu sync.Mutex
	var id string
	w.afterStep(func(j *store.Job) bool {
		if j.Type != Failback || j.Plan != plan {
			return false
		}
		mu.Lock()
		id = j.ID
		mu.Unlock()
		return true
	}, i, func() {
		mu.Lock()
		x := id
		mu.Unlock()
		fn(x)
	})
	return w.submit(Failback, plan, Params{})
}

// TestFailbackCancelAfterEachStep: a failback cancelled after any of its
// steps puts the world back as it was before it (recovery machines
// running, replication back on, DNS on the recovery site, the primaries
// stopped, the plan reprotected); once the recovery copy is being
// removed, cancel finishes the failback instead.
func TestFailbackCancelAfterEachStep(t *testing.T) {
	probe := newWorld(t)
	probe.toReprotected("alpha")
	j := probe.run(Failback, "alpha", Params{})
	for i, s := range j.Steps[:len(j.Steps)-1] {
		t.Run(s.Name, func(t *testing.T) {
			w := newWorld(t)
			ctx := context.Background()
			w.toReprotected("alpha")
			before := w.state()
			fb := w.failbackRun("alpha", i, w.cancelRunning)
			w.wait(fb.ID)
			w.clearHooks()
			_, err := w.o.Cancel(ctx, fb.ID)
			if s.Name == "remove the recovery copy" {
				// Past the point of no return: refused, and the
				// failback finishes.
				if !errors.Is(err, ErrPrecondition) {
					t.Fatalf("cancel past the point of no return: %v, want it refused", err)
				}
				if got := w.wait(fb.ID); got.State != store.Succeeded {
					t.Fatalf("failback ended %s: %s", got.State, got.Error)
				}
				if st := w.plan("alpha"); st.Phase != PhaseProtected {
					t.Fatalf("plan is %s after a cancel past the point of no return", st.Phase)
				}
				if got := w.running(SiteRecovery, "alpha"); len(got) != 0 || !w.agents.Running("alpha-db") {
					t.Fatalf("not failed back: recovery runs %v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := w.wait(fb.ID); got.State != store.Canceled {
				t.Fatalf("cancel ended %s: %s", got.State, got.Error)
			}
			if st := w.plan("alpha"); st.Phase != PhaseReprotected {
				t.Fatalf("plan is %s", st.Phase)
			}
			if d := w.diffState(before, w.state()); d != "" {
				t.Fatalf("the world after cancel differs:%s", d)
			}
			// And the plan can still fail back.
			w.run(Failback, "alpha", Params{})
		})
	}
}

// TestFailbackPreservedPointOnFailedRestore: a restore that fails after
// the old primary's disks were preserved records that point; the retry
// uses it again rather than preserving the half-written disks.
func TestFailbackPreservedPointOnFailedRestore(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.toReprotected("alpha")
	w.agents.Write("alpha-db", "root", 0, []byte("the old primary's last words"))
	stale := w.primaryDisk("alpha-db", "root")
	w.agents.FailRestoreAfterPreserve("alpha-db", 1)
	j := w.wait(w.submit(Failback, "alpha", Params{}).ID)
	if j.State != store.Failed || !strings.Contains(j.Error, "restore") {
		t.Fatalf("failback: %s %s", j.State, j.Error)
	}
	first := w.outputsOf(j).Preserved["alpha-db"]
	if first == "" {
		t.Fatal("the failed restore's preserved point is not recorded")
	}
	if _, err := w.o.Retry(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	j = w.wait(j.ID)
	if j.State != store.Succeeded {
		t.Fatalf("retry: %s %s", j.State, j.Error)
	}
	if got := w.outputsOf(j).Preserved["alpha-db"]; got != first {
		t.Fatalf("the report names %s, not the first preserved point %s", got, first)
	}
	ps, _ := w.env.Vault.Points(ctx, "alpha-db")
	var kept []string
	for _, p := range ps {
		if p.Preserved() {
			kept = append(kept, p.ID)
		}
	}
	if len(kept) != 1 || !bytes.Equal(w.pointBytes("alpha-db", first, "root"), stale) {
		t.Fatalf("preserved points %v; want only %s, holding the disk before any write", kept, first)
	}
}

// TestFailbackManualGateWaits: a manual gate for the failback direction
// stops the failback before production is touched (recovery machines
// running, replication back on) until it is approved; the failover in
// the other direction passes it.
func TestFailbackManualGateWaits(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	doc := strings.Replace(twoPlansConfig(), "        machines: [alpha-db]\n",
		"        machines: [alpha-db]\n        before: [{type: manual, message: \"is the primary site sound?\", directions: [failback]}]\n", 1)
	if _, _, err := w.o.Apply(ctx, []byte(doc)); err != nil {
		t.Fatal(err)
	}
	w.toReprotected("alpha")
	j := w.wait(w.submit(Failback, "alpha", Params{}).ID)
	if j.State != store.Waiting {
		t.Fatalf("failback with a failback gate: %s %s", j.State, j.Error)
	}
	w.requireRunning(SiteRecovery, "alpha")
	if ws := w.state(); len(ws.Replicating) != 1 {
		t.Fatalf("replication back stopped before approval: %v", ws.Replicating)
	}
	if _, err := w.o.Approve(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	if j = w.wait(j.ID); j.State != store.Succeeded {
		t.Fatalf("after approval: %s %s", j.State, j.Error)
	}
}

// TestFailbackKeepsRecoveryCopyWhilePrimaryUnhealthy: with the primary's
// endpoint failing the traffic manager's probe, the failback stops before
// removing the recovery copy; once healthy, a retry finishes it.
func TestFailbackKeepsRecoveryCopyWhilePrimaryUnhealthy(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	doc := strings.ReplaceAll(twoPlansConfig(), "    health: {tcp_port: ", "    health_timeout: 1s\n    health: {tcp_port: ")
	if _, _, err := w.o.Apply(ctx, []byte(doc)); err != nil {
		t.Fatal(err)
	}
	fid := w.toReprotected("alpha")
	w.traffic.SetDown("alpha", "dc1", "connection refused")
	j := w.wait(w.submit(Failback, "alpha", Params{}).ID)
	if j.State != store.Failed || !strings.Contains(j.Error, "primaries healthy") || !strings.Contains(j.Error, "Degraded") {
		t.Fatalf("failback to an unhealthy primary: %s %s", j.State, j.Error)
	}
	rec := w.recoveryDiskPath(fid, "alpha-db", "root")
	if _, err := os.Stat(rec); err != nil {
		t.Fatalf("the recovery copy went while the primary is unhealthy: %v", err)
	}
	w.traffic.SetDown("alpha", "dc1", "")
	if _, err := w.o.Retry(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	if j = w.wait(j.ID); j.State != store.Succeeded {
		t.Fatalf("retry: %s %s", j.State, j.Error)
	}
	if _, err := os.Stat(rec); !os.IsNotExist(err) {
		t.Fatalf("recovery copy after the failback: %v", err)
	}
}
