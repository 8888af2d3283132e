package s3blob

import (
	"context"
	"fmt"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/haven-dr/haven/internal/blob"
)

var _ blob.Retainer = (*Backend)(nil)

// Retention is how long each Put locks an object (0 without lock=).
func (b *Backend) Retention() time.Duration {
	if b.cfg.Lock == "" {
		return 0
	}
	return b.cfg.Retain
}

// Retain extends the lock of name's current version to until, keeping its
// mode; a lock that already reaches until is left alone, since S3 refuses
// to shorten one (and Haven never asks it to). The agent's policy allows
// this: extending a lock can cost space, never data.
func (b *Backend) Retain(ctx context.Context, name string, until time.Time) error {
	if err := blob.CheckName(name); err != nil {
		return err
	}
	if b.cfg.Lock == "" {
		return fmt.Errorf("s3blob: retain %s: the URL sets no lock mode", name)
	}
	st, err := b.client.StatObject(ctx, b.cfg.Bucket, b.key(name), minio.StatObjectOptions{})
	if err != nil {
		return classify("retain", name, err)
	}
	// The HEAD's headers, not GetObjectRetention: versitygw v1.8.0 answers
	// the latter with an XML element minio-go cannot parse.
	mode := minio.RetentionMode(st.Metadata.Get("X-Amz-Object-Lock-Mode"))
	if cur, err := time.Parse(time.RFC3339, st.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date")); err == nil && !until.After(cur) {
		return nil
	}
	if !mode.IsValid() {
		mode = minio.RetentionMode(b.cfg.Lock) // written unlocked (by another client)
	}
	until = until.UTC().Truncate(time.Second).Add(time.Second) // S3 keeps whole seconds: round up
	err = b.client.PutObjectRetention(ctx, b.cfg.Bucket, b.key(name), minio.PutObjectRetentionOptions{
		VersionID: st.VersionID, Mode: &mode, RetainUntilDate: &until,
	})
	return classify("retain", name, err)
}
