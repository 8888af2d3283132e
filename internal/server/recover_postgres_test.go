package server_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/server"
	"github.com/haven-dr/haven/internal/testenv"
)

// With a PostgreSQL state, recovery fills an empty database, and refuses
// one that already holds a server's state (even with force: a database
// cannot be moved aside like a file).
func TestRecoverIntoPostgres(t *testing.T) {
	pg := testenv.StartPostgres(t, "fsync=off")
	for _, db := range []string{"hvold", "hvnew"} {
		if _, err := pg.Query(t.Context(), "CREATE DATABASE "+db); err != nil {
			t.Fatal(err)
		}
	}
	e := newEnv(t, nil)
	e.cfg.State = pg.URL("hvold")
	r := e.start(t)
	r.mustApply(t, e.doc())
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := readCatalog(t, e)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("catalog after apply: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctx := context.Background()
	for _, force := range []bool{false, true} {
		if err := server.RecoverFromVault(ctx, e.cfg, force, quiet); err == nil || !strings.Contains(err.Error(), "empty database") {
			t.Fatalf("recovery into the used database (force %v): %v", force, err)
		}
	}

	cfg := *e.cfg
	cfg.State = pg.URL("hvnew")
	if err := server.RecoverFromVault(ctx, &cfg, false, quiet); err != nil {
		t.Fatal(err)
	}
	if err := server.RecoverFromVault(ctx, &cfg, false, quiet); !errors.Is(err, server.ErrStateExists) {
		t.Fatalf("second recovery: %v, want ErrStateExists", err)
	}
	e2 := newEnv(t, nil)
	e2.cfg.State = cfg.State
	a := e2.start(t).admin(t, "GET", "/v1/config", nil)
	if a.status != http.StatusOK || !strings.Contains(string(a.body), "shop") {
		t.Fatalf("config from the recovered database: %d %s", a.status, a.body)
	}
}
