package server_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/server"
	"github.com/haven-dr/haven/internal/store"
)

// catalogObjects lists the catalog versions' files of e's file vault,
// oldest first.
func catalogObjects(t *testing.T, e *env) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(e.vaultDir, "catalog"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range des {
		if strings.HasPrefix(d.Name(), "server.") {
			out = append(out, filepath.Join(e.vaultDir, "catalog", d.Name()))
		}
	}
	slices.Sort(out)
	return out
}

// threeApplies runs a server of e through three applies, each saved as a
// catalog before the next.
func threeApplies(t *testing.T, e *env) {
	t.Helper()
	r := e.start(t)
	for _, port := range []string{"5432", "5433", "5434"} {
		doc := edit(t, e.doc(), "tcp_port: 5432", "tcp_port: "+port)
		v := r.mustApply(t, doc)
		eventually(t, "catalog of the apply", func() bool { return catalogVersion(t, e) == v })
	}
	if n := len(catalogObjects(t, e)); n < 3 {
		t.Fatalf("%d catalog versions after three saved applies, want one each", n)
	}
	// The writer records the version it wrote in state_dir after the
	// vault write: the state holds the newest once that file says so.
	eventually(t, "catalog-seq at the newest version", func() bool {
		b, _ := os.ReadFile(filepath.Join(e.cfg.StateDir, "catalog-seq"))
		return strings.TrimSpace(string(b)) == strconv.Itoa(len(catalogObjects(t, e)))
	})
}

func recoveredDoc(t *testing.T, cfg *server.Config) string {
	t.Helper()
	_, doc, err := openState(t, cfg.StateDir).Config(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return string(doc)
}

// port is the health tcp_port of the recovered config (the one thing
// the three applies change).
func port(t *testing.T, doc string) string {
	t.Helper()
	for _, p := range []string{"5432", "5433", "5434", "5435"} {
		if strings.Contains(doc, p) {
			return p
		}
	}
	t.Fatalf("no known port in the recovered config %s", doc)
	return ""
}

// TestRecoverTakesNewestValidCatalog: every save is a new version;
// recovery takes the newest; when the newest does not verify (damaged, or
// overwritten with an older version's sealed bytes by someone who can
// write objects) it takes the previous one and says which it skipped.
func TestRecoverTakesNewestValidCatalog(t *testing.T) {
	e := newEnv(t, nil)
	threeApplies(t, e)
	ctx := context.Background()

	cfg := *e.cfg
	cfg.StateDir = filepath.Join(e.dir, "new-state")
	if err := server.RecoverFromVault(ctx, &cfg, false, quiet); err != nil {
		t.Fatal(err)
	}
	if got := port(t, recoveredDoc(t, &cfg)); got != "5434" {
		t.Fatalf("recovered the config with tcp_port %s, want the newest (5434)", got)
	}

	objs := catalogObjects(t, e)
	newest, older := objs[len(objs)-1], objs[0]
	b, err := os.ReadFile(older)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(newest, b, 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cfg.StateDir = filepath.Join(e.dir, "third-state")
	if err := server.RecoverFromVault(ctx, &cfg, false, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatal(err)
	}
	if got := port(t, recoveredDoc(t, &cfg)); got != "5433" {
		t.Fatalf("with the newest replaced, recovered tcp_port %s, want the one before (5433)", got)
	}
	if l := logs.String(); !strings.Contains(l, "does not verify") || !strings.Contains(l, filepath.Base(newest)) {
		t.Fatalf("no warning naming the skipped version %s:\n%s", filepath.Base(newest), l)
	}
}

// TestRecoverRefusesCatalogRollback: a state that already holds the
// newest catalog version refuses, even with --force, a vault whose newest
// verifying catalog is older (the newest replaced by an older sealed
// copy), says so, and keeps its state.db.
func TestRecoverRefusesCatalogRollback(t *testing.T) {
	e := newEnv(t, nil)
	threeApplies(t, e)
	objs := catalogObjects(t, e)
	b, err := os.ReadFile(objs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(objs[len(objs)-1], b, 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(e.cfg.StateDir, "state.db")
	before, err := os.Stat(db)
	if err != nil {
		t.Fatal(err)
	}
	err = server.RecoverFromVault(context.Background(), e.cfg, true, quiet)
	if !errors.Is(err, server.ErrCatalogRollback) || !strings.Contains(err.Error(), "refusing to roll the control plane back") {
		t.Fatalf("err = %v, want ErrCatalogRollback saying so", err)
	}
	after, err := os.Stat(db)
	if err != nil || !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("refused recovery touched state.db: %v", err)
	}
	if aside, _ := filepath.Glob(db + ".replaced-*"); len(aside) != 0 {
		t.Fatalf("refused recovery moved state.db aside: %v", aside)
	}
}

// TestCatalogVersionsNeverOverwritten: each save writes a new object and
// leaves the older ones byte for byte, so a rollback needs a delete.
func TestCatalogVersionsNeverOverwritten(t *testing.T) {
	e := newEnv(t, nil)
	r := e.start(t)
	v := r.mustApply(t, e.doc())
	eventually(t, "first catalog", func() bool { return catalogVersion(t, e) == v })
	first := catalogObjects(t, e)
	kept, err := os.ReadFile(first[0])
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r.Orchestrator().Store.AddDrill(ctx, store.Drill{JobID: "j1", Plan: "shop", Passed: true})
	v = r.mustApply(t, edit(t, e.doc(), "tcp_port: 5432", "tcp_port: 5435"))
	eventually(t, "second catalog", func() bool { return catalogVersion(t, e) == v })
	if now := catalogObjects(t, e); len(now) <= len(first) {
		t.Fatalf("versions %v after a change, before %v", now, first)
	}
	if b, err := os.ReadFile(first[0]); err != nil || string(b) != string(kept) {
		t.Fatalf("version %s changed or went: %v", first[0], err)
	}
}
