package testenv

import (
	"context"
	"crypto/rand"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob/blobopen"
	"github.com/haven-dr/haven/internal/blob/s3blob"
)

// S3Key is one pair of S3 credentials.
type S3Key struct{ Access, Secret string }

// Env is a getenv for blobopen.OpenEnv that hands out this key and nothing
// else, so a test opens the same URL as the admin or as the agent.
func (k S3Key) Env(name string) string {
	switch name {
	case "AWS_ACCESS_KEY_ID":
		return k.Access
	case "AWS_SECRET_ACCESS_KEY":
		return k.Secret
	}
	return ""
}

// LockedS3 is a bucket prepared for append-only agents (s3blob.Prepare) on
// a versitygw that enforces Object Lock, versioning and bucket policies.
type LockedS3 struct {
	Endpoint string // host:port, plain HTTP
	Bucket   string
	// URL carries lock= and retain=, so every object Haven writes through
	// it is locked; open it with Admin.Env or Agent.Env.
	URL   string
	Admin S3Key // the gateway's root: deletes versions whose retention expired
	Agent S3Key // a plain user limited by s3blob.AgentPolicy
}

// Config is the s3blob configuration of URL with key's credentials.
func (l *LockedS3) Config(key S3Key) s3blob.Config {
	cfg, err := s3blob.ParseURL(l.URL, key.Env)
	if err != nil {
		panic(err) // URL is built below; it always parses
	}
	return cfg
}

// S3ServerWithUsers starts a versitygw that keeps its own users and old
// versions (so it enforces bucket policies, Object Lock and versioning)
// and creates a plain user for the agent through its admin API. admin is
// the gateway's root. No bucket exists yet.
func S3ServerWithUsers(t testing.TB) (endpoint string, admin, agent S3Key) {
	t.Helper()
	endpoint, access, secret := startVersity(t, true)
	admin = S3Key{access, secret}
	agent = S3Key{"hvagent" + rand.Text()[:8], rand.Text()}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, LookPath(t, "versitygw"), "admin",
		"--access", access, "--secret", secret, "--endpoint-url", "http://"+endpoint,
		"create-user", "--access", agent.Access, "--secret", agent.Secret, "--role", "user").CombinedOutput()
	if err != nil {
		t.Fatalf("versitygw admin create-user: %v\n%s", err, out)
	}
	return endpoint, admin, agent
}

// LockedS3URL is the URL of bucket on endpoint with Object Lock in mode for
// retain (plain HTTP, path style).
func LockedS3URL(endpoint, bucket string, mode s3blob.LockMode, retain time.Duration) string {
	q := url.Values{"endpoint": {endpoint}, "insecure": {"true"}, "pathstyle": {"true"},
		"lock": {strings.ToLower(string(mode))}, "retain": {retain.String()}}
	return (&url.URL{Scheme: "s3", Host: bucket, RawQuery: q.Encode()}).String()
}

// LockedS3Bucket starts S3ServerWithUsers and prepares a bucket with
// Object Lock, versioning and the agent policy exactly as
// `haven vault prepare-agent` does. Objects written through URL are locked
// in mode for retain.
func LockedS3Bucket(t testing.TB, mode s3blob.LockMode, retain time.Duration) *LockedS3 {
	t.Helper()
	l := &LockedS3{Bucket: "hv" + strings.ToLower(rand.Text()[:12])}
	l.Endpoint, l.Admin, l.Agent = S3ServerWithUsers(t)
	l.URL = LockedS3URL(l.Endpoint, l.Bucket, mode, retain)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := blobopen.PrepareAgent(ctx, l.URL, l.Admin.Env, blobopen.AgentOptions{Principals: []string{l.Agent.Access}}); err != nil {
		t.Fatalf("preparing locked bucket: %v", err)
	}
	return l
}

// Environ is the key as environment entries for a child process.
func (k S3Key) Environ() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + k.Access, "AWS_SECRET_ACCESS_KEY=" + k.Secret}
}
