// Package azblob stores objects in an Azure Blob Storage container (or
// Azurite). Each object is one block blob; an upload is committed whole by
// the service, so readers never see a partial object. The container is
// created lazily by the first Put that finds it missing; reads of a missing
// container report ErrNotFound and an empty listing.
package azblob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	sdk "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/haven-dr/haven/internal/blob"
)

// listPageSize is the page size asked of List Blobs (the service allows up
// to 5000); 1000 matches S3 so both paginate the same way in tests.
const listPageSize = 1000

// Backend is one container, optionally under a prefix.
type Backend struct {
	cfg    Config
	client *sdk.Client
	cont   *container.Client
}

var _ blob.Backend = (*Backend)(nil)

// New builds a client; it does no network I/O.
func New(cfg Config) (*Backend, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	client, err := newClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("azblob: %w", err)
	}
	return &Backend{cfg: cfg, client: client, cont: client.ServiceClient().NewContainerClient(cfg.Container)}, nil
}

// newClient turns off the SDK's own retries: blob.Retry does that once for
// every backend, and a second layer would multiply the delays.
func newClient(cfg Config) (*sdk.Client, error) {
	opts := &sdk.ClientOptions{ClientOptions: azcore.ClientOptions{
		Retry: policy.RetryOptions{MaxRetries: -1},
	}}
	switch {
	case cfg.ConnectionString != "":
		return sdk.NewClientFromConnectionString(cfg.ConnectionString, opts)
	case cfg.Key != "":
		cred, err := sdk.NewSharedKeyCredential(cfg.Account, cfg.Key)
		if err != nil {
			return nil, err
		}
		return sdk.NewClientWithSharedKeyCredential(cfg.serviceURL(), cred, opts)
	default:
		return sdk.NewClientWithNoCredential(cfg.serviceURL()+"?"+cfg.SAS, opts)
	}
}

// Location returns the URL without secrets.
func (b *Backend) Location() string { return b.cfg.location() }

// Close does nothing; the HTTP client is shared.
func (b *Backend) Close() error { return nil }

func (b *Backend) key(name string) string { return blob.Prefix(b.cfg.Prefix).Key(name) }

// Put uploads data as one block blob, creating the container if needed.
func (b *Backend) Put(ctx context.Context, name string, data []byte) error {
	if err := blob.CheckName(name); err != nil {
		return err
	}
	err := b.upload(ctx, name, data)
	if bloberror.HasCode(err, bloberror.ContainerNotFound) {
		if err = b.createContainer(ctx); err == nil {
			err = b.upload(ctx, name, data)
		}
	}
	return classify("put", name, err)
}

func (b *Backend) upload(ctx context.Context, name string, data []byte) error {
	_, err := b.client.UploadBuffer(ctx, b.cfg.Container, b.key(name), data, &sdk.UploadBufferOptions{Concurrency: 4})
	return err
}

// createContainer creates the container; one created meanwhile is fine.
func (b *Backend) createContainer(ctx context.Context) error {
	_, err := b.cont.Create(ctx, nil)
	if bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return nil
	}
	return err
}

// Get downloads a range. A range starting at or past the end is answered by
// the service with 416, which the contract turns into an empty result.
func (b *Backend) Get(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	if err := blob.CheckName(name); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("azblob: get %s: negative offset %d", name, offset)
	}
	if length == 0 {
		_, err := b.Stat(ctx, name)
		return []byte{}, err
	}
	opts := &sdk.DownloadStreamOptions{}
	if offset > 0 || length > 0 {
		opts.Range = sdk.HTTPRange{Offset: offset, Count: max(length, 0)}
	}
	resp, err := b.client.DownloadStream(ctx, b.cfg.Container, b.key(name), opts)
	if bloberror.HasCode(err, bloberror.InvalidRange) {
		return []byte{}, nil
	}
	if err != nil {
		return nil, classify("get", name, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if resp.ContentLength != nil {
		buf.Grow(int(*resp.ContentLength))
	}
	if _, err := io.Copy(&buf, resp.Body); err != nil {
		return nil, classify("get", name, err)
	}
	return buf.Bytes(), nil
}

// Stat reads the blob's properties.
func (b *Backend) Stat(ctx context.Context, name string) (blob.Info, error) {
	if err := blob.CheckName(name); err != nil {
		return blob.Info{}, err
	}
	p, err := b.cont.NewBlobClient(b.key(name)).GetProperties(ctx, nil)
	if err != nil {
		return blob.Info{}, classify("stat", name, err)
	}
	fi := blob.Info{Name: name}
	if p.ContentLength != nil {
		fi.Size = *p.ContentLength
	}
	if p.LastModified != nil {
		fi.ModTime = *p.LastModified
	}
	return fi, nil
}

// Delete removes the blob; a missing blob or container is fine.
func (b *Backend) Delete(ctx context.Context, name string) error {
	if err := blob.CheckName(name); err != nil {
		return err
	}
	_, err := b.client.DeleteBlob(ctx, b.cfg.Container, b.key(name), nil)
	if err = classify("delete", name, err); errors.Is(err, blob.ErrNotFound) {
		return nil
	}
	return err
}
