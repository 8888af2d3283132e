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
	prog := LookPath(t, "versitygw")
	port := loopbackPort(t)
	endpoint = fmt.Sprintf("127.0.0.1:%d", port)
	accessKey, secretKey = "hvtest"+rand.Text()[:8], rand.Text()
	startService(t, "versitygw", port, prog,
		"--access", accessKey, "--secret", secretKey, "--port", endpoint,
		"posix", t.TempDir())
	return endpoint, accessKey, secretKey
}
