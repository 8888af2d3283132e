package storetest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/haven-dr/haven/internal/store"
)

// casTests are the compare-and-set and transaction checks (store package
// doc), part of Run.
var casTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"SaveJobStale", testSaveJobStale},
	{"PlanStateCAS", testPlanStateCAS},
	{"PlanStateCreateWhenExists", testPlanStateCreateWhenExists},
	{"InTxRollback", testInTxRollback},
	{"InTxRollbackOnStale", testInTxRollbackOnStale},
	{"InTxCommit", testInTxCommit},
	{"InTxRace", testInTxRace},
}

// testSaveJobStale: two copies of one job (cancel racing approve): the
// second save is refused and the first's state stays.
func testSaveJobStale(t *testing.T, s store.Store) {
	ctx := t.Context()
	j := newJob("j1", "shop", "planned", store.Running, base)
	must(t, s.CreateJob(ctx, j))
	if j.Version != 1 {
		t.Fatalf("CreateJob set version %d, want 1", j.Version)
	}
	a, err := s.Job(ctx, "j1")
	must(t, err)
	b, err := s.Job(ctx, "j1")
	must(t, err)
	if a.Version != 1 || b.Version != 1 {
		t.Fatalf("read versions %d %d, want 1", a.Version, b.Version)
	}
	a.State = store.Waiting
	must(t, s.SaveJob(ctx, a))
	if a.Version != 2 {
		t.Errorf("after a save the copy is at version %d, want 2", a.Version)
	}
	b.State = store.Canceling
	err = s.SaveJob(ctx, b)
	if !errors.Is(err, store.ErrStale) {
		t.Fatalf("save of the stale copy: err = %v, want ErrStale", err)
	}
	for _, want := range []string{"j1", "expected version 1", "stored version 2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if b.Version != 1 {
		t.Errorf("a refused save changed the copy's version to %d", b.Version)
	}
	got, err := s.Job(ctx, "j1")
	must(t, err)
	if got.State != store.Waiting || got.Version != 2 {
		t.Errorf("stored job = %s at version %d, want the first save's waiting at 2", got.State, got.Version)
	}
	// The copy that saved goes on saving: each save moves it along.
	for i := range 3 {
		a.State = store.Running
		must(t, s.SaveJob(ctx, a))
		if a.Version != int64(3+i) {
			t.Fatalf("save %d: version %d, want %d", i, a.Version, 3+i)
		}
	}
}

func testPlanStateCAS(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, err := s.PlanState(ctx, "shop")
	must(t, err)
	a.Phase = "failed-over"
	must(t, s.PutPlanState(ctx, a))
	if a.Version != 1 {
		t.Fatalf("first PutPlanState set version %d, want 1", a.Version)
	}
	b, err := s.PlanState(ctx, "shop")
	must(t, err)
	c, err := s.PlanState(ctx, "shop")
	must(t, err)
	b.Phase = "committed"
	must(t, s.PutPlanState(ctx, b))
	c.Phase, c.Failover = "protected", ""
	err = s.PutPlanState(ctx, c)
	if !errors.Is(err, store.ErrStale) {
		t.Fatalf("put of a stale copy: err = %v, want ErrStale", err)
	}
	for _, want := range []string{"shop", "expected version 1", "stored version 2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	got, err := s.PlanState(ctx, "shop")
	must(t, err)
	if got.Phase != "committed" || got.Version != 2 {
		t.Errorf("stored = %s at version %d, want committed at 2", got.Phase, got.Version)
	}
	// A version that was never stored is stale too, not a create.
	err = s.PutPlanState(ctx, &store.PlanState{Plan: "crm", Phase: "committed", Version: 4})
	if !errors.Is(err, store.ErrStale) {
		t.Errorf("put at version 4 of a plan never stored: err = %v, want ErrStale", err)
	}
	if st, err := s.PlanState(ctx, "crm"); err != nil || st.Version != 0 || st.Phase != "protected" {
		t.Errorf("crm after the refused put = %+v, %v; want the default at version 0", st, err)
	}
}

// testPlanStateCreateWhenExists: two writers both read "never stored"
// (version 0); the second create must not overwrite the first.
func testPlanStateCreateWhenExists(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, err := s.PlanState(ctx, "shop")
	must(t, err)
	b, err := s.PlanState(ctx, "shop")
	must(t, err)
	a.Test = "t1"
	must(t, s.PutPlanState(ctx, a))
	b.Phase, b.Failover = "failed-over", "f1"
	if err := s.PutPlanState(ctx, b); !errors.Is(err, store.ErrStale) {
		t.Fatalf("create of an existing plan state: err = %v, want ErrStale", err)
	}
	if b.Version != 0 {
		t.Errorf("refused create set version %d", b.Version)
	}
	got, err := s.PlanState(ctx, "shop")
	must(t, err)
	if got.Test != "t1" || got.Phase != "protected" || got.Failover != "" || got.Version != 1 {
		t.Errorf("stored = %+v, want the first create's", got)
	}
}

var errBoom = errors.New("boom")

// testInTxRollback: fn fails after writing job, plan state and log: none
// of it stays, fn's error comes back as is, and the caller's structs get
// their versions back, so they can be saved afterwards.
func testInTxRollback(t *testing.T, s store.Store) {
	ctx := t.Context()
	held := newJob("h1", "crm", "test", store.Running, base)
	must(t, s.CreateJob(ctx, held))
	j := newJob("j1", "shop", "planned", store.Running, base)
	ps := &store.PlanState{Plan: "shop", Phase: "failed-over", Failover: "j1"}
	err := s.InTx(ctx, func(tx store.Tx) error {
		must(t, tx.CreateJob(ctx, j))
		must(t, tx.PutPlanState(ctx, ps))
		must(t, tx.AppendLog(ctx, "j1", store.LogLine{Time: base, Level: "info", Msg: "never"}))
		held.State = store.Failed
		must(t, tx.SaveJob(ctx, held))
		held.State = store.Waiting
		must(t, tx.SaveJob(ctx, held)) // twice: restore must go back past both
		return fmt.Errorf("step 3: %w", errBoom)
	})
	if !errors.Is(err, errBoom) || err.Error() != "step 3: boom" {
		t.Fatalf("InTx = %v, want fn's error unchanged", err)
	}
	if _, err := s.Job(ctx, "j1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("job created in a rolled back tx: err = %v, want ErrNotFound", err)
	}
	if st, err := s.PlanState(ctx, "shop"); err != nil || st.Version != 0 || st.Phase != "protected" {
		t.Errorf("plan state after rollback = %+v, %v; want the default", st, err)
	}
	if logs, err := s.Logs(ctx, "j1", 0); err != nil || len(logs) != 0 {
		t.Errorf("logs after rollback = %+v, %v", logs, err)
	}
	if got, err := s.Job(ctx, "h1"); err != nil || got.State != store.Running || got.Version != 1 {
		t.Errorf("h1 after rollback = %+v, %v; want running at version 1", got, err)
	}
	if j.Version != 0 || ps.Version != 0 || held.Version != 1 {
		t.Errorf("versions after rollback: job %d plan %d held %d, want 0 0 1", j.Version, ps.Version, held.Version)
	}
	// Put back versions let the same structs be written now.
	must(t, s.SaveJob(ctx, held))
	must(t, s.CreateJob(ctx, j))
	must(t, s.PutPlanState(ctx, ps))
}

// testInTxRollbackOnStale: the plan state moved after the caller read it;
// the job created in the same transaction goes with the refused write.
func testInTxRollbackOnStale(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.PutPlanState(ctx, &store.PlanState{Plan: "shop", Phase: "protected"}))
	stale, err := s.PlanState(ctx, "shop")
	must(t, err)
	now, err := s.PlanState(ctx, "shop")
	must(t, err)
	now.Test = "t0"
	must(t, s.PutPlanState(ctx, now))
	err = s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.CreateJob(ctx, newJob("j1", "shop", "planned", store.Running, base)); err != nil {
			return err
		}
		stale.Phase, stale.Failover = "failed-over", "j1"
		return tx.PutPlanState(ctx, stale)
	})
	if !errors.Is(err, store.ErrStale) {
		t.Fatalf("InTx with a stale plan state: err = %v, want ErrStale", err)
	}
	if _, err := s.Job(ctx, "j1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("job of the refused tx: err = %v, want ErrNotFound", err)
	}
	if st, _ := s.PlanState(ctx, "shop"); st.Phase != "protected" || st.Test != "t0" {
		t.Errorf("plan state = %+v, want the newer write's", st)
	}
}

// testInTxCommit: reads inside the transaction see its own writes, and
// the job and the plan state commit together.
func testInTxCommit(t *testing.T, s store.Store) {
	ctx := t.Context()
	v, err := s.PutConfig(ctx, []byte("plans: [shop]\n"))
	must(t, err)
	j := newJob("j1", "shop", "planned", store.Running, base)
	var ps *store.PlanState
	must(t, s.InTx(ctx, func(tx store.Tx) error {
		if cv, doc, err := tx.Config(ctx); err != nil || cv != v || string(doc) != "plans: [shop]\n" {
			t.Errorf("Config in tx = %d %q %v", cv, doc, err)
		}
		var err error
		if ps, err = tx.PlanState(ctx, "shop"); err != nil {
			return err
		}
		if err := tx.CreateJob(ctx, j); err != nil {
			return err
		}
		ps.Phase, ps.Failover = "failed-over", j.ID
		if err := tx.PutPlanState(ctx, ps); err != nil {
			return err
		}
		if err := tx.AppendLog(ctx, j.ID, store.LogLine{Time: base, Level: "info", Msg: "submitted"}); err != nil {
			return err
		}
		if got, err := tx.Job(ctx, j.ID); err != nil || got.Version != 1 {
			t.Errorf("Job in tx = %+v, %v", got, err)
		}
		if act, err := tx.Jobs(ctx, store.JobFilter{Plan: "shop", Active: true}); err != nil || len(act) != 1 || act[0].Version != 1 {
			t.Errorf("Jobs in tx = %v, %v", ids(act), err)
		}
		if got, err := tx.PlanState(ctx, "shop"); err != nil || got.Failover != j.ID || got.Version != 1 {
			t.Errorf("PlanState in tx = %+v, %v", got, err)
		}
		return nil
	}))
	if j.Version != 1 || ps.Version != 1 {
		t.Errorf("versions after commit: job %d plan %d, want 1 1", j.Version, ps.Version)
	}
	got, err := s.Job(ctx, j.ID)
	must(t, err)
	st, err := s.PlanState(ctx, "shop")
	must(t, err)
	if got.Version != 1 || st.Phase != "failed-over" || st.Failover != j.ID || st.Version != 1 {
		t.Errorf("after commit: job v%d, plan %+v", got.Version, st)
	}
	if logs, err := s.Logs(ctx, j.ID, 0); err != nil || len(logs) != 1 {
		t.Errorf("logs after commit = %+v, %v", logs, err)
	}
}

var errPhase = errors.New("plan is not protected")

// testInTxRace: two submits of a failover on one plan race (issue 16 item
// 3): each reads the plan state, checks it is protected, creates an active
// job and writes the plan state, in one transaction. Exactly one wins; the
// plan ends with its job alone.
func testInTxRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	for i := range 50 {
		plan := fmt.Sprintf("p%02d", i)
		var errs [2]error
		var wg sync.WaitGroup
		start := make(chan struct{})
		for k := range 2 {
			wg.Go(func() {
				<-start
				errs[k] = s.InTx(ctx, func(tx store.Tx) error { return submit(t, tx, plan, k, i%2 == 0) })
			})
		}
		close(start)
		wg.Wait()
		checkRace(t, s, plan, errs)
	}
}

// submit is Submit's check and writes: a failover (phase) or a test
// failover, which leaves the phase protected and so is kept off by the
// active job alone.
func submit(t *testing.T, tx store.Tx, plan string, k int, failover bool) error {
	ctx := t.Context()
	ps, err := tx.PlanState(ctx, plan)
	if err != nil {
		return err
	}
	if ps.Phase != "protected" {
		return errPhase
	}
	j := newJob(fmt.Sprintf("%s-%d", plan, k), plan, "planned", store.Running, base)
	if err := tx.CreateJob(ctx, j); err != nil {
		return err
	}
	if failover {
		ps.Phase, ps.Failover = "failed-over", j.ID
	} else {
		ps.Test = j.ID
	}
	return tx.PutPlanState(ctx, ps)
}

func checkRace(t *testing.T, s store.Store, plan string, errs [2]error) {
	t.Helper()
	ctx := t.Context()
	winner := ""
	for k, err := range errs {
		var ce *store.ConflictError
		switch {
		case err == nil && winner != "":
			t.Fatalf("%s: both submits succeeded", plan)
		case err == nil:
			winner = fmt.Sprintf("%s-%d", plan, k)
		case !errors.Is(err, store.ErrStale) && !errors.As(err, &ce) && !errors.Is(err, errPhase):
			t.Fatalf("%s: loser's err = %v, want ErrStale, *ConflictError or the phase check", plan, err)
		}
	}
	if winner == "" {
		t.Fatalf("%s: no submit succeeded: %v", plan, errs)
	}
	act, err := s.Jobs(ctx, store.JobFilter{Plan: plan})
	must(t, err)
	if got := ids(act); len(got) != 1 || got[0] != winner {
		t.Fatalf("%s: jobs = %v, want only %s", plan, got, winner)
	}
	st, err := s.PlanState(ctx, plan)
	must(t, err)
	if st.Version != 1 || (st.Failover != winner && st.Test != winner) {
		t.Fatalf("%s: plan state = %+v, want the winner's only write", plan, st)
	}
}
