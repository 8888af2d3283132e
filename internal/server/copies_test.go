package server_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/blob/fileblob"
	"github.com/haven-dr/haven/internal/server"
	"github.com/haven-dr/haven/internal/vault"
)

func snapshotDB(t *testing.T, v *vault.Vault, content string) {
	t.Helper()
	img := filepath.Join(t.TempDir(), "db-root.img")
	if err := os.WriteFile(img, []byte(strings.Repeat(content, 20000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := v.Snapshot(context.Background(), vault.SnapshotOptions{Machine: "db",
		Disks: []vault.DiskSource{{Name: "root", Path: img}}, Consistency: vault.CrashConsistent}); err != nil {
		t.Fatal(err)
	}
}

func openFileVault(t *testing.T, dir, pw string) *vault.Vault {
	t.Helper()
	be, err := fileblob.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.Open(context.Background(), be, pw, fastKDF)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

func copyStatus(st *api.Status, name string) *api.CopyStatus {
	for i := range st.Copies {
		if st.Copies[i].Name == name {
			return &st.Copies[i]
		}
	}
	return nil
}

func waitStatus(t *testing.T, r *running, what string, ok func(*api.Status) bool) *api.Status {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st := status(t, r)
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: status %+v", what, st)
		}
	}
}

// TestCopiesKeptCurrent: the server copies the vault's points and its
// catalog into a second vault as they appear, reports the lag, alerts on a
// copy that lags or fails, and a server pointed at the copy alone (the
// vault's directory removed) recovers its state from it.
func TestCopiesKeptCurrent(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(v *vault.Vault) { snapshotDB(t, v, "haven ") })
	src := openFileVault(t, e.vaultDir, testPassword)
	copyDir := filepath.Join(e.dir, "offsite")
	be, err := fileblob.New(copyDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vault.InitCopy(ctx, be, src, "copy password", fastKDF); err != nil {
		t.Fatal(err)
	}
	copyPw := filepath.Join(e.dir, "copy-password")
	os.WriteFile(copyPw, []byte("copy password\n"), 0o600)
	be2, _ := fileblob.New(filepath.Join(e.dir, "slow"))
	if _, err := vault.InitCopy(ctx, be2, src, testPassword, fastKDF); err != nil {
		t.Fatal(err)
	}
	e.cfg.Copies = []server.CopyConfig{
		{Name: "offsite", Vault: "file://" + copyDir, PasswordFile: copyPw, Interval: 50 * time.Millisecond},
		{Name: "slow", Vault: "file://" + filepath.Join(e.dir, "slow"), Interval: time.Hour, MaxLag: time.Millisecond},
		{Name: "nowhere", Vault: "file://" + filepath.Join(e.dir, "nowhere"), Interval: time.Hour},
	}
	if err := e.cfg.Defaults(); err != nil {
		t.Fatal(err)
	}
	r := e.start(t)
	r.mustApply(t, e.doc())

	copied := func(n int) func(*api.Status) bool {
		return func(st *api.Status) bool {
			c := copyStatus(st, "offsite")
			ps, _ := openFileVault(t, copyDir, "copy password").Points(ctx, "db")
			return c != nil && c.LagSeconds != nil && *c.LagSeconds == 0 && len(ps) == n
		}
	}
	waitStatus(t, r, "first copy", copied(1))
	snapshotDB(t, src, "vault ") // the primary writes on
	st := waitStatus(t, r, "second point copied", copied(2))
	if c := copyStatus(st, "offsite"); c.Error != "" || c.LastSuccess == nil {
		t.Fatalf("offsite: %+v", c)
	}
	st = waitStatus(t, r, "lag and failure alerts", func(st *api.Status) bool {
		return detail(st, "copy-lag/slow") != nil && detail(st, "copy/nowhere") != nil
	})
	if d := detail(st, "copy/nowhere"); !strings.Contains(d.Summary, "haven vault copy --init") {
		t.Errorf("failing copy alert: %q", d.Summary)
	}
	if c := copyStatus(st, "slow"); c.LagSeconds == nil || *c.LagSeconds <= 0 {
		t.Errorf("slow copy lag: %+v", c)
	}
	if detail(st, "copy-lag/offsite") != nil || detail(st, "copy/offsite") != nil {
		t.Errorf("alerts for a current copy: %q", st.Alerts)
	}
	// The catalog the server wrote for the applied config reaches the copy.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, _, _, err := openFileVault(t, copyDir, "copy password").LatestCatalog(ctx, "server"); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("catalog not copied: %v", err)
		}
	}
	r.stop()

	// The vault is lost; a new control plane works from the copy alone.
	if err := os.RemoveAll(e.vaultDir); err != nil {
		t.Fatal(err)
	}
	cfg := *e.cfg
	// Token files stay the operator's copies of the lost server's: its
	// token hashes come back with the catalog.
	cfg.StateDir = filepath.Join(e.dir, "state2")
	if err := cfg.UseCopy("offsite"); err != nil {
		t.Fatal(err)
	}
	if err := (&cfg).UseCopy("offsite"); err == nil {
		t.Fatal("UseCopy twice: copies should be gone")
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := server.RecoverFromVault(ctx, &cfg, false, log); err != nil {
		t.Fatal(err)
	}
	e2 := *e
	e2.cfg = &cfg
	r2 := e2.start(t)
	st = status(t, r2)
	if st.Config == 0 || len(st.Copies) != 0 {
		t.Fatalf("recovered server: config %d, copies %+v", st.Config, st.Copies)
	}
	found := false
	for _, m := range st.Machines {
		if m.Name == "db" {
			found = true
			if m.Points != 2 {
				t.Fatalf("db on the copy: %+v", m)
			}
		}
	}
	if !found {
		t.Fatalf("no machine db in the recovered server's status: %+v", st.Machines)
	}
}

func TestCopiesConfig(t *testing.T) {
	for _, bad := range []string{
		"copies:\n  - name: Bad\n    vault: /tmp/x\n",
		"copies:\n  - name: a\n    vault: /tmp/x\n  - name: a\n    vault: /tmp/y\n",
		"copies:\n  - name: a\n",
		"copies:\n  - name: a\n    vault: /srv/vault\n",
		"copies:\n  - name: a\n    vault: /tmp/x\n    max_lag: -1s\n",
	} {
		p := filepath.Join(t.TempDir(), "server.yaml")
		os.WriteFile(p, []byte("vault: /srv/vault\n"+bad), 0o600)
		if _, err := server.LoadConfig(p); err == nil {
			t.Errorf("accepted:\n%s", bad)
		}
	}
	p := filepath.Join(t.TempDir(), "server.yaml")
	os.WriteFile(p, []byte("vault: /srv/vault\ncopies:\n  - name: offsite\n    vault: s3://b?endpoint=127.0.0.1:1\n    env_prefix: OFFSITE_\n"), 0o600)
	cfg, err := server.LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.Copies[0]; c.Interval != time.Minute || c.MaxLag != time.Hour || c.EnvPrefix != "OFFSITE_" {
		t.Fatalf("defaults: %+v", c)
	}
	if err := cfg.UseCopy("other"); err == nil {
		t.Fatal("UseCopy of an unknown copy accepted")
	}
}
