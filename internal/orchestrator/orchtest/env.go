package orchtest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/haven-dr/haven/internal/blob/fileblob"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/vault"
)

// Env is the real state an engine test runs against: a file vault and a
// SQLite store in a temporary directory. A "restarted server" is a new
// orchestrator on the same Vault and Store.
type Env struct {
	Dir   string
	Vault *vault.Vault
	Store *store.SQLite
}

// Password of the test vault.
const Password = "orchtest"

// NewEnv makes the vault (cheap key derivation) and the store, closed
// when the test ends.
func NewEnv(t testing.TB) *Env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	be, err := fileblob.New(filepath.Join(dir, "vault"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.Init(ctx, be, Password, vault.Options{KDF: vault.KDFParams{N: 1 << 10, R: 8, P: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	st, err := store.OpenSQLite(ctx, filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &Env{Dir: dir, Vault: v, Store: st}
}
