package store_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/store/storetest"
	"github.com/haven-dr/haven/internal/testenv"
)

// pgServer is one PostgreSQL for a test; every store gets its own
// database in it, so subtests never see each other's rows.
type pgServer struct {
	pg *testenv.Postgres
	n  atomic.Int64
}

func startPostgres(t *testing.T) *pgServer {
	t.Helper()
	// Durability across a crash is PostgreSQL's job, not this test's.
	return &pgServer{pg: testenv.StartPostgres(t, "fsync=off", "synchronous_commit=off", "full_page_writes=off")}
}

// dsn carries a password the server ignores (trust), so errors can be
// checked for not showing it.
func (p *pgServer) dsn(db string) string {
	return fmt.Sprintf("host=%s port=5432 user=postgres password=hvsecret dbname=%s sslmode=disable", p.pg.Socket, db)
}

// newDB creates an empty database and returns its name.
func (p *pgServer) newDB(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("hv%d", p.n.Add(1))
	p.exec(t, "postgres", "CREATE DATABASE "+name)
	return name
}

// exec runs SQL in db over a connection of its own, bypassing the store.
func (p *pgServer) exec(t *testing.T, db, sql string, args ...any) {
	t.Helper()
	conn := p.conn(t, db)
	if _, err := conn.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func (p *pgServer) queryInt(t *testing.T, db, sql string) int {
	t.Helper()
	var n int
	if err := p.conn(t, db).QueryRow(t.Context(), sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func (p *pgServer) conn(t *testing.T, db string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), p.dsn(db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func (p *pgServer) open(t *testing.T, db string) *store.Postgres {
	t.Helper()
	s, err := store.OpenPostgres(t.Context(), p.dsn(db))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPostgres shares one server between its subtests: starting one
// costs an initdb.
func TestPostgres(t *testing.T) {
	p := startPostgres(t)
	t.Run("Conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store { return p.open(t, p.newDB(t)) })
	})
	t.Run("Reopen", func(t *testing.T) {
		db := p.newDB(t)
		storetest.RunReopen(t, func(t *testing.T) store.Store { return p.open(t, db) })
	})
	t.Run("MigrateIdempotent", func(t *testing.T) { testPgMigrateIdempotent(t, p) })
	t.Run("MigrateConcurrent", func(t *testing.T) { testPgMigrateConcurrent(t, p) })
	t.Run("NewerSchemaRefused", func(t *testing.T) { testPgNewerSchemaRefused(t, p) })
	t.Run("MigrateVersions", func(t *testing.T) { testPgMigrateVersions(t, p) })
	t.Run("InTxRetry", func(t *testing.T) { testPgInTxRetry(t, p) })
	t.Run("InTxRetryBounded", func(t *testing.T) { testPgInTxRetryBounded(t, p) })
}

func testPgMigrateIdempotent(t *testing.T, p *pgServer) {
	ctx := t.Context()
	db := p.newDB(t)
	s := p.open(t, db)
	if _, err := s.PutConfig(ctx, []byte("a")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for range 2 {
		s = p.open(t, db)
		v, err := s.SchemaVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v != store.NumPgMigrations {
			t.Errorf("SchemaVersion = %d, want %d (the number of migrations)", v, store.NumPgMigrations)
		}
		if _, doc, err := s.Config(ctx); err != nil || string(doc) != "a" {
			t.Errorf("config after reopen = %q, %v", doc, err)
		}
		s.Close()
	}
	if n := p.queryInt(t, db, `SELECT COUNT(*) FROM schema_version`); n != 1 {
		t.Errorf("schema_version has %d rows, want 1", n)
	}
}

// testPgMigrateConcurrent: servers sharing a database start together;
// each must find the schema made once, not fail on the other's tables.
func testPgMigrateConcurrent(t *testing.T, p *pgServer) {
	db := p.newDB(t)
	const n = 6
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			s, err := store.OpenPostgres(t.Context(), p.dsn(db))
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("open %d: %v", i, err)
		}
	}
	if v := p.queryInt(t, db, `SELECT version FROM schema_version`); v != store.NumPgMigrations {
		t.Errorf("schema version = %d, want %d", v, store.NumPgMigrations)
	}
}

func testPgNewerSchemaRefused(t *testing.T, p *pgServer) {
	ctx := t.Context()
	db := p.newDB(t)
	s := p.open(t, db)
	if _, err := s.PutConfig(ctx, []byte("keep me")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	newer := store.NumPgMigrations + 1
	p.exec(t, db, `UPDATE schema_version SET version = $1`, newer)

	s2, err := store.OpenPostgres(ctx, p.dsn(db))
	if err == nil {
		s2.Close()
		t.Fatal("a database from a newer haven was opened")
	}
	for _, want := range []string{`"` + db + `"`, "newer", "upgrade haven"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "hvsecret") {
		t.Errorf("error %q shows the password", err)
	}
	if v := p.queryInt(t, db, `SELECT version FROM schema_version`); v != newer {
		t.Errorf("schema version after refusal = %d, want %d", v, newer)
	}
	if n := p.queryInt(t, db, `SELECT COUNT(*) FROM configs`); n != 1 {
		t.Errorf("configs after refusal = %d, want 1", n)
	}
}
