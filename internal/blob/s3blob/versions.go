package s3blob

import (
	"context"
	"slices"

	"github.com/minio/minio-go/v7"
)

// deleteVersions removes every version of name (and its delete markers).
// In a versioned bucket a plain DELETE only adds a delete marker and frees
// nothing, so prune would never reclaim space. Versions go oldest first: if
// the service refuses one because it is still retained, the newer versions,
// and so what readers see, are untouched, and a later prune finishes the job.
func (b *Backend) deleteVersions(ctx context.Context, name string) error {
	versions, err := b.versions(ctx, name)
	if err != nil {
		return classify("delete", name, err)
	}
	for _, v := range versions {
		err := b.client.RemoveObject(ctx, b.cfg.Bucket, b.key(name), minio.RemoveObjectOptions{VersionID: v})
		if c := code(err); c == "NoSuchVersion" || c == "NoSuchKey" {
			continue // removed meanwhile
		}
		if err != nil {
			return classify("delete", name, err)
		}
	}
	return nil
}

// versions lists the version IDs of exactly name, oldest first. A missing
// bucket has none.
func (b *Backend) versions(ctx context.Context, name string) ([]string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	key := b.key(name)
	var ids []string
	opts := minio.ListObjectsOptions{Prefix: key, Recursive: true, WithVersions: true}
	for oi := range b.client.ListObjects(ctx, b.cfg.Bucket, opts) {
		if oi.Err != nil {
			if code(oi.Err) == "NoSuchBucket" {
				return nil, nil
			}
			return nil, oi.Err
		}
		if oi.Key == key {
			ids = append(ids, oi.VersionID)
		}
	}
	// S3 lists the versions of a key newest first.
	slices.Reverse(ids)
	return ids, ctx.Err()
}
