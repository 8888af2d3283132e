package azblob

import (
	"context"
	"errors"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/haven-dr/haven/internal/blob"
)

// List pages through a flat listing of the prefix.
func (b *Backend) List(ctx context.Context, prefix string, fn func(blob.Info) error) error {
	full := blob.Prefix(b.cfg.Prefix).ListKey(prefix)
	pager := b.cont.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{
		Prefix: &full, MaxResults: ptr(int32(listPageSize)),
	})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			if err = classify("list", prefix, err); errors.Is(err, blob.ErrNotFound) {
				return nil // no container yet: nothing stored
			}
			return err
		}
		for _, it := range page.Segment.BlobItems {
			if err := fn(b.info(it)); err != nil {
				return err
			}
		}
	}
	return nil
}

// info converts a listing entry, stripping the backend's prefix.
func (b *Backend) info(it *container.BlobItem) blob.Info {
	fi := blob.Info{Name: blob.Prefix(b.cfg.Prefix).Name(*it.Name)}
	if p := it.Properties; p != nil {
		if p.ContentLength != nil {
			fi.Size = *p.ContentLength
		}
		if p.LastModified != nil {
			fi.ModTime = *p.LastModified
		}
	}
	return fi
}

func ptr[T any](v T) *T { return &v }
