package orchtest

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/haven-dr/haven/internal/blob/fileblob"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/vault"
)

// Env is the real state an engine test runs against: a file vault
// (Dir/vault) and a SQLite store (Dir/state.db). A "restarted server" is
// a new orchestrator on the same Vault and Store.
type Env struct {
	Dir   string
	Vault *vault.Vault
	Store *store.SQLite
}

// Password of the test vault.
const Password = "orchtest"

// NewEnv makes a vault (cheap key derivation) and a store in a new
// temporary directory, closed when the test ends.
func NewEnv(t testing.TB) *Env {
	t.Helper()
	e, err := CreateEnv(context.Background(), TempDir(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// CreateEnv makes a vault and a store in dir, for a template built once
// and copied by CopyEnv.
func CreateEnv(ctx context.Context, dir string) (*Env, error) {
	be, err := fileblob.New(filepath.Join(dir, "vault"))
	if err != nil {
		return nil, err
	}
	// Small packs: a pack buffer is allocated whole per snapshot, and
	// the default (8 MiB) costs more than everything else a job does.
	v, err := vault.Init(ctx, be, Password, vault.Options{KDF: vault.KDFParams{N: 1 << 10, R: 8, P: 1}, PackSize: 256 << 10})
	if err != nil {
		return nil, err
	}
	st, err := store.OpenSQLite(ctx, filepath.Join(dir, "state.db"))
	if err != nil {
		v.Close()
		return nil, err
	}
	return &Env{Dir: dir, Vault: v, Store: st}, nil
}

// CopyEnv copies the closed env in src (its vault, store and any other
// file there) into a new temporary directory and opens it: a world in a
// few milliseconds instead of making and seeding one.
func CopyEnv(t testing.TB, src string) *Env {
	t.Helper()
	ctx := context.Background()
	dir := TempDir(t)
	if err := copyTree(src, dir); err != nil {
		t.Fatal(err)
	}
	be, err := fileblob.New(filepath.Join(dir, "vault"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.Open(ctx, be, Password, vault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(ctx, filepath.Join(dir, "state.db"))
	if err != nil {
		v.Close()
		t.Fatal(err)
	}
	e := &Env{Dir: dir, Vault: v, Store: st}
	t.Cleanup(e.Close)
	return e
}

// Close closes the store and the vault.
func (e *Env) Close() {
	e.Store.Close()
	e.Vault.Close()
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o700)
		}
		if !d.Type().IsRegular() {
			return errors.New("orchtest: copy: not a regular file: " + p)
		}
		return copyFile(p, to)
	})
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// TempDir is on tmpfs when the machine has one: the store and the vault
// sync every write, and an engine test makes thousands of them, which a
// loaded disk turns into seconds.
func TempDir(t testing.TB) string {
	dir, err := MkdirTemp()
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// MkdirTemp makes a directory as TempDir does, for a caller without a
// test (a template built once); the caller removes it.
func MkdirTemp() (string, error) {
	if dir, err := os.MkdirTemp("/dev/shm", "hvorchtest"); err == nil {
		return dir, nil
	}
	return os.MkdirTemp("", "hvorchtest")
}
