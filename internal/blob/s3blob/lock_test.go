package s3blob_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/blobopen"
	"github.com/haven-dr/haven/internal/blob/s3blob"
	"github.com/haven-dr/haven/internal/testenv"
)

// raw is a bare S3 client with key: requests go to the server exactly as
// an attacker holding that key would send them, past every check in s3blob.
func raw(t *testing.T, l *testenv.LockedS3, key testenv.S3Key) *minio.Client {
	t.Helper()
	c, err := minio.New(l.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(key.Access, key.Secret, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func backend(t *testing.T, l *testenv.LockedS3, key testenv.S3Key) *s3blob.Backend {
	t.Helper()
	b, err := s3blob.New(l.Config(key))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rawGet(t *testing.T, c *minio.Client, bucket, key, version string) []byte {
	t.Helper()
	o, err := c.GetObject(context.Background(), bucket, key, minio.GetObjectOptions{VersionID: version})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	data, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("reading %s version %q: %v", key, version, err)
	}
	return data
}

// TestLockedPutSetsRetention: every object the agent writes through s3blob,
// small (one PUT) or large (multipart), carries the configured mode and a
// retain-until of write time + retain, as stored by the server.
func TestLockedPutSetsRetention(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []s3blob.LockMode{s3blob.LockGovernance, s3blob.LockCompliance} {
		t.Run(string(mode), func(t *testing.T) {
			const retain = 30 * 24 * time.Hour
			l := testenv.LockedS3Bucket(t, mode, retain)
			agent := backend(t, l, l.Agent)
			objects := map[string][]byte{"config": []byte("cfg"), "data/ab/pack": bytes.Repeat([]byte{7}, 17<<20), "empty": {}}
			before := time.Now().Add(-time.Second)
			for name, data := range objects {
				if err := agent.Put(ctx, name, data); err != nil {
					t.Fatalf("agent put %s: %v", name, err)
				}
			}
			after := time.Now().Add(time.Second)
			admin := raw(t, l, l.Admin)
			n := 0
			for oi := range admin.ListObjects(ctx, l.Bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
				if oi.Err != nil {
					t.Fatal(oi.Err)
				}
				n++
				m, until := retention(t, admin, l.Bucket, oi.Key, oi.VersionID)
				if m != string(mode) {
					t.Errorf("%s: mode %q, want %s", oi.Key, m, mode)
				}
				if until.Before(before.Add(retain)) || until.After(after.Add(retain)) {
					t.Errorf("%s: retain-until %v, want between %v and %v", oi.Key, until, before.Add(retain), after.Add(retain))
				}
			}
			if n != len(objects) {
				t.Errorf("bucket holds %d object versions, want %d", n, len(objects))
			}
		})
	}
}

// TestAgentCannotDestroy: with the agent's key, every way of destroying an
// object is refused by the server (raw requests, no Haven code in the way),
// and an overwrite only adds a version: the original stays readable.
func TestAgentCannotDestroy(t *testing.T) {
	ctx := context.Background()
	l := testenv.LockedS3Bucket(t, s3blob.LockGovernance, time.Hour)
	if err := backend(t, l, l.Agent).Put(ctx, "points/m1/p1", []byte("original")); err != nil {
		t.Fatal(err)
	}
	agent, admin := raw(t, l, l.Agent), raw(t, l, l.Admin)
	st, err := agent.StatObject(ctx, l.Bucket, "points/m1/p1", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v1 := st.VersionID
	if v1 == "" {
		t.Fatal("no version ID: bucket is not versioned")
	}
	refused := map[string]error{
		"delete":                 agent.RemoveObject(ctx, l.Bucket, "points/m1/p1", minio.RemoveObjectOptions{}),
		"delete version":         agent.RemoveObject(ctx, l.Bucket, "points/m1/p1", minio.RemoveObjectOptions{VersionID: v1}),
		"delete version, bypass": agent.RemoveObject(ctx, l.Bucket, "points/m1/p1", minio.RemoveObjectOptions{VersionID: v1, GovernanceBypass: true}),
		"shorten retention": agent.PutObjectRetention(ctx, l.Bucket, "points/m1/p1", minio.PutObjectRetentionOptions{
			VersionID: v1, GovernanceBypass: true, Mode: ptr(minio.Governance), RetainUntilDate: ptr(time.Now().Add(time.Minute))}),
		"replace policy":     agent.SetBucketPolicy(ctx, l.Bucket, ""),
		"suspend versioning": agent.SuspendVersioning(ctx, l.Bucket),
		"delete bucket":      agent.RemoveBucket(ctx, l.Bucket),
		"legal hold":         agent.PutObjectLegalHold(ctx, l.Bucket, "points/m1/p1", minio.PutObjectLegalHoldOptions{VersionID: v1, Status: ptr(minio.LegalHoldEnabled)}),
		"remove lock config": agent.SetObjectLockConfig(ctx, l.Bucket, nil, nil, nil),
	}
	for what, err := range refused {
		if err == nil {
			t.Errorf("agent %s: accepted by the server", what)
		} else if minio.ToErrorResponse(err).StatusCode != 403 {
			t.Errorf("agent %s: %v, want HTTP 403", what, err)
		}
	}
	// An overwrite is the one write S3 cannot refuse to a writer: it lands
	// as a new version, and the original is still there, locked.
	// Sent without lock headers, it still falls under the bucket's
	// default lock: not even the admin can delete that version now.
	if _, err := agent.PutObject(ctx, l.Bucket, "points/m1/p1", bytes.NewReader([]byte("garbage")), 7, minio.PutObjectOptions{}); err != nil {
		t.Fatalf("agent overwrite: %v", err)
	}
	v2 := currentVersion(t, admin, l.Bucket, "points/m1/p1")
	if err := admin.RemoveObject(ctx, l.Bucket, "points/m1/p1", minio.RemoveObjectOptions{VersionID: v2}); err == nil {
		t.Error("a version written without lock headers was deletable: the bucket has no default lock")
	}
	if got := rawGet(t, admin, l.Bucket, "points/m1/p1", v1); string(got) != "original" {
		t.Errorf("original version after agent's attempts: %q", got)
	}
	// Haven reads the first version, so the overwrite is harmless to it:
	// Get, Stat and List all see the original, through a fresh backend
	// (nothing cached) with either key.
	for _, key := range []testenv.S3Key{l.Agent, l.Admin} {
		be := backend(t, l, key)
		if got, err := be.Get(ctx, "points/m1/p1", 0, -1); err != nil || string(got) != "original" {
			t.Errorf("Get after overwrite: %q, %v", got, err)
		}
		var sizes []int64
		be.List(ctx, "points/", func(fi blob.Info) error { sizes = append(sizes, fi.Size); return nil })
		if len(sizes) != 1 || sizes[0] != int64(len("original")) {
			t.Errorf("List after overwrite: sizes %v", sizes)
		}
		if fi, err := backend(t, l, key).Stat(ctx, "points/m1/p1"); err != nil || fi.Size != int64(len("original")) {
			t.Errorf("Stat after overwrite: %+v, %v", fi, err)
		}
	}
	if err := backend(t, l, l.Agent).Delete(ctx, "points/m1/p1"); err == nil {
		t.Error("agent Delete through s3blob succeeded")
	}
	if got := rawGet(t, admin, l.Bucket, "points/m1/p1", v1); string(got) != "original" {
		t.Errorf("original version after agent's Delete: %q", got)
	}
}

// TestAdminDeleteWaitsForRetention: the admin's Delete of an object under
// retention is refused by the server and reported as blob.ErrRetained with
// nothing removed, in both modes (so s3blob never sends a governance
// bypass); once retain-until has passed the same Delete removes every
// version.
func TestAdminDeleteWaitsForRetention(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []s3blob.LockMode{s3blob.LockGovernance, s3blob.LockCompliance} {
		t.Run(string(mode), func(t *testing.T) {
			l := testenv.LockedS3Bucket(t, mode, 3*time.Second)
			adminBe := backend(t, l, l.Admin)
			for _, data := range []string{"one", "two"} { // two versions
				if err := backend(t, l, l.Agent).Put(ctx, "data/00/p", []byte(data)); err != nil {
					t.Fatal(err)
				}
			}
			err := adminBe.Delete(ctx, "data/00/p")
			if !errors.Is(err, blob.ErrRetained) {
				t.Fatalf("admin delete under retention: %v, want ErrRetained", err)
			}
			// Readers of a locked bucket see the first version: the
			// second is an overwrite Haven never makes.
			if got, err := adminBe.Get(ctx, "data/00/p", 0, -1); err != nil || string(got) != "one" {
				t.Fatalf("after refused delete: %q, %v", got, err)
			}
			admin := raw(t, l, l.Admin)
			if mode == s3blob.LockCompliance {
				// Nobody lifts a COMPLIANCE lock, not the root with a bypass.
				err := admin.RemoveObject(ctx, l.Bucket, "data/00/p", minio.RemoveObjectOptions{VersionID: currentVersion(t, admin, l.Bucket, "data/00/p"), GovernanceBypass: true})
				if err == nil {
					t.Fatal("root deleted a COMPLIANCE-locked version with a governance bypass")
				}
			}
			waitRetention(t, admin, l.Bucket, "data/00/p")
			if err := adminBe.Delete(ctx, "data/00/p"); err != nil {
				t.Fatalf("admin delete after retention: %v", err)
			}
			for oi := range admin.ListObjects(ctx, l.Bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
				t.Errorf("left after delete: %s version %s (delete marker %v, err %v)", oi.Key, oi.VersionID, oi.IsDeleteMarker, oi.Err)
			}
			if _, err := adminBe.Stat(ctx, "data/00/p"); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("stat after delete: %v", err)
			}
		})
	}
}

// waitRetention sleeps until key's current version, written last and so
// retained longest, is past its retain-until as the server recorded it.
func waitRetention(t *testing.T, c *minio.Client, bucket, key string) {
	t.Helper()
	_, until := retention(t, c, bucket, key, "")
	time.Sleep(time.Until(until) + 1100*time.Millisecond) // retain-until has whole seconds
}

func currentVersion(t *testing.T, c *minio.Client, bucket, key string) string {
	t.Helper()
	st, err := c.StatObject(context.Background(), bucket, key, minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return st.VersionID
}

// retention reads a version's lock from the headers of a HEAD request.
// (versitygw v1.8.0 answers GetObjectRetention with an <ObjectLockRetention>
// element where AWS sends <Retention>, which minio-go cannot parse, and
// sends no lock headers for a noncurrent version, though it enforces its
// lock.)
func retention(t *testing.T, c *minio.Client, bucket, key, version string) (mode string, until time.Time) {
	t.Helper()
	st, err := c.StatObject(context.Background(), bucket, key, minio.StatObjectOptions{VersionID: version})
	if err != nil {
		t.Fatalf("stat %s version %s: %v", key, version, err)
	}
	mode = st.Metadata.Get("X-Amz-Object-Lock-Mode")
	until, err = time.Parse(time.RFC3339, st.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date"))
	if err != nil {
		t.Fatalf("%s version %s: no retain-until (mode %q): %v", key, version, mode, err)
	}
	return mode, until
}

func ptr[T any](v T) *T { return &v }

func TestParseURLLock(t *testing.T) {
	env := testenv.S3Key{Access: "a", Secret: "s"}.Env
	cfg, err := s3blob.ParseURL("s3://b?lock=Compliance&retain=30d", env)
	if err != nil || cfg.Lock != s3blob.LockCompliance || cfg.Retain != 30*24*time.Hour {
		t.Fatalf("got %+v, %v", cfg, err)
	}
	if b, _ := s3blob.New(cfg); b.Location() != "s3://b?lock=compliance&retain=720h0m0s" {
		t.Errorf("location %s", b.Location())
	}
	for _, bad := range []string{"s3://b?lock=forever&retain=1h", "s3://b?lock=governance", "s3://b?retain=1h",
		"s3://b?lock=governance&retain=soon", "s3://b?lock=governance&retain=-1h", "s3://b?lock=governance&retain=xd"} {
		if _, err := s3blob.ParseURL(bad, env); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// TestRetainExtends: the agent, through the wrapped backend the vault
// uses, can extend the lock of an object in use but never shorten it; the
// server then refuses the admin's delete until the extended date.
func TestRetainExtends(t *testing.T) {
	ctx := context.Background()
	l := testenv.LockedS3Bucket(t, s3blob.LockGovernance, 2*time.Second)
	agentBe, err := blobopen.OpenEnv(ctx, l.URL, blob.DefaultLimits(), l.Agent.Env)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := blob.AsRetainer(agentBe)
	if !ok || r.Retention() != 2*time.Second {
		t.Fatalf("AsRetainer: %v %v", r, ok)
	}
	if err := agentBe.Put(ctx, "data/00/pack", []byte("used by every point")); err != nil {
		t.Fatal(err)
	}
	admin := raw(t, l, l.Admin)
	_, written := retention(t, admin, l.Bucket, "data/00/pack", "")
	later := time.Now().Add(time.Hour)
	if err := r.Retain(ctx, "data/00/pack", later); err != nil {
		t.Fatalf("agent extends: %v", err)
	}
	mode, until := retention(t, admin, l.Bucket, "data/00/pack", "")
	if mode != "GOVERNANCE" || until.Before(later) || !until.After(written) {
		t.Fatalf("after extension: %s until %v, want GOVERNANCE until >= %v", mode, until, later)
	}
	if err := r.Retain(ctx, "data/00/pack", time.Now().Add(time.Minute)); err != nil {
		t.Fatalf("shorter retain: %v, want a no-op", err)
	}
	if _, now := retention(t, admin, l.Bucket, "data/00/pack", ""); !now.Equal(until) {
		t.Errorf("shorter retain moved the lock from %v to %v", until, now)
	}
	time.Sleep(time.Until(written) + 1100*time.Millisecond) // the original lock has run out
	if err := backend(t, l, l.Admin).Delete(ctx, "data/00/pack"); !errors.Is(err, blob.ErrRetained) {
		t.Fatalf("admin delete of an extended lock: %v, want ErrRetained", err)
	}
	plain, err := blobopen.OpenEnv(ctx, "s3://b?endpoint="+l.Endpoint+"&insecure=true", blob.DefaultLimits(), l.Agent.Env)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := blob.AsRetainer(plain); ok {
		t.Error("a URL without lock= reports a retainer")
	}
}
