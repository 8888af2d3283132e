package upgrade_test

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/blob/fileblob"
	"github.com/haven-dr/haven/internal/server"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/vault"
)

// TestCatalogFixtureRecovers: the catalog an earlier release wrote to the
// fixture vault rebuilds a control plane on a blank state directory with
// everything it holds. A catalog written before credentials were kept
// (format 1) restores none; the server then makes new admin and viewer
// tokens at its first start, and they work.
func TestCatalogFixtureRecovers(t *testing.T) { eachFixture(t, testCatalogFixture) }

func testCatalogFixture(t *testing.T, f *fixture) {
	vaultDir := filepath.Join(t.TempDir(), "vault")
	copyDir(t, filepath.Join(f.dir, "vault"), vaultDir)
	c := fixtureCatalog(t, vaultDir, f.VaultPassword)
	s := newSite(t, vaultDir, f.VaultPassword, "")
	if err := server.RecoverFromVault(t.Context(), s.cfg, false, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	_, err := os.Stat(filepath.Join(s.cfg.StateDir, "tokens.json"))
	if hashes := err == nil; hashes != (c.Secrets != nil && len(c.Secrets.TokenHashes) > 0) {
		t.Errorf("tokens.json restored: %v; the catalog (format %d) has secrets: %v", hashes, c.Format, c.Secrets != nil)
	}
	st, err := store.OpenSQLite(t.Context(), filepath.Join(s.cfg.StateDir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, doc, err := st.Config(t.Context()); err != nil || !strings.Contains(string(doc), `"`+f.Plan+`"`) {
		t.Errorf("recovered config %.80q, %v; want plan %s", doc, err, f.Plan)
	}
	for _, cj := range c.Jobs {
		if j, err := st.Job(t.Context(), cj.ID); err != nil || (!store.Active(store.JobState(cj.State)) && string(j.State) != cj.State) {
			t.Errorf("job %s (%s in the catalog): %+v, %v", cj.ID, cj.State, j, err)
		}
	}
	st.Close()

	r := s.start(t)
	tok := f.AdminToken // the lost server's, when its hash came back
	if c.Secrets == nil {
		b, err := os.ReadFile(s.cfg.TokenFile)
		if err != nil {
			t.Fatalf("no credentials in the catalog, and no new admin token: %v", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	var drills []api.Drill
	r.get(t, "/v1/drills?plan="+f.Plan, tok, &drills)
	if len(drills) != len(c.Drills) {
		t.Errorf("recovered drills %+v, the catalog's %+v", drills, c.Drills)
	}
}

// fixtureCatalog reads the newest catalog of the fixture vault.
func fixtureCatalog(t *testing.T, dir, pw string) *server.Catalog {
	t.Helper()
	be, err := fileblob.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.Open(t.Context(), be, pw, vault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	_, b, _, err := v.LatestCatalog(t.Context(), "server")
	if err != nil {
		t.Fatal(err)
	}
	var c server.Catalog
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return &c
}
