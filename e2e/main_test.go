// Package e2e runs the haven binary the way an operator does, against real
// storage services, real processes and real signals.
package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

var havenBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "haven-e2e-")
	if err != nil {
		panic(err)
	}
	havenBin = filepath.Join(dir, "haven")
	out, err := exec.Command("go", "build", "-tags", "haventestkdf", "-o", havenBin, "../cmd/haven").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build haven: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result of one haven invocation.
type result struct {
	code           int
	stdout, stderr string
}

// haven runs the binary with env added to a minimal environment.
func haven(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(havenBin, args...)
	cmd.Env = append(baseEnv(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	r := result{stdout: o.String(), stderr: e.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run haven: %v", err)
	}
	return r
}

// baseEnv is the minimal environment of every haven process a test runs.
func baseEnv() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "HAVEN_TEST_KDF=fast"}
}

func mustHaven(t *testing.T, env []string, args ...string) string {
	t.Helper()
	r := haven(t, env, args...)
	if r.code != 0 {
		t.Fatalf("haven %v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}
