package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/agent/consistency"
)

// TestConfigEnvExpansion: $VAR is expanded in the documented path and URL
// fields only, $$ is a literal $ there, an unset variable is an error, and
// hook commands reach /bin/sh untouched, with the variables in their
// environment.
func TestConfigEnvExpansion(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "hook.out")
	t.Setenv("HVTEST_DIR", dir)
	t.Setenv("HVTEST_OUT", out)
	t.Setenv("HVTEST_WORD", "word")
	text := `
vault: file://${HVTEST_DIR}/vault
password_file: $HVTEST_DIR/pw
state_dir: $HVTEST_DIR/state$$1
machines:
  - name: m1
    provider: hooks
    disks: [{name: d0, path: $HVTEST_DIR/d0.img}]
    hooks:
      pre: echo "$HVTEST_WORD" '$$' $$ > "$HVTEST_OUT"
`
	path := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	m := c.Machines[0]
	if c.Vault != "file://"+dir+"/vault" || c.PasswordFile != dir+"/pw" || c.StateDir != dir+"/state$1" ||
		m.Disks[0].Path != dir+"/d0.img" || m.CloneDir != dir+"/.haven-clones" {
		t.Fatalf("expanded fields: %+v", c)
	}
	if want := `echo "$HVTEST_WORD" '$$' $$ > "$HVTEST_OUT"`; m.Hooks.Pre != want {
		t.Fatalf("hook rewritten:\n got %s\nwant %s", m.Hooks.Pre, want)
	}
	if err := consistency.RunHook(context.Background(), m.Hooks.Pre, time.Minute); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	f := strings.Fields(string(got))
	if len(f) != 3 || f[0] != "word" || f[1] != "$$" || strings.Trim(f[2], "0123456789") != "" {
		t.Fatalf("hook wrote %q, want the variable, a literal $$ and the shell's pid", got)
	}

	text = "vault: $HVTEST_UNSET_VAULT\nmachines:\n  - {name: m, provider: none, disks: [{name: d, path: /d.img}]}\n"
	if _, err := ParseConfig(text); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "HVTEST_UNSET_VAULT is not set") {
		t.Fatalf("unset variable: %v", err)
	}
}
