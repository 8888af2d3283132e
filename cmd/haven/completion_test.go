package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/testenv"
)

// Each shell's script is produced and its own shell parses it; the
// completions it asks for come from the command tree.
func TestCompletionScripts(t *testing.T) {
	for _, tt := range []struct {
		shell, marker string
		check         []string // the shell's syntax-only check
	}{
		{"bash", "complete -o default -F __start_haven haven", []string{"bash", "-n"}},
		{"zsh", "#compdef haven", []string{"zsh", "-n"}},
		{"fish", "complete -c haven ", []string{"fish", "--no-execute"}},
	} {
		t.Run(tt.shell, func(t *testing.T) {
			out, err := runCLI("completion", tt.shell)
			if err != nil {
				t.Fatalf("haven completion %s: %v\n%s", tt.shell, err, out)
			}
			if !strings.Contains(out, tt.marker) {
				t.Fatalf("haven completion %s lacks %q", tt.shell, tt.marker)
			}
			path := filepath.Join(t.TempDir(), "haven."+tt.shell)
			if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			bin := testenv.LookPath(t, tt.check[0])
			if msg, err := exec.Command(bin, append(tt.check[1:], path)...).CombinedOutput(); err != nil {
				t.Fatalf("%s %v %s: %v\n%s", bin, tt.check[1:], path, err, msg)
			}
		})
	}
}

// The scripts call back into `haven __complete`; it must offer the
// subcommands and flags of the tree.
func TestCompletionOffersCommandTree(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"__complete", "va"}, []string{"vault\t"}},
		{[]string{"__complete", "vault", "key", ""}, []string{"add\t", "list\t", "remove\t"}},
		{[]string{"__complete", "version", "--j"}, []string{"--json\t"}},
		{[]string{"__complete", "completion", ""}, []string{"bash\t", "zsh\t", "fish\t"}},
	} {
		out, err := runCLI(tt.args...)
		if err != nil {
			t.Fatalf("haven %v: %v", tt.args, err)
		}
		for _, w := range tt.want {
			if !strings.Contains(out, "\n"+w) && !strings.HasPrefix(out, w) {
				t.Errorf("haven %v offers no %q:\n%s", tt.args, w, out)
			}
		}
	}
}
