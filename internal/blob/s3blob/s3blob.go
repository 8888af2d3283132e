// Package s3blob stores objects in an S3 bucket (AWS or any S3-compatible
// server). A PUT (or a completed multipart upload for large objects)
// replaces an object whole, so readers never see a partial object. The
// bucket is created lazily by the first Put that finds it missing; reads of
// a missing bucket report ErrNotFound and an empty listing.
package s3blob

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/haven-dr/haven/internal/blob"
)

// Backend is one bucket, optionally under a prefix.
type Backend struct {
	cfg    Config
	client *minio.Client
	// Until one Put has succeeded the bucket may not exist, and Puts run
	// one at a time: some servers (versitygw) answer 500 to an upload that
	// races with the bucket's creation. After that, Puts run in parallel.
	ready   atomic.Bool
	firstMu sync.Mutex
	// origin caches name -> version ID of its first version (locked
	// buckets only, see firstVersion).
	origin sync.Map
}

var _ blob.Backend = (*Backend)(nil)

// New builds a client; it does no network I/O.
func New(cfg Config) (*Backend, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	opts := &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken),
		Secure: !cfg.Insecure,
		Region: cfg.region(),
		// One attempt per call: blob.Retry retries every backend the
		// same way, and minio-go's default of 10 would multiply delays.
		MaxRetries: 1,
	}
	if cfg.PathStyle {
		opts.BucketLookup = minio.BucketLookupPath
	}
	client, err := minio.New(cfg.endpoint(), opts)
	if err != nil {
		return nil, fmt.Errorf("s3blob: %w", err)
	}
	return &Backend{cfg: cfg, client: client}, nil
}

// Location returns the URL without secrets.
func (b *Backend) Location() string { return b.cfg.location() }

// Close does nothing; the HTTP client is shared.
func (b *Backend) Close() error { return nil }

func (b *Backend) key(name string) string { return blob.Prefix(b.cfg.Prefix).Key(name) }

// Put uploads data, creating the bucket if needed.
func (b *Backend) Put(ctx context.Context, name string, data []byte) error {
	if err := blob.CheckName(name); err != nil {
		return err
	}
	if !b.ready.Load() {
		b.firstMu.Lock()
		defer b.firstMu.Unlock()
		// Make sure of the bucket before the first upload: a server may
		// answer an upload into a missing bucket at once and close the
		// connection while the request is still being written, and the
		// client then sees a broken pipe instead of NoSuchBucket.
		if ok, err := b.client.BucketExists(ctx, b.cfg.Bucket); err == nil && !ok {
			if err := b.makeBucket(ctx); err != nil {
				return classify("put", name, err)
			}
		}
	}
	err := b.upload(ctx, name, data)
	if code(err) == "NoSuchBucket" {
		if err = b.makeBucket(ctx); err == nil {
			err = b.upload(ctx, name, data)
		}
	}
	if err == nil {
		b.ready.Store(true)
	}
	return classify("put", name, err)
}

func (b *Backend) upload(ctx context.Context, name string, data []byte) error {
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream"}
	if b.cfg.Lock != "" {
		// The retain-until travels with the upload, so no object is ever
		// stored unlocked, not even for a moment. S3 wants a Content-MD5 (or
		// checksum) on any upload carrying Object Lock headers.
		opts.Mode = minio.RetentionMode(b.cfg.Lock)
		opts.RetainUntilDate = time.Now().Add(b.cfg.Retain).UTC()
		opts.SendContentMd5 = true
	}
	_, err := b.client.PutObject(ctx, b.cfg.Bucket, b.key(name), bytes.NewReader(data), int64(len(data)), opts)
	return err
}

// makeBucket creates the bucket; one created meanwhile is fine. With a lock
// mode configured the bucket gets Object Lock (and with it versioning),
// which S3 can only switch on at creation.
func (b *Backend) makeBucket(ctx context.Context) error {
	err := b.client.MakeBucket(ctx, b.cfg.Bucket, minio.MakeBucketOptions{Region: b.cfg.region(), ObjectLocking: b.cfg.Lock != ""})
	if c := code(err); c == "BucketAlreadyOwnedByYou" || c == "BucketAlreadyExists" {
		return nil
	}
	return err
}

// Get downloads a range. A range starting at or past the end is answered
// with 416 InvalidRange, which the contract turns into an empty result.
func (b *Backend) Get(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	if err := blob.CheckName(name); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("s3blob: get %s: negative offset %d", name, offset)
	}
	if length == 0 {
		_, err := b.Stat(ctx, name)
		return []byte{}, err
	}
	var opts minio.GetObjectOptions
	if err := setRange(&opts, offset, length); err != nil {
		return nil, err
	}
	var data []byte
	err := b.atOrigin(ctx, name, func(version string) error {
		opts.VersionID = version
		obj, err := b.client.GetObject(ctx, b.cfg.Bucket, b.key(name), opts)
		if err != nil {
			return err
		}
		defer obj.Close()
		data, err = io.ReadAll(obj)
		if code(err) == "InvalidRange" {
			data, err = []byte{}, nil
		}
		return err
	})
	if err != nil {
		return nil, classify("get", name, err)
	}
	return data, nil
}

// setRange asks for bytes [offset, offset+length) or [offset, end).
func setRange(opts *minio.GetObjectOptions, offset, length int64) error {
	switch {
	case length > 0:
		return opts.SetRange(offset, offset+length-1)
	case offset > 0:
		return opts.SetRange(offset, 0)
	}
	return nil
}

// Stat reads the object's metadata.
func (b *Backend) Stat(ctx context.Context, name string) (blob.Info, error) {
	if err := blob.CheckName(name); err != nil {
		return blob.Info{}, err
	}
	var oi minio.ObjectInfo
	err := b.atOrigin(ctx, name, func(version string) (err error) {
		oi, err = b.client.StatObject(ctx, b.cfg.Bucket, b.key(name), minio.StatObjectOptions{VersionID: version})
		return err
	})
	if err != nil {
		return blob.Info{}, classify("stat", name, err)
	}
	return blob.Info{Name: name, Size: oi.Size, ModTime: oi.LastModified}, nil
}

// Delete removes the object; S3 already treats a missing one as success,
// and a missing bucket is fine too. With Object Lock the bucket is
// versioned, and Delete removes every version (see deleteVersions); a
// version still under retention makes it fail with blob.ErrRetained.
func (b *Backend) Delete(ctx context.Context, name string) error {
	if err := blob.CheckName(name); err != nil {
		return err
	}
	if b.cfg.Lock != "" {
		return b.deleteVersions(ctx, name)
	}
	err := b.client.RemoveObject(ctx, b.cfg.Bucket, b.key(name), minio.RemoveObjectOptions{})
	if c := code(err); c == "NoSuchBucket" || c == "NoSuchKey" {
		return nil
	}
	return classify("delete", name, err)
}
