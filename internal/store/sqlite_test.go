package store_test

import (
	"bytes"
	"database/sql"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/store/storetest"
)

func openSQLite(t *testing.T, path string) *store.SQLite {
	t.Helper()
	s, err := store.OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSQLiteConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openSQLite(t, filepath.Join(t.TempDir(), "haven.db"))
	})
}

func TestSQLiteReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "haven.db")
	storetest.RunReopen(t, func(t *testing.T) store.Store { return openSQLite(t, path) })
}

func TestSQLiteMigrateIdempotent(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "haven.db")
	s := openSQLite(t, path)
	if _, err := s.PutConfig(ctx, []byte("a")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for range 2 {
		s = openSQLite(t, path)
		v, err := s.SchemaVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v != store.NumMigrations {
			t.Errorf("SchemaVersion = %d, want %d (the number of migrations)", v, store.NumMigrations)
		}
		if _, doc, err := s.Config(ctx); err != nil || string(doc) != "a" {
			t.Errorf("config after reopen = %q, %v", doc, err)
		}
		s.Close()
	}
	// One version row: a re-run must update it, not add a second.
	if n := rawQueryInt(t, path, `SELECT COUNT(*) FROM schema_version`); n != 1 {
		t.Errorf("schema_version has %d rows, want 1", n)
	}
}

func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func rawQueryInt(t *testing.T, path, q string) int {
	t.Helper()
	var n int
	if err := rawDB(t, path).QueryRowContext(t.Context(), q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSQLiteNewerSchemaRefused(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "haven.db")
	s := openSQLite(t, path)
	if _, err := s.PutConfig(ctx, []byte("keep me")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db := rawDB(t, path)
	newer := store.NumMigrations + 1
	if _, err := db.ExecContext(ctx, `UPDATE schema_version SET version = ?`, newer); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s2, err := store.OpenSQLite(ctx, path)
	if err == nil {
		s2.Close()
		t.Fatal("a database from a newer haven was opened")
	}
	for _, want := range []string{path, "newer", "upgrade haven"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// Refusing must not touch the data or the version.
	if v := rawQueryInt(t, path, `SELECT version FROM schema_version`); v != newer {
		t.Errorf("schema version after refusal = %d, want %d", v, newer)
	}
	if n := rawQueryInt(t, path, `SELECT COUNT(*) FROM configs`); n != 1 {
		t.Errorf("configs after refusal = %d, want 1", n)
	}
}

func TestSQLiteCorruptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "haven.db")
	junk := make([]byte, 64<<10)
	rand.NewChaCha8([32]byte{'h', 'v'}).Read(junk)
	if err := os.WriteFile(path, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := store.OpenSQLite(t.Context(), path)
	if err == nil {
		s.Close()
		t.Fatal("a file of random bytes was opened as a database")
	}
	msg := err.Error()
	if !strings.Contains(msg, path) || !strings.Contains(msg, "not a database") {
		t.Errorf("error %q should name the file and say it is not a database", msg)
	}
	got, rerr := os.ReadFile(path)
	if rerr != nil || !bytes.Equal(got, junk) {
		t.Errorf("the refused file was changed (read err %v)", rerr)
	}
}
