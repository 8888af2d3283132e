package agent

import (
	"context"
	"fmt"

	"github.com/haven-dr/haven/internal/nbd"
	"github.com/haven-dr/haven/internal/vault"
)

// Per-chunk facts from the export's block status.
const (
	chunkDirty = 1 << iota // overlaps a write since the previous point
	chunkZero              // wholly reads as zeros at this point
)

// known maps disk d's export (base:allocation, and the old bitmap when
// trusted) and returns the hint for the vault: chunks reading as zeros
// are zero chunks, clean chunks keep the previous point's IDs, the rest is
// read. With no trusted bitmap only zeros are skipped.
func (vm *qemuVM) known(ctx context.Context, d *qemuDisk, cache *diskCache, chunkSize int) (vault.KnownFunc, error) {
	m, err := d.client.Map(ctx)
	if err != nil {
		return nil, fmt.Errorf("disk %s: block status: %w", d.name, err)
	}
	cs := int64(chunkSize)
	state := make([]uint8, (d.size+cs-1)/cs)
	// Map tiles the whole disk, so a chunk that overlaps no data extent
	// reads as zeros even where several zero extents meet inside it.
	mark := func(es []nbd.Extent, want func(uint32) bool, bit uint8) {
		for _, e := range es {
			if want(e.Flags) {
				for i := e.Offset / cs; i*cs < e.Offset+e.Length && i < int64(len(state)); i++ {
					state[i] |= bit
				}
			}
		}
	}
	const data = chunkZero // marked as data first, flipped below
	mark(m[nbd.BaseAllocation], func(f uint32) bool { return f&nbd.StateZero == 0 }, data)
	for i := range state {
		state[i] ^= data
	}
	trusted := d.oldBitmap != "" && cache != nil && cache.ChunkSize == chunkSize
	if trusted {
		mark(m[nbd.DirtyPrefix+d.oldBitmap], func(f uint32) bool { return f&nbd.StateDirty != 0 }, chunkDirty)
	}
	return func(i int64) (vault.ID, bool) {
		if i < 0 || i >= int64(len(state)) {
			return vault.ID{}, false
		}
		if state[i]&chunkZero != 0 {
			return vault.ID{}, true
		}
		if trusted && state[i]&chunkDirty == 0 && i < int64(len(cache.IDs)) && (i+1)*cs <= cache.Size {
			return cache.IDs[i], true
		}
		return vault.ID{}, false
	}, nil
}
