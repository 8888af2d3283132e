package server_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/haven-dr/haven/internal/server"
	"github.com/haven-dr/haven/internal/testenv"
)

// TestStateOnPostgres: with `state: postgres://...` the server keeps its
// state in that database (not in state_dir), and a restarted server finds
// it there, whatever its state_dir.
func TestStateOnPostgres(t *testing.T) {
	pg := testenv.StartPostgres(t, "fsync=off")
	if _, err := pg.Query(t.Context(), "CREATE DATABASE hvstate"); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, nil)
	e.cfg.State = pg.URL("hvstate")
	if err := e.cfg.Defaults(); err != nil {
		t.Fatal(err)
	}
	v := e.start(t).mustApply(t, e.doc())

	conn, err := pgx.Connect(t.Context(), pg.URL("hvstate"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), `SELECT COUNT(*) FROM configs`).Scan(&n); err != nil || n != 1 {
		t.Errorf("configs in PostgreSQL = %d (%v), want the applied one", n, err)
	}
	if _, err := os.Stat(filepath.Join(e.cfg.StateDir, "state.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state.db in state_dir: %v, want none", err)
	}

	// A server with an empty state_dir of its own finds the config.
	e2 := newEnv(t, nil)
	e2.cfg.State = e.cfg.State
	a := e2.start(t).admin(t, "GET", "/v1/config", nil)
	if a.status != http.StatusOK || !strings.Contains(string(a.body), "shop") {
		t.Errorf("config from a second server: %d %s, want version %d", a.status, a.body, v)
	}
}

func TestStateNotPostgresRefused(t *testing.T) {
	c := server.Config{Vault: "file:///tmp/v", State: "mysql://root:hvsecret@db/haven"}
	err := c.Defaults()
	if err == nil || !strings.Contains(err.Error(), "postgres://") {
		t.Fatalf("Defaults: %v, want a refusal asking for a postgres:// URL", err)
	}
	if strings.Contains(err.Error(), "hvsecret") {
		t.Errorf("error %q shows the password", err)
	}
}
