package vault

import (
	"context"
	"fmt"
)

// pageEntries is how many chunk IDs one page holds. A point's manifest lists
// pages, not chunks, and unchanged pages dedupe like data, so a point of a
// large disk that changed little costs only the pages that changed.
const pageEntries = 1024

func encodePage(ids []ID) []byte {
	b := make([]byte, 0, len(ids)*len(ID{}))
	for _, id := range ids {
		b = append(b, id[:]...)
	}
	return b
}

func decodePage(b []byte) ([]ID, error) {
	if len(b)%len(ID{}) != 0 {
		return nil, fmt.Errorf("page length %d is not a multiple of %d", len(b), len(ID{}))
	}
	ids := make([]ID, len(b)/len(ID{}))
	for i := range ids {
		copy(ids[i][:], b[i*len(ID{}):])
	}
	return ids, nil
}

// chunkIDs loads a disk's full chunk-ID list from its pages.
func (v *Vault) chunkIDs(ctx context.Context, idx *Index, d *Disk, chunkSize int) ([]ID, error) {
	want := int((d.Size + int64(chunkSize) - 1) / int64(chunkSize))
	ids := make([]ID, 0, want)
	for _, pid := range d.Pages {
		plain, err := v.readBlob(ctx, idx, pid)
		if err != nil {
			return nil, err
		}
		page, err := decodePage(plain)
		if err != nil {
			return nil, fmt.Errorf("page %s: %w", pid, err)
		}
		ids = append(ids, page...)
	}
	if len(ids) != want {
		return nil, fmt.Errorf("%w: disk %s lists %d chunks, its size needs %d", ErrCorrupt, d.Name, len(ids), want)
	}
	return ids, nil
}

// readBlob fetches one blob through the index.
func (v *Vault) readBlob(ctx context.Context, idx *Index, id ID) ([]byte, error) {
	loc, ok := idx.lookup(id)
	if !ok {
		return nil, &ObjectError{Object: "blob " + id.String(), Detail: "not in any index", Err: ErrMissing}
	}
	name := packName(loc.Pack)
	sealed, err := getRange(ctx, v.be, name, int64(loc.Offset), int64(loc.Length))
	if err != nil {
		return nil, err
	}
	return v.openBlob(name, loc.blobEntry, sealed)
}
