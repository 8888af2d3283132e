package s3blob

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/minio/minio-go/v7"
)

// Actions an append-only agent needs: read and list what is there, and add
// objects carrying their own retention (S3 checks s3:PutObjectRetention on
// a PUT with Object Lock headers). Retention can only be extended with it:
// shortening a GOVERNANCE lock needs s3:BypassGovernanceRetention, denied
// below, and a COMPLIANCE lock cannot be shortened by anyone. Readers of a
// locked bucket read each name's first version (see firstVersion), which
// AWS authorizes as s3:ListBucketVersions and s3:GetObjectVersion.
var agentAllow = []string{
	"s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:PutObjectRetention", "s3:GetObjectRetention",
	"s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketLocation", "s3:AbortMultipartUpload",
}

// agentDeny is spelled out so a broad grant elsewhere (an identity policy,
// a group) cannot give the agent a way to destroy: an explicit Deny wins
// over any Allow in S3's policy evaluation.
var agentDeny = []string{
	"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention",
	"s3:PutObjectLegalHold", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy",
	"s3:PutBucketVersioning", "s3:PutBucketObjectLockConfiguration",
	"s3:PutLifecycleConfiguration", "s3:PutReplicationConfiguration", "s3:DeleteBucket",
}

// AgentPolicy is the bucket policy Prepare installs: each principal (an
// IAM user ARN on AWS; an access key ID on versitygw) may put, get and list
// but never delete a version, lift a lock or change the bucket's settings.
func AgentPolicy(bucket string, agents []string) (string, error) {
	if len(agents) == 0 {
		return "", errors.New("s3blob: no agent principal")
	}
	res := []string{"arn:aws:s3:::" + bucket, "arn:aws:s3:::" + bucket + "/*"}
	type stmt struct {
		Sid       string
		Effect    string
		Principal map[string][]string
		Action    []string
		Resource  []string
	}
	p := struct {
		Version   string
		Statement []stmt
	}{"2012-10-17", []stmt{
		{"HavenAgentAppend", "Allow", map[string][]string{"AWS": agents}, agentAllow, res},
		{"HavenAgentNeverDestroys", "Deny", map[string][]string{"AWS": agents}, agentDeny, res},
	}}
	out, err := json.Marshal(p)
	return string(out), err
}

// Prepare makes the bucket ready for append-only agents, as an admin:
// creates it with Object Lock (which S3 only allows at creation, and which
// switches versioning on, so an overwrite adds a version instead of
// replacing one), makes sure versioning is on, and installs AgentPolicy for
// agents. It is idempotent; an existing bucket without Object Lock is an
// error (recreate it, or copy the vault into a new one).
func (b *Backend) Prepare(ctx context.Context, agents []string) error {
	policy, err := AgentPolicy(b.cfg.Bucket, agents)
	if err != nil {
		return err
	}
	if err := b.client.MakeBucket(ctx, b.cfg.Bucket, minio.MakeBucketOptions{Region: b.cfg.region(), ObjectLocking: true}); err != nil {
		if c := code(err); c != "BucketAlreadyOwnedByYou" && c != "BucketAlreadyExists" {
			return classify("create bucket", b.cfg.Bucket, err)
		}
	}
	enabled, _, _, _, err := b.client.GetObjectLockConfig(ctx, b.cfg.Bucket)
	if err != nil {
		return classify("object lock config", b.cfg.Bucket, err)
	}
	if enabled != "Enabled" {
		return fmt.Errorf("s3blob: bucket %s exists without Object Lock; S3 enables it only at creation: use a new bucket", b.cfg.Bucket)
	}
	if err := b.setDefaultRetention(ctx); err != nil {
		return classify("object lock config", b.cfg.Bucket, err)
	}
	if err := b.client.EnableVersioning(ctx, b.cfg.Bucket); err != nil {
		return classify("enable versioning", b.cfg.Bucket, err)
	}
	if err := b.client.SetBucketPolicy(ctx, b.cfg.Bucket, policy); err != nil {
		return classify("bucket policy", b.cfg.Bucket, err)
	}
	return nil
}

// setDefaultRetention makes the bucket lock, in the URL's mode, whatever
// arrives without lock headers of its own (a client without lock= in its
// URL, another tool): nothing lands unlocked. The default counts in whole
// days, so it is retain rounded up; Haven's own uploads carry their exact
// retain-until, which takes precedence over the default.
func (b *Backend) setDefaultRetention(ctx context.Context) error {
	if b.cfg.Lock == "" {
		return nil
	}
	mode := minio.RetentionMode(b.cfg.Lock)
	days := uint((b.cfg.Retain + 24*time.Hour - 1) / (24 * time.Hour))
	unit := minio.Days
	return b.client.SetObjectLockConfig(ctx, b.cfg.Bucket, &mode, &days, &unit)
}
