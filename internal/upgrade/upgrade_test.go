package upgrade_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/blob/fileblob"
	"github.com/haven-dr/haven/internal/server"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vault"
)

// fixtureSite is a server on a copy of the fixture's vault, with the
// state files of testdata/fixture/<kind> in its state dir; state, when
// set, is the postgres:// URL the fixture's dump was loaded into.
func fixtureSite(t *testing.T, f *fixture, kind, state string, files ...string) *site {
	t.Helper()
	vaultDir := filepath.Join(t.TempDir(), "vault")
	copyDir(t, filepath.Join(f.dir, "vault"), vaultDir)
	s := newSite(t, vaultDir, f.VaultPassword, state)
	if err := os.MkdirAll(s.cfg.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range append([]string{"tokens.json"}, files...) {
		if err := copyFile(filepath.Join(f.dir, kind, name), filepath.Join(s.cfg.StateDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// TestSQLiteFixture: the SQLite state of an earlier release is migrated
// to this build's schema, reads back whole, and a server starts on it.
func TestSQLiteFixture(t *testing.T) { eachFixture(t, testSQLiteFixture) }

func testSQLiteFixture(t *testing.T, f *fixture) {
	s := fixtureSite(t, f, "sqlite", "", "state.db")
	st, err := store.OpenSQLite(t.Context(), filepath.Join(s.cfg.StateDir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	checkStore(t, f, st, f.SQLiteSchema, store.SQLiteSchemaVersion())
	st.Close()
	checkServer(t, f, s)
}

// TestPostgresFixture: the same for the PostgreSQL dump, loaded into a
// real PostgreSQL; and a newer schema refused there too (one PostgreSQL
// for both: it is the slow part).
func TestPostgresFixture(t *testing.T) {
	pg := testenv.StartPostgres(t, "fsync=off")
	n := 0
	eachFixture(t, func(t *testing.T, f *fixture) {
		n++
		t.Run("migrate", func(t *testing.T) {
			testPostgresFixture(t, f, loadDump(t, f, pg, fmt.Sprintf("hvstate%d", n)))
		})
		t.Run("newer refused", func(t *testing.T) {
			testNewerPostgresStateRefused(t, f, loadDump(t, f, pg, fmt.Sprintf("hvnewer%d", n)))
		})
	})
}

func testPostgresFixture(t *testing.T, f *fixture, url string) {
	st, err := store.OpenPostgres(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	checkStore(t, f, st, f.PostgresSchema, store.PostgresSchemaVersion())
	st.Close()
	checkServer(t, f, fixtureSite(t, f, "postgres", url))
}

// loadDump loads the fixture's dump into a new database db.
func loadDump(t *testing.T, f *fixture, pg *testenv.Postgres, db string) string {
	t.Helper()
	if _, err := pg.Query(t.Context(), "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", pg.Socket, "-U", "postgres",
		"-d", db, "-f", filepath.Join(f.dir, "postgres", "state.sql")).CombinedOutput()
	if err != nil {
		t.Fatalf("loading the dump: %v\n%s", err, out)
	}
	return pg.URL(db)
}

// checkStore reads the fixture's run back through this build's store.
func checkStore(t *testing.T, f *fixture, st store.Store, written, current int) {
	t.Helper()
	ctx := t.Context()
	if written > current {
		t.Fatalf("the fixture's schema %d is newer than this build's %d", written, current)
	}
	if v, err := st.(interface {
		SchemaVersion(context.Context) (int, error)
	}).SchemaVersion(ctx); err != nil || v != current {
		t.Errorf("schema version after opening = %d (%v), want %d (the fixture was at %d)", v, err, current, written)
	}
	if v, doc, err := st.Config(ctx); err != nil || v != f.ConfigVersion || !strings.Contains(string(doc), f.Plan) {
		t.Errorf("config = version %d (%v) %.80q, want version %d with plan %s", v, err, doc, f.ConfigVersion, f.Plan)
	}
	jobs, err := st.Jobs(ctx, store.JobFilter{Plan: f.Plan})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, j := range jobs {
		ids = append(ids, j.ID)
		if j.State != store.Succeeded || j.Ended == nil || len(j.Steps) == 0 || j.Version < 1 {
			t.Errorf("job %s = %s, ended %v, %d steps, version %d; want succeeded with its steps", j.ID, j.State, j.Ended, len(j.Steps), j.Version)
		}
	}
	slices.Sort(ids)
	if want := slices.Sorted(slices.Values(f.Jobs)); !slices.Equal(ids, want) {
		t.Errorf("jobs of %s = %v, want %v", f.Plan, ids, want)
	}
	if j, err := st.Job(ctx, f.Drill); err != nil || j.Type != "test-failover" || !strings.Contains(string(j.Outputs), f.Points[len(f.Points)-1].ID) {
		t.Errorf("drill job = %+v (%v), want a test failover of the newest point", j, err)
	} else if logs, err := st.Logs(ctx, f.Drill, 0); err != nil || len(logs) != len(j.Steps) {
		t.Errorf("drill job's logs = %d lines (%v), want one per step (%d)", len(logs), err, len(j.Steps))
	}
	if ds, err := st.Drills(ctx, f.Plan); err != nil || len(ds) != 1 || ds[0].JobID != f.Drill || !ds[0].Passed || ds[0].RTOSeconds <= 0 {
		t.Errorf("drills = %+v (%v), want the passed drill %s with its RTO", ds, err, f.Drill)
	}
	if ps, err := st.PlanState(ctx, f.Plan); err != nil || ps.Phase != "protected" || ps.Version < 1 {
		t.Errorf("plan state = %+v (%v), want a stored protected", ps, err)
	}
	if hs, err := st.Heartbeats(ctx); err != nil || len(hs) != 1 || hs[0].Agent != "dc1-agent" || !json.Valid(hs[0].Report) {
		t.Errorf("heartbeats = %+v (%v), want dc1-agent's report", hs, err)
	}
	audit, err := st.Audit(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range audit {
		actions = append(actions, e.Action)
	}
	if !slices.Contains(actions, "apply") || !slices.Contains(actions, "job.submit") {
		t.Errorf("audit actions = %q, want the apply and the submits", actions)
	}
}

// checkServer starts a server on the fixture's state and vault and reads
// the run back through the API with the fixture's admin token, which the
// server knows only by the hash in tokens.json.
func checkServer(t *testing.T, f *fixture, s *site) {
	t.Helper()
	r := s.start(t)
	var cfg api.ConfigResult
	r.get(t, "/v1/config", f.AdminToken, &cfg)
	if cfg.Version != f.ConfigVersion || !strings.Contains(string(cfg.Config), `"`+f.Plan+`"`) {
		t.Errorf("GET /v1/config = version %d %.100s, want version %d with plan %s", cfg.Version, cfg.Config, f.ConfigVersion, f.Plan)
	}
	var job api.Job
	r.get(t, "/v1/jobs/"+f.Drill, f.AdminToken, &job)
	if job.State != api.JobSucceeded || job.Type != "test-failover" || job.Plan != f.Plan {
		t.Errorf("GET /v1/jobs/%s = %+v, want the succeeded test failover of %s", f.Drill, job, f.Plan)
	}
	var drills []api.Drill
	r.get(t, "/v1/drills?plan="+f.Plan, f.AdminToken, &drills)
	if len(drills) != 1 || drills[0].JobID != f.Drill || !drills[0].Passed {
		t.Errorf("GET /v1/drills = %+v, want the passed drill %s", drills, f.Drill)
	}
	var points []api.PointView
	r.get(t, "/v1/machines/"+f.Machine+"/points", f.AdminToken, &points)
	var got, want []string
	for _, p := range points {
		got = append(got, p.ID)
	}
	for _, p := range f.Points {
		want = append(want, p.ID)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("points of %s = %v, want the fixture's %v", f.Machine, got, want)
	}
}

// TestVaultFixture: this build verifies every byte of the fixture vault
// (check --read-data) and restores each point to its recorded checksum.
func TestVaultFixture(t *testing.T) { eachFixture(t, testVaultFixture) }

func testVaultFixture(t *testing.T, f *fixture) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "vault")
	copyDir(t, filepath.Join(f.dir, "vault"), dir)
	be, err := fileblob.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.Open(ctx, be, f.VaultPassword, vault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	rep, err := v.Check(ctx, vault.CheckOptions{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Err(); err != nil {
		t.Fatalf("check --read-data: %v", err)
	}
	for _, p := range f.Points {
		target := filepath.Join(t.TempDir(), "root.img")
		if _, err := v.Restore(ctx, vault.RestoreOptions{Machine: f.Machine, Point: p.ID, Disk: f.Disk, Target: target}); err != nil {
			t.Fatalf("restore %s: %v", p.ID, err)
		}
		b, err := os.ReadFile(target)
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(b); int64(len(b)) != p.Size || hex.EncodeToString(sum[:]) != p.SHA256 {
			t.Errorf("point %s restored %d bytes, sha256 %x; want %d, %s", p.ID, len(b), sum, p.Size, p.SHA256)
		}
	}
}

// TestNewerStateRefused: a server refuses a state database whose schema
// is newer than its own, names both versions and changes nothing.
func TestNewerStateRefused(t *testing.T) { eachFixture(t, testNewerStateRefused) }

func testNewerStateRefused(t *testing.T, f *fixture) {
	s := fixtureSite(t, f, "sqlite", "", "state.db")
	path := filepath.Join(s.cfg.StateDir, "state.db")
	newer := store.SQLiteSchemaVersion() + 1
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE schema_version SET version = ?`, newer); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	assertRefused(t, s.cfg, newer, store.SQLiteSchemaVersion())
	if after, err := os.ReadFile(path); err != nil || string(after) != string(before) {
		t.Errorf("the refused state.db changed (%v)", err)
	}
}

// testNewerPostgresStateRefused is TestNewerStateRefused on PostgreSQL.
func testNewerPostgresStateRefused(t *testing.T, f *fixture, url string) {
	newer := store.PostgresSchemaVersion() + 1
	db, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	if _, err := db.Exec(t.Context(), `UPDATE schema_version SET version = $1`, newer); err != nil {
		t.Fatal(err)
	}
	assertRefused(t, fixtureSite(t, f, "postgres", url).cfg, newer, store.PostgresSchemaVersion())
	var v int
	if err := db.QueryRow(t.Context(), `SELECT version FROM schema_version`).Scan(&v); err != nil || v != newer {
		t.Errorf("schema version after the refusal = %d (%v), want %d untouched", v, err, newer)
	}
}

func assertRefused(t *testing.T, cfg *server.Config, newer, current int) {
	t.Helper()
	srv, err := server.New(context.Background(), cfg, server.Options{})
	if err == nil {
		srv.Close()
		t.Fatal("server started on a state newer than itself")
	}
	for _, want := range []string{fmt.Sprintf("schema version %d is newer than this haven (%d)", newer, current), "upgrade haven"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
