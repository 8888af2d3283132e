package store_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/haven-dr/haven/internal/store"
)

// testPgInTxRetry: two transactions read one plan state, then both write
// it. PostgreSQL refuses the second (serialization failure); InTx runs its
// fn again, which now reads the first's write, and both end committed.
func testPgInTxRetry(t *testing.T, p *pgServer) {
	ctx := t.Context()
	s := p.open(t, p.newDB(t))
	defer s.Close()
	if err := s.PutPlanState(ctx, &store.PlanState{Plan: "shop", Phase: "protected"}); err != nil {
		t.Fatal(err)
	}
	var read sync.WaitGroup
	read.Add(2)
	var calls [2]atomic.Int32
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for k := range 2 {
		wg.Go(func() {
			errs[k] = s.InTx(ctx, func(tx store.Tx) error {
				ps, err := tx.PlanState(ctx, "shop")
				if err != nil {
					return err
				}
				if calls[k].Add(1) == 1 {
					// Both have read before either writes.
					read.Done()
					read.Wait()
				}
				ps.Test += string(rune('a' + k))
				return tx.PutPlanState(ctx, ps)
			})
		})
	}
	wg.Wait()
	for k, err := range errs {
		if err != nil {
			t.Errorf("tx %d: %v", k, err)
		}
	}
	if n := calls[0].Load() + calls[1].Load(); n < 3 {
		t.Errorf("fn ran %d times in all, want a rerun after the serialization failure", n)
	}
	st, err := s.PlanState(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	// Each write kept the other's: the rerun read the first's commit.
	if st.Version != 3 || (st.Test != "ab" && st.Test != "ba") {
		t.Errorf("plan state = test %q at version %d, want both writes (ab or ba) at 3", st.Test, st.Version)
	}
}

// testPgInTxRetryBounded: a transaction that always meets a
// serialization failure is run pgTxTries times, then refused as stale.
func testPgInTxRetryBounded(t *testing.T, p *pgServer) {
	ctx := t.Context()
	s := p.open(t, p.newDB(t))
	defer s.Close()
	for _, code := range []string{"40001", "40P01"} {
		calls := 0
		j := &store.Job{ID: "j-" + code, Plan: "shop-" + code, Type: "t", State: store.Succeeded, Created: time.Now().UTC()}
		err := s.InTx(ctx, func(tx store.Tx) error {
			calls++
			if err := tx.CreateJob(ctx, j); err != nil {
				return err
			}
			return &pgconn.PgError{Code: code, Message: "injected"}
		})
		var pe *pgconn.PgError
		if !errors.Is(err, store.ErrStale) || !errors.As(err, &pe) || pe.Code != code {
			t.Errorf("%s: err = %v, want ErrStale wrapping the last failure", code, err)
		}
		if calls != store.PgTxTries {
			t.Errorf("%s: fn ran %d times, want %d", code, calls, store.PgTxTries)
		}
		if j.Version != 0 {
			t.Errorf("%s: job version %d after the rollbacks, want 0", code, j.Version)
		}
		if _, err := s.Job(ctx, j.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: job of a failed tx: err = %v, want ErrNotFound", code, err)
		}
	}
	// Any other error ends at once.
	calls := 0
	err := s.InTx(ctx, func(tx store.Tx) error { calls++; return &pgconn.PgError{Code: "23505"} })
	if calls != 1 || errors.Is(err, store.ErrStale) {
		t.Errorf("unique violation: %d calls, err %v; want one call, the error itself", calls, err)
	}
}
