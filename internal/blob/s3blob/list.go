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
	if b.cfg.Lock != "" {
		return b.listOrigins(ctx, full, prefix, fn)
	}
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

// listOrigins lists every name whose newest version is not a delete marker
// with the size and time of its first version (see firstVersion), caching
// that version for the reads that usually follow. S3 lists the versions of
// a key together, newest first.
func (b *Backend) listOrigins(ctx context.Context, full, prefix string, fn func(blob.Info) error) error {
	var (
		key     string
		first   minio.ObjectInfo
		deleted bool
	)
	emit := func() error {
		if key == "" || deleted || first.VersionID == "" && first.Key == "" {
			return nil
		}
		name := blob.Prefix(b.cfg.Prefix).Name(key)
		b.origin.Store(name, first.VersionID)
		return fn(blob.Info{Name: name, Size: first.Size, ModTime: first.LastModified})
	}
	for oi := range b.client.ListObjects(ctx, b.cfg.Bucket, minio.ListObjectsOptions{Prefix: full, Recursive: true, WithVersions: true}) {
		if oi.Err != nil {
			if code(oi.Err) == "NoSuchBucket" {
				return nil
			}
			return classify("list", prefix, oi.Err)
		}
		if oi.Key != key {
			if err := emit(); err != nil {
				return err
			}
			key, first, deleted = oi.Key, minio.ObjectInfo{}, oi.IsDeleteMarker
		}
		if !oi.IsDeleteMarker {
			first = oi
		}
	}
	if err := emit(); err != nil {
		return err
	}
	return ctx.Err()
}
