package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/blob/fileblob"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vault"
)

func versionJSON(t *testing.T, run func(...string) (string, error)) versionReport {
	t.Helper()
	out, err := run("version", "--json")
	if err != nil {
		t.Fatalf("haven version --json: %v\n%s", err, out)
	}
	var r versionReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	return r
}

// The formats `haven version` reports are the ones this build really
// writes: a vault it creates, a SQLite database it migrates.
func TestVersionReportsRealFormats(t *testing.T) {
	ctx := context.Background()
	r := versionJSON(t, runCLI)
	be, err := fileblob.New(filepath.Join(t.TempDir(), "vault"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.Init(ctx, be, "pw", vault.Options{KDF: vault.TestKDF})
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Config().Version; r.VaultFormat != got {
		t.Errorf("vault_format %d, a new vault has format %d", r.VaultFormat, got)
	}
	if r.VaultFormatOldest != vault.OldestFormatVersion || r.VaultFormatOldest > r.VaultFormat {
		t.Errorf("vault_format_oldest %d, vault opens from %d", r.VaultFormatOldest, vault.OldestFormatVersion)
	}
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got, err := db.SchemaVersion(ctx); err != nil || r.SchemaSQLite != got {
		t.Errorf("state_schema_sqlite %d, a new database migrates to %d (%v)", r.SchemaSQLite, got, err)
	}
	if r.GoVersion != runtime.Version() {
		t.Errorf("go_version %q, built with %q", r.GoVersion, runtime.Version())
	}
	text, err := runCLI("version")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"haven " + r.Version + "\n",
		"commit:        " + r.Commit,
		"go:            " + r.GoVersion + "\n",
		fmt.Sprintf("vault format:  %d (opens %d to %d)\n", r.VaultFormat, r.VaultFormatOldest, r.VaultFormat),
		fmt.Sprintf("state schema:  sqlite %d, postgresql %d\n", r.SchemaSQLite, r.SchemaPostgres),
	} {
		if !strings.Contains(text, want) {
			t.Errorf("haven version lacks %q:\n%s", want, text)
		}
	}
}

func TestVersionReportsPostgresSchema(t *testing.T) {
	ctx := context.Background()
	pg := testenv.StartPostgres(t, "fsync=off")
	db, err := store.OpenPostgres(ctx, pg.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.SchemaVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := versionJSON(t, runCLI); r.SchemaPostgres != got {
		t.Errorf("state_schema_postgres %d, a new database migrates to %d", r.SchemaPostgres, got)
	}
}

// TestVersionFromReadmeBuild runs the README's release build command and
// checks the binary reports what the linker was told, so the documented
// -X paths cannot drift from the variables they set.
func TestVersionFromReadmeBuild(t *testing.T) {
	testenv.LookPath(t, "go")
	line := readmeBuildLine(t)
	bin := filepath.Join(t.TempDir(), "haven")
	cmd := exec.Command("sh", "-c", strings.Replace(line, "-o haven", "-o "+bin, 1))
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "VERSION=v9.8.7-test", "COMMIT=0123abcd", "DATE=2026-12-06T08:00:00Z")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
	r := versionJSON(t, func(args ...string) (string, error) {
		out, err := exec.Command(bin, args...).Output()
		return string(out), err
	})
	if r.Version != "v9.8.7-test" || r.Commit != "0123abcd" || r.BuildDate != "2026-12-06T08:00:00Z" {
		t.Errorf("built with version/commit/date v9.8.7-test/0123abcd/2026-12-06T08:00:00Z, reports %+v", r.Info)
	}
	if want := currentVersion(); r.VaultFormat != want.VaultFormat || r.SchemaSQLite != want.SchemaSQLite ||
		r.SchemaPostgres != want.SchemaPostgres {
		t.Errorf("binary reports formats %+v, this source has %+v", r, want)
	}
}

// readmeBuildLine is the README's `go build ... -o haven ./cmd/haven` line.
func readmeBuildLine(t *testing.T) string {
	t.Helper()
	f, err := os.Open("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "go build ") && strings.Contains(l, "-o haven ") {
			return l
		}
	}
	t.Fatal("README.md has no `go build ... -o haven ./cmd/haven` line")
	return ""
}
