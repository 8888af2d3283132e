package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/fileblob"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/vault"
)

// outage makes the vault's storage refuse writes while down is set.
type outage struct {
	blob.Backend
	down atomic.Bool
}

func (o *outage) Put(ctx context.Context, name string, data []byte) error {
	if o.down.Load() {
		return errors.New("hvtest: storage unreachable")
	}
	return o.Backend.Put(ctx, name, data)
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A vault outage costs only a warning; the next change saves the catalog,
// and stop saves a change that came in as the server stopped.
func TestCatalogWriterOutageRetriedAtNextChange(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fb, err := fileblob.New(filepath.Join(dir, "vault"))
	if err != nil {
		t.Fatal(err)
	}
	be := &outage{Backend: fb}
	v, err := vault.Init(ctx, be, "pw", vault.Options{KDF: vault.KDFParams{N: 1 << 10, R: 8, P: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	st, err := store.OpenSQLite(ctx, filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var logs lockedBuf
	w := newCatalogWriter(st, v, slog.New(slog.NewTextHandler(&logs, nil)), time.Hour)
	stop := w.start(ctx)

	if _, err := st.PutConfig(ctx, []byte(`{"plans":[{"name":"shop"}]}`)); err != nil {
		t.Fatal(err)
	}
	be.down.Store(true)
	w.changed()
	waitFor(t, "a warning", func() bool { return strings.Contains(logs.String(), "catalog not saved") })
	if _, _, _, err := v.LatestCatalog(ctx, catalogName); !errors.Is(err, vault.ErrMissing) {
		t.Fatalf("catalog during the outage: %v", err)
	}

	be.down.Store(false)
	st.AddDrill(ctx, store.Drill{JobID: "j1", Plan: "shop", Passed: true})
	w.changed()
	waitFor(t, "the catalog after the outage", func() bool { return drills(t, v) == 1 })

	st.AddDrill(ctx, store.Drill{JobID: "j2", Plan: "shop", Passed: true})
	w.changed()
	stop()
	if n := drills(t, v); n != 2 {
		t.Fatalf("after stop the catalog has %d drills, want 2", n)
	}
}

func drills(t *testing.T, v *vault.Vault) int {
	_, b, _, err := v.LatestCatalog(context.Background(), catalogName)
	if errors.Is(err, vault.ErrMissing) {
		return -1
	} else if err != nil {
		t.Fatal(err)
	}
	var c Catalog
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return len(c.Drills)
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 30s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A plan failed over long ago keeps its failover's whole record in the
// catalog even when newer jobs push it out of the job history kept.
func TestCatalogKeepsOldFailoverWhole(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t0 := time.Now().UTC().Add(-time.Hour)
	fo := &store.Job{ID: "fo", Plan: "shop", Type: "unplanned-failover", State: store.Succeeded, Created: t0, Ended: &t0,
		Config: json.RawMessage(`{"plans":[{"name":"shop"}]}`), Steps: []store.Step{{Name: "finish", State: store.StepDone}},
		Outputs: json.RawMessage(`{"resources":[{"kind":"site","site":"rec"}]}`)}
	if err := st.CreateJob(ctx, fo); err != nil {
		t.Fatal(err)
	}
	for i := range catalogJobs {
		c := t0.Add(time.Duration(i+1) * time.Second)
		if err := st.CreateJob(ctx, &store.Job{ID: fmt.Sprintf("j%03d", i), Plan: "other", Type: "test-cleanup", State: store.Succeeded, Created: c, Ended: &c}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.PutConfig(ctx, []byte(`{"plans":[{"name":"shop"}]}`)); err != nil {
		t.Fatal(err)
	}
	if err := st.PutPlanState(ctx, &store.PlanState{Plan: "shop", Phase: "failed-over", Failover: "fo"}); err != nil {
		t.Fatal(err)
	}
	c, err := buildCatalog(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	var got *CatalogJob
	for i := range c.Jobs {
		if c.Jobs[i].ID == "fo" {
			got = &c.Jobs[i]
		} else if c.Jobs[i].Record != nil {
			t.Errorf("job %s kept whole; only the plans' failovers are", c.Jobs[i].ID)
		}
	}
	if len(c.Jobs) != catalogJobs+1 || got == nil || got.Record == nil || string(got.Record.Config) != string(fo.Config) ||
		len(got.Record.Steps) != 1 || string(got.Record.Outputs) != string(fo.Outputs) {
		t.Fatalf("%d jobs; failover entry %+v", len(c.Jobs), got)
	}
}
