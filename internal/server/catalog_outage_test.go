package server_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/server"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vault"
)

// onStorageOutage moves e's vault onto a tmpfs that the test can make
// refuse writes: the vault's real storage failing, not a wrapper.
func onStorageOutage(t *testing.T, e *env) *testenv.StorageOutage {
	t.Helper()
	out := testenv.NewStorageOutage(t, 64)
	dst := filepath.Join(out.Dir, "vault")
	if err := os.CopyFS(dst, os.DirFS(e.vaultDir)); err != nil {
		t.Fatal(err)
	}
	e.vaultDir, e.cfg.Vault = dst, "file://"+dst
	return out
}

// catalogVersion is the config version in the vault's newest catalog, or
// -1 when there is none yet.
func catalogVersion(t *testing.T, e *env) int64 {
	t.Helper()
	b, err := readCatalog(t, e)
	if errors.Is(err, vault.ErrMissing) {
		return -1
	} else if err != nil {
		t.Fatal(err)
	}
	var c server.Catalog
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c.ConfigVersion
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 30s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCatalogWriteFailureAlertsAndRetries: while the vault's storage
// refuses writes, the catalog that an apply asked for is an alert, not
// only a log line; once the storage is back the server saves it on its
// own (no further change needed) and the alert clears.
func TestCatalogWriteFailureAlertsAndRetries(t *testing.T) {
	e := newEnv(t, nil)
	out := onStorageOutage(t, e)
	e.cfg.CatalogRetry = 200 * time.Millisecond
	r := e.start(t)
	v1 := r.mustApply(t, e.doc())
	eventually(t, "catalog of the first apply", func() bool { return catalogVersion(t, e) == v1 })
	if a := detail(status(t, r), "catalog-write"); a != nil {
		t.Fatalf("alert while the vault works: %+v", a)
	}

	out.Down()
	v2 := r.mustApply(t, edit(t, e.doc(), "tcp_port: 5432", "tcp_port: 5433"))
	eventually(t, "catalog-write alert", func() bool { return detail(status(t, r), "catalog-write") != nil })
	a := detail(status(t, r), "catalog-write")
	if a.Severity != "critical" || !strings.Contains(a.Summary, "not saved to the vault") || !strings.Contains(a.Summary, "read-only") {
		t.Errorf("alert %+v: want critical, naming the storage's error", a)
	}
	if got := catalogVersion(t, e); got != v1 {
		t.Fatalf("catalog version %d during the outage, want %d", got, v1)
	}

	out.Up()
	eventually(t, "catalog saved after the outage", func() bool { return catalogVersion(t, e) == v2 })
	eventually(t, "alert cleared", func() bool { return detail(status(t, r), "catalog-write") == nil })
}
