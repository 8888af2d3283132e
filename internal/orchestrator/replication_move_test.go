package orchestrator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/orchestrator/orchtest"
	"github.com/haven-dr/haven/internal/store"
)

// movedWorld is hostsWorld with b and c remote hosts that replicate
// back themselves (a, the edge, too when remoteA; else it is on the
// server's machine, and alpha-db moves into the server's agent), alpha
// failed over, committed and reprotected, and alpha-db's host x lost:
// its replication loop ends (the machine died) and it answers nothing.
type movedWorld struct {
	*world
	fakes map[string]*orchtest.Host
	back  map[string]*orchtest.BackHost
	x     string
}

func newMovedWorld(t *testing.T, remoteA bool) *movedWorld {
	w, fakes := hostsWorld(t)
	mw := &movedWorld{world: w, fakes: fakes, back: map[string]*orchtest.BackHost{}}
	remote := []string{"b", "c"}
	if remoteA {
		remote = append(remote, "a")
	}
	for _, n := range remote {
		mw.back[n] = backHost(t, w, fakes[n], n)
	}
	mw.wire()
	w.o.Close()
	w.start()
	w.run(PlannedFailover, "alpha", Params{})
	w.run(Commit, "alpha", Params{})
	w.run(Reprotect, "alpha", Params{})
	mw.x = w.placed()["alpha-db"]
	if mw.back[mw.x] == nil || !mw.back[mw.x].Back.Running("alpha") {
		t.Fatalf("alpha-db on %s, which does not replicate it back", mw.x)
	}
	fakes[mw.x].Lose(nil)
	mw.back[mw.x].Back.Close()
	return mw
}

// wire makes the world's hosts b and c the remote back hosts.
func (w *movedWorld) wire() {
	for i := range w.hosts {
		if bh := w.back[w.hosts[i].Name]; bh != nil {
			w.hosts[i].Host, w.hosts[i].Remote = bh, true
		}
	}
}

// comeBack brings x back with what it kept on disk: its order of alpha,
// whose loop it runs again unasked; the server restarts to reach it.
func (w *movedWorld) comeBack() *orchtest.BackHost {
	w.t.Helper()
	w.fakes[w.x].Back()
	w.back[w.x] = backHost(w.t, w.world, w.fakes[w.x], w.x)
	w.wire()
	w.restart()
	return w.back[w.x]
}

// checkFollows: alpha's replication back replicates each machine on the
// host it runs on, and runs.
func (w *movedWorld) checkFollows() string {
	w.t.Helper()
	to := w.placed()["alpha-db"]
	if to == w.x || !w.fakes[to].Running(SiteRecovery, "alpha-db") {
		w.t.Fatalf("alpha-db placed on %s (lost %s)", to, w.x)
	}
	rep := w.o.replicatorFor("alpha")
	if rep == nil || !rep.running() {
		w.t.Fatalf("replication back of alpha: %+v, not running", rep)
	}
	for _, m := range w.machinesOfPlan("alpha") {
		on, want := w.placed()[m], ""
		if w.back[on] != nil {
			want = on
		}
		if rep.of[m] != want {
			w.t.Fatalf("replication back of alpha: %s replicated by %q, want %q (it runs on %s)", m, rep.of[m], want, on)
		}
	}
	if w.back[to] != nil && !w.back[to].Back.Running("alpha") {
		w.t.Fatalf("host %s does not replicate alpha-db back", to)
	}
	return to
}

// failback runs the failback and checks it restored, for every machine,
// the point of its final pass, taken where the machine runs.
func (w *movedWorld) failback() *store.Job {
	w.t.Helper()
	ctx := context.Background()
	to := w.placed()["alpha-db"]
	before := map[string]bool{}
	for _, m := range w.machinesOfPlan("alpha") {
		ps, err := w.env.Vault.Points(ctx, m)
		if err != nil {
			w.t.Fatal(err)
		}
		for _, p := range ps {
			before[p.ID] = true
		}
	}
	for _, bh := range w.back {
		bh.ResetCalls()
	}
	w.agents.ResetCalls()
	// What alpha-db wrote where it runs now reaches its primary.
	marker := []byte("written on " + to + " after the move")
	disk := w.cfg.Machine("alpha-db").Disks[0].Name
	if err := writeAt(filepath.Join(w.diskDir, w.plan("alpha").Failover, "alpha-db", disk+".img"), marker); err != nil {
		w.t.Fatal(err)
	}
	j := w.run(Failback, "alpha", Params{})
	if got, err := readAt(w.agents.DiskPath("alpha-db", disk), len(marker)); err != nil || !bytes.Equal(got, marker) {
		w.t.Fatalf("primary alpha-db's disk begins %q (%v), want %q", got, err, marker)
	}
	out := outputsOf(w.t, j)
	for _, m := range w.machinesOfPlan("alpha") {
		p, ok := out.Points[m]
		if !ok {
			w.t.Fatalf("no final point of %s", m)
		}
		if _, err := w.env.Vault.FindPoint(ctx, m, p.ID); err != nil || before[p.ID] {
			w.t.Fatalf("final point %s of %s: %v (taken before the failback: %v)", p.ID, m, err, before[p.ID])
		}
		var got []string
		for _, c := range w.agents.Calls() {
			if c.Method == "Agent.Restore" && c.Machine == m && c.Err == nil {
				got = append(got, c.Point)
			}
		}
		if !slices.Equal(got, []string{p.ID}) {
			w.t.Fatalf("primary %s restored from %v, the final pass wrote %s", m, got, p.ID)
		}
	}
	for n, bh := range w.back {
		var snaps, want []string
		for _, c := range bh.Calls() {
			if c.Method == "Replication.Snapshot" && c.Err == nil {
				snaps = append(snaps, c.Machine)
			}
		}
		for _, m := range w.machinesOfPlan("alpha") {
			if w.placed()[m] == n {
				want = append(want, m)
			}
		}
		slices.Sort(snaps)
		slices.Sort(want)
		if !slices.Equal(snaps, want) {
			w.t.Fatalf("final passes on %s: %v, want those of the machines it runs: %v", n, snaps, want)
		}
	}
	if w.o.replicatorFor("alpha") != nil || (w.back[to] != nil && w.back[to].Back.Running("alpha")) {
		w.t.Fatal("replication back still held after the failback")
	}
	return j
}

func (w *movedWorld) left() []string {
	w.t.Helper()
	_, fo, err := w.o.outputsOf(context.Background(), w.plan("alpha").Failover)
	if err != nil {
		w.t.Fatal(err)
	}
	return fo.ReplicationLeft
}

// TestReplicationBackFollowsRecoveredMachines: alpha reprotected over
// hosts, alpha-db's host lost, recover-machines brings alpha-db up on
// another host and its replication back there; the lost host, back,
// has its order dropped by the standby loop, and the failback restores
// exactly the final-pass points, alpha-db's taken where it runs now.
func TestReplicationBackFollowsRecoveredMachines(t *testing.T) {
	eachMove(t, func(t *testing.T, remoteA bool) {
		w := newMovedWorld(t, remoteA)
		j := w.run(RecoverMachines, "alpha", Params{})
		if s := j.Steps[len(j.Steps)-1]; s.State != store.StepDone {
			t.Fatalf("step %q: %s", s.Name, s.State)
		}
		w.checkFollows()
		if l := w.left(); !slices.Equal(l, []string{w.x}) {
			t.Fatalf("hosts left holding alpha's order: %v, want [%s]", l, w.x)
		}
		bh := w.comeBack()
		w.checkFollows()
		if err := w.o.RefreshStandby(context.Background()); err != nil {
			t.Fatal(err)
		}
		if bh.Back.Running("alpha") || !errors.Is(bh.Back.Cycle(context.Background(), "alpha", "alpha"), host.ErrNoReplication) {
			t.Fatalf("host %s, back, still holds alpha's replication back", w.x)
		}
		if l := w.left(); len(l) != 0 {
			t.Fatalf("hosts left holding alpha's order after the drop: %v", l)
		}
		w.failback()
	})
}

// TestReplicationBackFollowsHostGoneForGood: the lost host never comes
// back: the failback warns about its order and succeeds.
func TestReplicationBackFollowsHostGoneForGood(t *testing.T) {
	eachMove(t, func(t *testing.T, remoteA bool) {
		w := newMovedWorld(t, remoteA)
		w.run(RecoverMachines, "alpha", Params{})
		w.checkFollows()
		w.failback()
	})
}

// TestReplicationBackFollowsCrashAnywhere: the server dies after each
// step of recover-machines (and before each call) on a reprotected plan;
// resumed, the machine runs once elsewhere, its replication back
// follows, and the failback succeeds.
func TestReplicationBackFollowsCrashAnywhere(t *testing.T) {
	eachMove(t, func(t *testing.T, remoteA bool) {
		w := newMovedWorld(t, remoteA)
		w.crashThrough(RecoverMachines, "alpha")
		to := w.checkFollows()
		if b := boots(w.fakes, "alpha-db"); b[to] != 1 {
			t.Fatalf("alpha-db boots per host %v: want once on %s", b, to)
		}
		w.failback()
	})
}

// TestReplicationBackFollowsCancelAfterEachStep: recover-machines of a
// reprotected plan canceled after any step leaves replication back where
// the machines run then (they are not moved back); a recover-machines
// again finishes the move, and the failback succeeds.
func TestReplicationBackFollowsCancelAfterEachStep(t *testing.T) {
	eachMove(t, func(t *testing.T, remoteA bool) {
		n := len(newMovedWorld(t, remoteA).run(RecoverMachines, "alpha", Params{}).Steps)
		for i := 0; i < n-1; i++ {
			t.Run(fmt.Sprintf("after step %d", i+1), func(t *testing.T) {
				w := newMovedWorld(t, remoteA)
				j := w.cancelRecoverAfter(i)
				if j.State != store.Canceled {
					t.Fatalf("recover-machines after cancel: %s: %s", j.State, j.Error)
				}
				if w.plan("alpha").Phase != PhaseReprotected {
					t.Fatalf("plan after the cancel: %+v", w.plan("alpha"))
				}
				w.run(RecoverMachines, "alpha", Params{})
				w.checkFollows()
				w.failback()
			})
		}
		// The last step failed and then canceled: its undo sets replication
		// back where the machines run.
		if !remoteA {
			return // the server's own agent: no host call to fail
		}
		t.Run("last step failed", func(t *testing.T) {
			w := newMovedWorld(t, remoteA)
			for _, bh := range w.back {
				bh.FailNext("Replication.Start", errors.New("injected"))
			}
			j := w.wait(w.submit(RecoverMachines, "alpha", Params{}).ID)
			if to := w.placed()["alpha-db"]; w.back[to] == nil {
				t.Skipf("alpha-db moved to %s, which this server replicates: no host call to fail", to)
			}
			if j.State != store.Failed {
				t.Fatalf("recover-machines with the new host's start failing: %s", j.State)
			}
			if out := outputsOf(t, j); !slices.ContainsFunc(out.Resources, func(x Resource) bool { return x.Kind == ResReplicationMoved }) {
				t.Fatalf("no %s recorded: %+v", ResReplicationMoved, out.Resources)
			}
			if _, err := w.o.Cancel(context.Background(), j.ID); err != nil {
				t.Fatal(err)
			}
			if j = w.wait(j.ID); j.State != store.Canceled {
				t.Fatalf("cancel: %s: %s", j.State, j.Error)
			}
			w.checkFollows()
			w.failback()
		})
	})
}

func (w *movedWorld) cancelRecoverAfter(i int) *store.Job {
	w.t.Helper()
	var mu sync.Mutex
	var id string
	fired := make(chan struct{})
	w.afterStep(func(j *store.Job) bool { return j.Type == RecoverMachines }, i, func() {
		mu.Lock()
		defer mu.Unlock()
		w.cancelRunning(id)
		close(fired)
	})
	defer w.clearHooks()
	mu.Lock()
	j := w.submit(RecoverMachines, "alpha", Params{})
	id = j.ID
	mu.Unlock()
	<-fired
	if _, err := w.o.Cancel(context.Background(), j.ID); err != nil {
		w.t.Fatal(err)
	}
	return w.wait(j.ID)
}

func writeAt(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func readAt(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	_, err = f.ReadAt(b, 0)
	return b, err
}

// eachMove runs fn with alpha-db moving to a remote host and to one of
// the server's own.
func eachMove(t *testing.T, fn func(t *testing.T, remoteA bool)) {
	t.Run("to a remote host", func(t *testing.T) { fn(t, true) })
	t.Run("to this server's host", func(t *testing.T) { fn(t, false) })
}
