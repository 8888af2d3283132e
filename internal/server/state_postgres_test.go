package server_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/haven-dr/haven/internal/server"
	"github.com/haven-dr/haven/internal/store"
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
	first := e.start(t)
	v := first.mustApply(t, e.doc())

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

	// A server with an empty state_dir of its own finds the config, once
	// the first is gone: two without ha: would run the same jobs.
	e2 := newEnv(t, nil)
	e2.cfg.State = e.cfg.State
	if s, err := server.New(t.Context(), e2.cfg, server.Options{}); !errors.Is(err, store.ErrInUse) || !strings.Contains(err.Error(), "ha:") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("a second server without ha: while the first runs: %v, want refused", err)
	}
	first.stop()
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

// TestHAAndSingleServerExclude: on one PostgreSQL database, HA servers
// share it with each other, but a server without ha: is refused while
// one with ha: runs, and the other way round; each may start once the
// other kind is gone.
func TestHAAndSingleServerExclude(t *testing.T) {
	pg := testenv.StartPostgres(t, "fsync=off")
	if _, err := pg.Query(t.Context(), "CREATE DATABASE hvclaim"); err != nil {
		t.Fatal(err)
	}
	cfg := func(ha bool) *server.Config {
		e := newEnv(t, nil)
		e.cfg.State = pg.URL("hvclaim")
		if ha {
			e.cfg.HA.Lease = 10 * time.Second
		}
		if err := e.cfg.Defaults(); err != nil {
			t.Fatal(err)
		}
		return e.cfg
	}
	open := func(ha bool) (*server.Server, error) { return server.New(t.Context(), cfg(ha), server.Options{}) }
	mustOpen := func(ha bool) *server.Server {
		t.Helper()
		s, err := open(ha)
		if err != nil {
			t.Fatalf("server (ha %v): %v", ha, err)
		}
		return s
	}
	refused := func(ha bool, why string) {
		t.Helper()
		s, err := open(ha)
		if err == nil {
			s.Close()
		}
		if !errors.Is(err, store.ErrInUse) {
			t.Fatalf("%s: %v, want refused", why, err)
		}
	}
	a, b := mustOpen(true), mustOpen(true) // HA servers share the database
	refused(false, "a server without ha: beside two with it")
	a.Close()
	refused(false, "a server without ha: beside one with it")
	b.Close()
	single := mustOpen(false)
	refused(true, "a server with ha: beside one without")
	refused(false, "a second server without ha:")
	single.Close()
	mustOpen(true).Close()
}
