package orchestrator

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/orchestrator/orchtest"
	"github.com/haven-dr/haven/internal/store"
)

// backHost gives fake h replication back, as a remote `haven host` with
// a vault; it outlives the world's orchestrators.
func backHost(t testing.TB, w *world, h *orchtest.Host, name string) *orchtest.BackHost {
	t.Helper()
	bh, err := orchtest.NewBackHost(h, filepath.Join(w.env.Dir, "host-"+name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bh.Back.Close)
	return bh
}

// remoteWorld is the engine world whose one recovery host is remote and
// replicates back what it runs itself.
func remoteWorld(t testing.TB) *world {
	w := newWorld(t)
	w.back = backHost(t, w, w.host, "far")
	w.hosts = []SiteHost{{Name: "far", Host: w.back, Edge: true, Remote: true}}
	w.o.Close()
	w.start()
	if _, err := w.o.ApplyDoc(context.Background(), []byte(twoPlansConfig())); err != nil {
		t.Fatal(err)
	}
	return w
}

var backKinds = []JobType{Reprotect, Failback}

func backKind(t *testing.T, typ JobType) jobKind {
	i := slices.IndexFunc(jobKinds, func(k jobKind) bool { return k.typ == typ })
	if i < 0 {
		t.Fatalf("no job kind %s", typ)
	}
	return jobKinds[i]
}

// TestRemoteReplicationCrashAnywhereResumes: reprotect and failback of a
// plan on a remote host that replicates back itself, the server dying
// after each step and before each call (to the host's replication too),
// resumed each time: nothing twice, and the job ends as it does in one
// go, the host replicating back after a reprotect and not after a
// failback.
func TestRemoteReplicationCrashAnywhereResumes(t *testing.T) {
	for _, typ := range backKinds {
		t.Run(string(typ), func(t *testing.T) {
			crashAnywhere(t, backKind(t, typ), remoteWorld)
		})
	}
}

// TestRemoteReplicationCancelAfterEachStep: a reprotect or failback
// canceled after any step puts the world back, the remote host's
// replication back included (running again after a failback's cancel).
func TestRemoteReplicationCancelAfterEachStep(t *testing.T) {
	for _, typ := range backKinds {
		t.Run(string(typ), func(t *testing.T) {
			t.Parallel()
			cancelEachStep(t, backKind(t, typ), remoteWorld)
		})
	}
}

// TestRemoteReplicationRunsOnTheHost: the host does the replicating
// (the server holds no agent of its own for the plan), the failback
// restores exactly the points of the host's final pass, and the host
// forgets the plan afterwards.
func TestRemoteReplicationRunsOnTheHost(t *testing.T) {
	w := remoteWorld(t)
	ctx := context.Background()
	w.prepare(backKind(t, Failback), "alpha")
	rep := w.o.replicatorFor("alpha")
	if rep == nil || len(rep.parts) != 1 || rep.parts["far"] == nil {
		t.Fatalf("replication back of alpha: %+v, want the remote host's alone", rep)
	}
	if w.host.Count("Replication.Cycle") == 0 || !w.back.Back.Running("alpha") {
		t.Fatal("reprotect did not make the host replicate back")
	}
	w.host.ResetCalls()
	before := map[string]bool{}
	for _, m := range w.machinesOfPlan("alpha") {
		ps, err := w.env.Vault.Points(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			before[p.ID] = true
		}
	}
	j := w.run(Failback, "alpha", Params{})
	final := map[string]bool{}
	for _, c := range w.host.Calls() {
		if c.Method == "Replication.Snapshot" && c.Err == nil {
			final[c.Machine] = true
		}
	}
	out := outputsOf(t, j)
	for _, m := range w.machinesOfPlan("alpha") {
		p, ok := out.Points[m]
		if !ok {
			t.Fatalf("no final point of %s", m)
		}
		if _, err := w.env.Vault.FindPoint(ctx, m, p.ID); err != nil || before[p.ID] {
			t.Fatalf("final point %s of %s: %v (taken before the failback: %v)", p.ID, m, err, before[p.ID])
		}
	}
	if len(final) == 0 {
		t.Fatal("the final pass was not taken by the host")
	}
	if w.back.Back.Running("alpha") {
		t.Fatal("the host replicates back after the failback")
	}
	if err := w.back.Back.Cycle(ctx, "alpha", "alpha"); !errors.Is(err, host.ErrNoReplication) {
		t.Fatalf("the host still holds alpha after the failback: %v", err)
	}
}

// TestReprotectRefusedOnHostWithoutVault: a remote host that cannot
// replicate back (no vault) refuses reprotect at its first step, naming
// machine and host, before anything is recorded or ordered.
func TestReprotectRefusedOnHostWithoutVault(t *testing.T) {
	w := remoteWorld(t)
	w.run(PlannedFailover, "alpha", Params{})
	w.run(Commit, "alpha", Params{})
	w.back.Ready = errors.New("no vault configured")
	j := w.wait(w.submit(Reprotect, "alpha", Params{}).ID)
	if j.State != store.Failed || !strings.Contains(j.Error, "runs on recovery host far, a haven host on another machine, which cannot replicate it back: no vault configured") {
		t.Fatalf("reprotect: %s: %q", j.State, j.Error)
	}
	if out := outputsOf(t, j); len(out.Resources) != 0 {
		t.Fatalf("recorded before the refusal: %+v", out.Resources)
	}
	if n := w.host.Count("Replication.Ensure"); n != 0 {
		t.Fatalf("%d orders to replicate back before the refusal", n)
	}
}

// TestFailbackAcrossHosts: alpha's database on a remote host that
// replicates back itself, its web server on a host of the server's own
// machine: reprotect replicates each where it runs, and the failback
// restores onto the primaries the points of both final passes.
func TestFailbackAcrossHosts(t *testing.T) {
	w, fakes := hostsWorld(t)
	remote := w.placed()["alpha-db"]
	if remote == w.placed()["alpha-web"] {
		t.Fatalf("alpha's machines on one host %s", remote)
	}
	bh := backHost(t, w, fakes[remote], remote)
	for i := range w.hosts {
		if w.hosts[i].Name == remote {
			w.hosts[i].Host, w.hosts[i].Remote = bh, true
		}
	}
	w.o.Close()
	w.start()
	w.run(PlannedFailover, "alpha", Params{})
	w.run(Commit, "alpha", Params{})
	w.run(Reprotect, "alpha", Params{})
	rep := w.o.replicatorFor("alpha")
	if rep == nil || rep.of["alpha-db"] != remote || rep.of["alpha-web"] != "" || !rep.running() || !bh.Back.Running("alpha") {
		t.Fatalf("replication back of alpha: %+v", rep)
	}
	// The server restarts: the host went on; the server takes it up.
	w.restart()
	if rep := w.o.replicatorFor("alpha"); rep == nil || !rep.running() || !bh.Back.Running("alpha") {
		t.Fatal("replication back not resumed after the server's restart")
	}
	bh.ResetCalls()
	j := w.run(Failback, "alpha", Params{})
	out := outputsOf(t, j)
	var snaps []string
	for _, c := range bh.Calls() {
		if c.Method == "Replication.Snapshot" && c.Err == nil {
			snaps = append(snaps, c.Machine)
		}
	}
	if !slices.Equal(snaps, []string{"alpha-db"}) {
		t.Fatalf("final passes on the remote host: %v, want alpha-db's alone", snaps)
	}
	for _, m := range []string{"alpha-db", "alpha-web"} {
		if _, err := w.env.Vault.FindPoint(context.Background(), m, out.Points[m].ID); err != nil {
			t.Fatalf("final point of %s: %v", m, err)
		}
	}
	if bh.Back.Running("alpha") || w.o.replicatorFor("alpha") != nil {
		t.Fatal("replication back still held after the failback")
	}
}
