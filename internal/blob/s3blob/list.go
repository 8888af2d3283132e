package s3blob

import (
	"context"

	"github.com/minio/minio-go/v7"

	"github.com/haven-dr/haven/internal/blob"
)

// List pages through a recursive listing (ListObjectsV2, 1000 keys a page).
func (b *Backend) List(ctx context.Context, prefix string, fn func(blob.Info) error) error {
	ctx, cancel := context.WithCancel(ctx) // stops minio's lister if fn fails
	defer cancel()
	full := blob.Prefix(b.cfg.Prefix).ListKey(prefix)
	for oi := range b.client.ListObjects(ctx, b.cfg.Bucket, minio.ListObjectsOptions{Prefix: full, Recursive: true}) {
		if oi.Err != nil {
			if code(oi.Err) == "NoSuchBucket" {
				return nil // no bucket yet: nothing stored
			}
			return classify("list", prefix, oi.Err)
		}
		if err := fn(blob.Info{Name: blob.Prefix(b.cfg.Prefix).Name(oi.Key), Size: oi.Size, ModTime: oi.LastModified}); err != nil {
			return err
		}
	}
	return ctx.Err()
}
