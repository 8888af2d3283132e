package testenv

import (
	"context"
	"crypto/rand"
	"fmt"
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

// LockedS3Bucket starts a versitygw with its own users and versioning,
// creates an agent user through its admin API, and prepares a bucket with
// Object Lock, versioning and the agent policy exactly as
// `haven vault prepare-agent` does. Objects written through URL are locked in
// mode for retain.
func LockedS3Bucket(t testing.TB, mode s3blob.LockMode, retain time.Duration) *LockedS3 {
	t.Helper()
	endpoint, access, secret := startVersity(t, true)
	l := &LockedS3{
		Endpoint: endpoint,
		Bucket:   "hv" + strings.ToLower(rand.Text()[:12]),
		Admin:    S3Key{access, secret},
		Agent:    S3Key{"hvagent" + rand.Text()[:8], rand.Text()},
	}
	q := url.Values{"endpoint": {endpoint}, "insecure": {"true"}, "pathstyle": {"true"},
		"lock": {strings.ToLower(string(mode))}, "retain": {retain.String()}}
	l.URL = (&url.URL{Scheme: "s3", Host: l.Bucket, RawQuery: q.Encode()}).String()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, LookPath(t, "versitygw"), "admin",
		"--access", access, "--secret", secret, "--endpoint-url", "http://"+endpoint,
		"create-user", "--access", l.Agent.Access, "--secret", l.Agent.Secret, "--role", "user").CombinedOutput()
	if err != nil {
		t.Fatalf("versitygw admin create-user: %v\n%s", err, out)
	}
	if _, err := blobopen.PrepareAgent(ctx, l.URL, l.Admin.Env, blobopen.AgentOptions{Principals: []string{l.Agent.Access}}); err != nil {
		t.Fatalf("preparing locked bucket: %v", err)
	}
	return l
}

// String names the bucket in test logs.
func (l *LockedS3) String() string { return fmt.Sprintf("s3://%s on %s", l.Bucket, l.Endpoint) }
