// Package testenv lets tests ask for the real parts they need (root, Azurite,
// an S3 server, PostgreSQL, QEMU). On a developer's laptop a missing part skips
// the test; under CI=true it fails it, so a missing install step in .ci/run can
// never pass unseen.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the suite runs in CI, where every real part must exist.
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing skips the test, or fails it under CI, because a real part is absent.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true but a required part is missing: "+format, args...)
	}
	t.Skipf("skipping: "+format, args...)
}

// RequireRoot skips (or fails in CI) unless the test runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "test needs root")
	}
}

// LookPath returns the path of a program or skips/fails the test.
func LookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "program %q not installed", name)
	}
	return p
}
