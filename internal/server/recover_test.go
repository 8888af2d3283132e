package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob/fileblob"
	"github.com/haven-dr/haven/internal/server"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/vault"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// An apply makes the running server save its catalog; a server on a new
// state directory rebuilds the same config from it.
func TestApplyWritesCatalogThatRecovers(t *testing.T) {
	e := newEnv(t, nil)
	r := e.start(t)
	v := r.mustApply(t, e.doc())
	ctx := context.Background()
	var c server.Catalog
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := readCatalog(t, e)
		if err == nil {
			if err := json.Unmarshal(b, &c); err != nil {
				t.Fatal(err)
			}
			break
		}
		if !errors.Is(err, vault.ErrMissing) || time.Now().After(deadline) {
			t.Fatalf("catalog after apply: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c.ConfigVersion != v || len(c.Config) == 0 {
		t.Fatalf("catalog: version %d config %d bytes, want version %d", c.ConfigVersion, len(c.Config), v)
	}
	cfg := *e.cfg
	cfg.StateDir = filepath.Join(e.dir, "new-state")
	if err := server.RecoverFromVault(ctx, &cfg, false, quiet); err != nil {
		t.Fatal(err)
	}
	st := openState(t, cfg.StateDir)
	if _, doc, err := st.Config(ctx); err != nil || string(doc) != string(c.Config) {
		t.Fatalf("recovered config %s, %v; want %s", doc, err, c.Config)
	}
}

// Jobs in flight on the lost server come back ended, never re-run; a test
// copy that lived there no longer holds the plan; drills keep their order.
func TestRecoverEndsJobsInFlight(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	cat := server.Catalog{Written: now, ConfigVersion: 3, Config: json.RawMessage(`{"plans":[{"name":"shop"}]}`),
		Plans: []store.PlanState{{Plan: "shop", Phase: "protected", Test: "j-test"}},
		Drills: []store.Drill{{JobID: "j-new", Plan: "shop", Passed: true, Note: "newer"},
			{JobID: "j-old", Plan: "shop", Note: "older"}},
		Jobs: []server.CatalogJob{
			{ID: "j-run", Plan: "shop", Type: "unplanned-failover", State: string(store.Running), Created: now},
			{ID: "j-test", Plan: "shop", Type: "test-failover", State: string(store.Succeeded), Created: now.Add(-time.Hour), Ended: &now},
		}}
	e := newEnv(t, func(v *vault.Vault) {
		b, _ := json.Marshal(cat)
		if err := v.WriteCatalog(ctx, "server", 1, b); err != nil {
			t.Fatal(err)
		}
	})
	if err := server.RecoverFromVault(ctx, e.cfg, false, quiet); err != nil {
		t.Fatal(err)
	}
	st := openState(t, e.cfg.StateDir)
	if active, err := st.Jobs(ctx, store.JobFilter{Active: true}); err != nil || len(active) != 0 {
		t.Fatalf("active jobs after recovery: %v, %v", active, err)
	}
	j, err := st.Job(ctx, "j-run")
	if err != nil || j.State != store.Canceled || j.Ended == nil || !strings.Contains(j.Error, "was running") {
		t.Fatalf("job in flight: %+v, %v", j, err)
	}
	if j, err := st.Job(ctx, "j-test"); err != nil || j.State != store.Succeeded || !j.Ended.Equal(now) {
		t.Fatalf("ended job: %+v, %v", j, err)
	}
	if ps, err := st.PlanState(ctx, "shop"); err != nil || ps.Test != "" || ps.Phase != "protected" {
		t.Fatalf("plan state: %+v, %v", ps, err)
	}
	ds, err := st.Drills(ctx, "shop")
	if err != nil || len(ds) != 2 || ds[0].JobID != "j-new" || ds[1].JobID != "j-old" {
		t.Fatalf("drills: %+v, %v", ds, err)
	}
}

func TestRecoverRefusesExistingStateUnlessForced(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(v *vault.Vault) {
		if err := v.WriteCatalog(ctx, "server", 1, []byte(`{"config":{"plans":[]}}`)); err != nil {
			t.Fatal(err)
		}
	})
	db := filepath.Join(e.cfg.StateDir, "state.db")
	os.MkdirAll(e.cfg.StateDir, 0o700)
	if err := os.WriteFile(db, []byte("old state"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := server.RecoverFromVault(ctx, e.cfg, false, quiet)
	if !errors.Is(err, server.ErrStateExists) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("err = %v, want ErrStateExists naming --force", err)
	}
	if b, _ := os.ReadFile(db); string(b) != "old state" {
		t.Fatal("refused recovery changed state.db")
	}
	if err := server.RecoverFromVault(ctx, e.cfg, true, quiet); err != nil {
		t.Fatal(err)
	}
	aside, _ := filepath.Glob(db + ".replaced-*")
	if len(aside) != 1 {
		t.Fatalf("old state not kept aside: %v", aside)
	}
	if b, _ := os.ReadFile(aside[0]); string(b) != "old state" {
		t.Fatal("old state lost")
	}
	openState(t, e.cfg.StateDir)
}

func TestRecoverWithoutCatalogSaysSo(t *testing.T) {
	e := newEnv(t, nil)
	err := server.RecoverFromVault(context.Background(), e.cfg, false, quiet)
	if !errors.Is(err, vault.ErrMissing) || !strings.Contains(err.Error(), "no server catalog") {
		t.Fatalf("err = %v", err)
	}
	db := filepath.Join(e.cfg.StateDir, "state.db")
	if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed recovery left state.db: %v", err)
	}
	// Forced over a state, a recovery that fails leaves that state in place.
	os.MkdirAll(e.cfg.StateDir, 0o700)
	if err := os.WriteFile(db, []byte("old state"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := server.RecoverFromVault(context.Background(), e.cfg, true, quiet); !errors.Is(err, vault.ErrMissing) {
		t.Fatalf("forced: err = %v", err)
	}
	if b, _ := os.ReadFile(db); string(b) != "old state" {
		t.Fatal("a failed forced recovery moved or changed state.db")
	}
}

func readCatalog(t *testing.T, e *env) ([]byte, error) {
	be, err := fileblob.New(e.vaultDir)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	v, err := vault.Open(context.Background(), be, testPassword, fastKDF)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	_, b, _, err := v.LatestCatalog(context.Background(), "server")
	return b, err
}

func openState(t *testing.T, dir string) store.Store {
	st, err := store.OpenSQLite(context.Background(), filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
