package store_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/haven-dr/haven/internal/store"
)

// oldJob is a job row as the schema before the version columns held it.
const oldJob = `{"id":"j1","plan":"shop","type":"planned-failover","state":"running","steps":[{"name":"stop primary","state":"done"}],"created":"2026-03-01T12:00:00Z","updated":"2026-03-01T12:00:00Z","config":{"plans":["shop"]}}`

const oldPlanState = `{"plan":"shop","phase":"failed-over","failover":"j1","updated":"2026-03-01T12:00:00Z"}`

// checkMigratedVersions: rows written before the version columns read at
// version 1 and take part in compare-and-set.
func checkMigratedVersions(t *testing.T, s store.Store) {
	t.Helper()
	ctx := t.Context()
	j, err := s.Job(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	if j.State != store.Running || j.Version != 1 || len(j.Steps) != 1 || string(j.Config) == "" {
		t.Fatalf("migrated job = %+v, want running at version 1 with its step and config", j)
	}
	stale := *j
	j.State = store.Canceling
	if err := s.SaveJob(ctx, j); err != nil || j.Version != 2 {
		t.Fatalf("save of the migrated job: %v, version %d", err, j.Version)
	}
	if err := s.SaveJob(ctx, &stale); !errors.Is(err, store.ErrStale) {
		t.Errorf("stale save of the migrated job: err = %v, want ErrStale", err)
	}
	ps, err := s.PlanState(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if ps.Phase != "failed-over" || ps.Failover != "j1" || ps.Version != 1 {
		t.Fatalf("migrated plan state = %+v, want failed-over by j1 at version 1", ps)
	}
	if err := s.PutPlanState(ctx, &store.PlanState{Plan: "shop", Phase: "protected"}); !errors.Is(err, store.ErrStale) {
		t.Errorf("create over the migrated plan state: err = %v, want ErrStale", err)
	}
	// The migrated job still holds its plan.
	err = s.CreateJob(ctx, &store.Job{ID: "j2", Plan: "shop", Type: "commit", State: store.Running})
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateJob on the plan the migrated job holds: err = %v, want ErrConflict", err)
	}
}

func TestSQLiteMigrateVersions(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "haven.db")
	db := rawDB(t, path)
	prev := len(store.Migrations) - 1
	for _, q := range append([]string{`CREATE TABLE schema_version (version INTEGER NOT NULL)`,
		fmt.Sprintf(`INSERT INTO schema_version VALUES (%d)`, prev)}, store.Migrations[:prev]...) {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO jobs (id, plan, type, state, active, body, created)
		VALUES ('j1', 'shop', 'planned-failover', 'running', 1, ?, '2026-03-01T12:00:00.000000000Z')`, []byte(oldJob)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO plan_states (plan, body) VALUES ('shop', ?)`, []byte(oldPlanState)); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s := openSQLite(t, path)
	defer s.Close()
	if v, err := s.SchemaVersion(ctx); err != nil || v != store.NumMigrations {
		t.Fatalf("schema version after migrating = %d, %v; want %d", v, err, store.NumMigrations)
	}
	checkMigratedVersions(t, s)
}

func testPgMigrateVersions(t *testing.T, p *pgServer) {
	ctx := t.Context()
	db := p.newDB(t)
	prev := len(store.PgMigrations) - 1
	p.exec(t, db, `CREATE TABLE schema_version (version INTEGER NOT NULL)`)
	p.exec(t, db, `INSERT INTO schema_version VALUES ($1)`, prev)
	for _, q := range store.PgMigrations[:prev] {
		p.exec(t, db, q)
	}
	p.exec(t, db, `INSERT INTO jobs (id, plan, type, state, active, body, created)
		VALUES ('j1', 'shop', 'planned-failover', 'running', true, $1, '2026-03-01T12:00:00Z')`, []byte(oldJob))
	p.exec(t, db, `INSERT INTO plan_states (plan, body) VALUES ('shop', $1)`, []byte(oldPlanState))

	s := p.open(t, db)
	defer s.Close()
	if v, err := s.SchemaVersion(ctx); err != nil || v != store.NumPgMigrations {
		t.Fatalf("schema version after migrating = %d, %v; want %d", v, err, store.NumPgMigrations)
	}
	checkMigratedVersions(t, s)
}
