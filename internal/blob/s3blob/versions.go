package s3blob

import (
	"context"
	"slices"

	"github.com/minio/minio-go/v7"
)

// deleteVersions removes every version of name (and its delete markers).
// In a versioned bucket a plain DELETE only adds a delete marker and frees
// nothing, so prune would never reclaim space. Versions go newest first:
// readers see the first version (see firstVersion), so if the service
// refuses one because it is still retained, the first version, and so what
// readers see, is untouched, and a later prune finishes the job.
func (b *Backend) deleteVersions(ctx context.Context, name string) error {
	versions, err := b.versions(ctx, name)
	if err != nil {
		return classify("delete", name, err)
	}
	b.origin.Delete(name)
	slices.Reverse(versions)
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

// In a bucket with Object Lock (lock= in the URL) Haven reads the first
// version of every name, not the latest. The vault writes each name once
// (the append-only protocol; a retried write has the same bytes), so a
// later version can only be an overwrite by someone else, typically an
// attacker holding the agent's key, which S3 cannot refuse to a principal
// that may put: it lands as a new version. Reading the first version makes
// such an overwrite harmless, as a refused overwrite is elsewhere.

// firstVersion is the version ID of name's first version, or ErrNotFound
// when it has none or its newest is a delete marker.
func (b *Backend) firstVersion(ctx context.Context, name string) (string, error) {
	if v, ok := b.origin.Load(name); ok {
		return v.(string), nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	key := b.key(name)
	first, newest := "", true
	for oi := range b.client.ListObjects(ctx, b.cfg.Bucket, minio.ListObjectsOptions{Prefix: key, Recursive: true, WithVersions: true}) {
		if oi.Err != nil {
			return "", oi.Err
		}
		if oi.Key != key {
			continue
		}
		if newest && oi.IsDeleteMarker {
			break // deleted: no version is current
		}
		newest = false
		if !oi.IsDeleteMarker {
			first = oi.VersionID // newest first: the last one seen is the first written
		}
	}
	if first == "" {
		return "", minio.ErrorResponse{StatusCode: 404, Code: "NoSuchKey", Key: key}
	}
	b.origin.Store(name, first)
	return first, nil
}

// atOrigin runs op on name's first version in a locked bucket, on its
// current version otherwise. A cached version that is gone (the admin
// deleted the name, and perhaps it was written anew) is looked up again.
func (b *Backend) atOrigin(ctx context.Context, name string, op func(version string) error) error {
	if b.cfg.Lock == "" {
		return op("")
	}
	for try := 0; ; try++ {
		v, err := b.firstVersion(ctx, name)
		if err != nil {
			return err
		}
		err = op(v)
		if c := code(err); try == 0 && (c == "NoSuchVersion" || c == "NoSuchKey" || minio.ToErrorResponse(err).StatusCode == 404) {
			b.origin.Delete(name)
			continue
		}
		return err
	}
}
