package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/haven-dr/haven/internal/blob/s3blob"
	"github.com/haven-dr/haven/internal/testenv"
)

// TestS3ObjectLockCLI: an operator prepares a bucket with `haven vault
// prepare-agent`, the agent's key initialises the vault and takes points
// through the URL with lock=; every object version in the bucket then
// carries a retain-until, and the vault checks clean.
func TestS3ObjectLockCLI(t *testing.T) {
	endpoint, admin, agent := testenv.S3ServerWithUsers(t)
	const retain = 24 * time.Hour
	vaultURL := testenv.LockedS3URL(endpoint, "hvlocked", s3blob.LockCompliance, retain)
	adminEnv := append(admin.Environ(), "HAVEN_VAULT="+vaultURL, "HAVEN_PASSWORD=pw")
	agentEnv := append(agent.Environ(), "HAVEN_VAULT="+vaultURL, "HAVEN_PASSWORD=pw")

	out := mustHaven(t, adminEnv, "vault", "prepare-agent", "--agent", agent.Access)
	if !strings.Contains(out, "Object Lock") {
		t.Errorf("prepare-agent said:\n%s", out)
	}
	mustHaven(t, adminEnv, "vault", "prepare-agent", "--agent", agent.Access) // idempotent

	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, []byte(strings.Repeat("row ", 1<<20)), 0o644); err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Second)
	mustHaven(t, agentEnv, "vault", "init")
	mustHaven(t, agentEnv, "snapshot", "--machine", "db", "--disk", "root="+img)
	mustHaven(t, agentEnv, "snapshot", "--machine", "db", "--disk", "root="+img)
	mustHaven(t, agentEnv, "vault", "check", "--read-data")

	c, err := minio.New(endpoint, &minio.Options{Creds: credentials.NewStaticV4(admin.Access, admin.Secret, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	n := 0
	for oi := range c.ListObjects(ctx, "hvlocked", minio.ListObjectsOptions{Recursive: true}) {
		if oi.Err != nil {
			t.Fatal(oi.Err)
		}
		n++
		st, err := c.StatObject(ctx, "hvlocked", oi.Key, minio.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		until, err := time.Parse(time.RFC3339, st.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date"))
		if err != nil || st.Metadata.Get("X-Amz-Object-Lock-Mode") != "COMPLIANCE" || until.Before(before.Add(retain)) {
			t.Errorf("%s: lock %q until %q, want COMPLIANCE until after %v", oi.Key,
				st.Metadata.Get("X-Amz-Object-Lock-Mode"), st.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date"), before.Add(retain))
		}
	}
	if n < 5 { // config, key, index, pack, point at least
		t.Fatalf("only %d objects in the vault bucket", n)
	}
	t.Logf("%d objects, all locked", n)

	// The agent's key running prune is stopped by the server, not by
	// Haven: its first delete comes back 403 and both points remain.
	r := haven(t, agentEnv, "vault", "prune", "--keep-last", "1")
	if r.code == 0 || !strings.Contains(r.stderr, "403") {
		t.Errorf("agent prune: exit %d, want a refusal by the server\n%s%s", r.code, r.stdout, r.stderr)
	}
	if pts := mustHaven(t, agentEnv, "vault", "points"); strings.Count(pts, "\ndb ") != 2 {
		t.Errorf("points after the agent's prune:\n%s", pts)
	}
	mustHaven(t, agentEnv, "vault", "check", "--read-data")
}
