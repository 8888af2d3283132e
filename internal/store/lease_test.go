package store_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/store"
)

// TestLeaseFencesDeposedLeader: once a leader's lease expired and another
// server took it, every write the first makes with its epoch fails, even
// though it never learned it was deposed.
func TestLeaseFencesDeposedLeader(t *testing.T) {
	p := startPostgres(t)
	db := p.newDB(t)
	a, b := p.open(t, db), p.open(t, db)
	defer a.Close()
	defer b.Close()
	ctx := t.Context()
	ttl := time.Second

	ea, ok, err := a.Acquire(ctx, "a", "http://a", ttl)
	if err != nil || !ok {
		t.Fatalf("a acquires a free lease: %v %v", ok, err)
	}
	if _, ok, err := b.Acquire(ctx, "b", "http://b", ttl); err != nil || ok {
		t.Fatalf("b acquires a's live lease: ok=%v err=%v, want refused", ok, err)
	}
	var epochA atomic.Int64
	epochA.Store(ea)
	fa := a.Fenced(&epochA)
	j := &store.Job{ID: "j1", Plan: "shop", Type: "t", State: store.Running, Created: time.Now().UTC()}
	if err := fa.CreateJob(ctx, j); err != nil {
		t.Fatalf("leader's fenced CreateJob: %v", err)
	}
	if err := a.Renew(ctx, "a", ea, ttl); err != nil {
		t.Fatalf("renew a live lease: %v", err)
	}

	// a stalls past its lease (PostgreSQL's clock decides), b takes over.
	p.exec(t, db, `UPDATE leader SET expires = now() - interval '1 second'`)
	eb, ok, err := b.Acquire(ctx, "b", "http://b", ttl)
	if err != nil || !ok || eb <= ea {
		t.Fatalf("b acquires the expired lease: epoch %d (a had %d) ok=%v err=%v", eb, ea, ok, err)
	}

	j.State = store.Succeeded
	if err := fa.SaveJob(ctx, j); !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("deposed leader's SaveJob: %v, want ErrNotLeader", err)
	}
	if err := fa.AppendLog(ctx, "j1", store.LogLine{Msg: "late"}); !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("deposed leader's AppendLog: %v, want ErrNotLeader", err)
	}
	if err := fa.PutPlanState(ctx, &store.PlanState{Plan: "shop", Phase: "failed-over"}); !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("deposed leader's PutPlanState: %v, want ErrNotLeader", err)
	}
	// A transaction is fenced as a single write is: nothing of it stays.
	err = fa.InTx(ctx, func(tx store.Tx) error {
		if err := tx.CreateJob(ctx, &store.Job{ID: "j9", Plan: "crm", Type: "t", State: store.Running}); err != nil {
			return err
		}
		return tx.PutPlanState(ctx, &store.PlanState{Plan: "crm", Phase: "failed-over"})
	})
	if !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("deposed leader's InTx: %v, want ErrNotLeader", err)
	}
	if _, err := b.Job(ctx, "j9"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("job of the deposed leader's InTx: err = %v, want ErrNotFound", err)
	}
	if err := a.Renew(ctx, "a", ea, ttl); !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("deposed leader's Renew: %v, want ErrNotLeader", err)
	}
	if got, _ := b.Job(ctx, "j1"); got.State != store.Running {
		t.Fatalf("job state %s after the deposed leader's save, want it unchanged", got.State)
	}
	if l, _ := b.PlanState(ctx, "shop"); l.Phase != "protected" {
		t.Fatalf("plan phase %s after the deposed leader's write, want unchanged", l.Phase)
	}

	var epochB atomic.Int64
	epochB.Store(eb)
	if err := b.Fenced(&epochB).SaveJob(ctx, j); err != nil {
		t.Fatalf("new leader's fenced SaveJob: %v", err)
	}
	if err := b.Fenced(&epochB).InTx(ctx, func(tx store.Tx) error {
		return tx.PutPlanState(ctx, &store.PlanState{Plan: "crm", Phase: "failed-over"})
	}); err != nil {
		t.Fatalf("new leader's fenced InTx: %v", err)
	}
	if l, err := b.Leader(ctx); err != nil || l.Holder != "b" || l.Addr != "http://b" || l.Epoch != eb {
		t.Fatalf("Leader = %+v %v, want b at epoch %d", l, err, eb)
	}
	// Nobody holds epoch 0: a server that never led writes nothing.
	var none atomic.Int64
	if err := b.Fenced(&none).PutHeartbeat(ctx, store.Heartbeat{Agent: "x"}); !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("fenced write without a lease: %v, want ErrNotLeader", err)
	}
	if err := b.Fenced(&none).AppendAudit(ctx, store.AuditEntry{Who: "admin", Action: "apply"}); !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("fenced audit write without a lease: %v, want ErrNotLeader", err)
	}
}
