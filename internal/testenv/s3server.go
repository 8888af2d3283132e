package testenv

import (
	"crypto/rand"
	"fmt"
	"testing"
)

// S3Server starts versitygw (an Apache-2.0 S3 gateway, installed by
// .ci/setup.d/20-s3server.sh) on a free loopback port over a fresh
// directory and returns its endpoint (host:port, plain HTTP) and the root
// credentials it was started with. It is stopped when the test ends.
func S3Server(t testing.TB) (endpoint, accessKey, secretKey string) {
	t.Helper()
	return startVersity(t, false)
}

// startVersity runs versitygw's posix backend over a temp dir. With iam
// it also keeps users in a directory of its own (so an admin can create
// the agent's user) and keeps old versions, which Object Lock needs.
func startVersity(t testing.TB, iam bool) (endpoint, accessKey, secretKey string) {
	t.Helper()
	prog := LookPath(t, "versitygw")
	port := loopbackPort(t)
	endpoint = fmt.Sprintf("127.0.0.1:%d", port)
	accessKey, secretKey = "hvtest"+rand.Text()[:8], rand.Text()
	args := []string{"--access", accessKey, "--secret", secretKey, "--port", endpoint}
	if iam {
		args = append(args, "--iam-dir", t.TempDir(), "posix", "--versioning-dir", t.TempDir())
	} else {
		args = append(args, "posix")
	}
	startService(t, "versitygw", port, prog, append(args, t.TempDir())...)
	return endpoint, accessKey, secretKey
}
