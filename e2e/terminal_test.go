package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/testenv"
)

// onTerminal runs haven under a pseudo-terminal (util-linux script), typing
// input, and returns the terminal transcript.
func onTerminal(t *testing.T, input string, args ...string) (string, error) {
	t.Helper()
	script := testenv.LookPath(t, "script")
	cmd := exec.Command(script, "-qec", havenBin+" "+strings.Join(args, " "), "/dev/null")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HAVEN_TEST_KDF=fast", "TERM=xterm"}
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestTerminalPromptAndProgress: without $HAVEN_PASSWORD or a password
// file, the password is asked on the terminal (twice at init, so a typo
// cannot lock the owner out), and a snapshot draws a progress bar.
func TestTerminalPromptAndProgress(t *testing.T) {
	dir := t.TempDir()
	vault := filepath.Join(dir, "vault")
	if out, err := onTerminal(t, "one\ntwo\n", "vault", "init", "--vault", vault); err == nil || !strings.Contains(out, "passwords do not match") {
		t.Fatalf("mismatched confirmation accepted: %v\n%s", err, out)
	}
	out, err := onTerminal(t, "s3cret\ns3cret\n", "vault", "init", "--vault", vault)
	if err != nil || !strings.Contains(out, "vault password:") || !strings.Contains(out, "again:") {
		t.Fatalf("init on a terminal: %v\n%s", err, out)
	}
	img := filepath.Join(dir, "d.img")
	os.WriteFile(img, []byte(strings.Repeat("terminal ", 1<<20)), 0o644)
	out, err = onTerminal(t, "s3cret\n", "snapshot", "--vault", vault, "--machine", "m", "--disk", "d="+img)
	if err != nil || !strings.Contains(out, "snapshot m ") || !strings.Contains(out, "%") {
		t.Fatalf("snapshot on a terminal shows no progress bar: %v\n%q", err, out)
	}
	// The typed password is the vault's password.
	mustHaven(t, []string{"HAVEN_VAULT=" + vault, "HAVEN_PASSWORD=s3cret"}, "vault", "points")
}
