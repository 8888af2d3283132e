package agent

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/haven-dr/haven/internal/agent/consistency"
	"github.com/haven-dr/haven/internal/vault"
)

// tracker is the change-tracking state of one disk: the chunk IDs of the
// machine's newest point (cached in the state dir) and, for the reflink
// provider, the clone that point was read from. Chunks whose blocks in the
// new clone are the very blocks of the previous clone are unchanged, so
// their IDs are reused without reading them.
type tracker struct {
	cachePath string
	prevClone string // reflink only
	cache     *diskCache
	prevMap   consistency.Map // extent map of prevClone, kept from the last cycle
	newMap    consistency.Map // extent map of the clone being read
}

// diskCache is the on-disk cache format (gob).
type diskCache struct {
	Point     string // point ID the IDs belong to
	Size      int64
	ChunkSize int
	IDs       []vault.ID
	// Bitmap is the QEMU dirty bitmap (provider qemu) that started
	// recording at this point: written with the IDs, so it is trusted
	// after an agent restart only together with the IDs it extends.
	Bitmap string
}

func newTracker(stateDir, cloneDir, machine, disk string) *tracker {
	return &tracker{
		cachePath: filepath.Join(stateDir, machine, disk+".cache"),
		prevClone: filepath.Join(cloneDir, machine+"."+disk+".prev"),
	}
}

func (t *tracker) newClone() string { return t.prevClone[:len(t.prevClone)-len(".prev")] + ".new" }

// load reads the cache; a missing or unreadable cache is simply absent.
func (t *tracker) load() {
	t.cache = nil
	b, err := os.ReadFile(t.cachePath)
	if err != nil {
		return
	}
	var c diskCache
	if gob.NewDecoder(bytes.NewReader(b)).Decode(&c) == nil {
		t.cache = &c
	}
}

// verify keeps the cache only if it describes exactly the given point's
// disk (its page IDs are recomputed and compared with the manifest). A
// stale cache and its clone are dropped: the next cycle reads everything.
func (t *tracker) verify(v *vault.Vault, p *vault.Point, disk string) bool {
	if t.cache == nil {
		t.load()
	}
	ok := t.cache != nil && p != nil && t.cache.Point == p.ID && t.cache.ChunkSize == p.ChunkSize
	if ok {
		d, err := p.Disk(disk)
		ok = err == nil && d.Size == t.cache.Size && v.PagesMatch(d, p.ChunkSize, t.cache.IDs)
	}
	if !ok {
		t.cache, t.prevMap = nil, nil
		os.Remove(t.prevClone)
	}
	return ok
}

// save records the IDs of a newly committed point.
func (t *tracker) save(c *diskCache) error {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(c); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(t.cachePath), 0o700); err != nil {
		return err
	}
	tmp := t.cachePath + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, t.cachePath); err != nil {
		return err
	}
	t.cache = c
	return nil
}

// known returns a hint for a new clone: chunk i is known when it lies
// within both sizes and its blocks are the previous clone's blocks.
func (t *tracker) known(newClone string, size int64) (vault.KnownFunc, error) {
	t.newMap = nil // never let a map of an older, failed clone become the baseline
	if t.cache == nil {
		return nil, nil
	}
	if _, err := os.Stat(t.prevClone); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	prev := t.prevMap
	if prev == nil {
		var err error
		if prev, err = consistency.ReadMap(t.prevClone); err != nil {
			return nil, fmt.Errorf("extent map of previous clone: %w", err)
		}
	}
	cur, err := consistency.ReadMap(newClone)
	if err != nil {
		return nil, fmt.Errorf("extent map of clone: %w", err)
	}
	t.newMap = cur
	c, cs := t.cache, int64(t.cache.ChunkSize)
	whole := min(c.Size, size) / cs // chunks entirely inside both versions
	return func(i int64) (vault.ID, bool) {
		if i >= whole || i >= int64(len(c.IDs)) {
			return vault.ID{}, false
		}
		if !consistency.Same(prev, cur, uint64(i*cs), uint64(cs)) {
			return vault.ID{}, false
		}
		return c.IDs[i], true
	}, nil
}

// commit makes the clone just read the baseline for the next cycle and c
// its cache. The cache is written first: a newer cache with an older
// baseline clone is still right (blocks the same as in the older clone were
// not written since, so the newer IDs describe them), while a newer clone
// with an older cache would be wrong, so on any failure both are dropped.
func (t *tracker) commit(clone string, c *diskCache) error {
	err := t.save(c)
	if err == nil {
		err = os.Rename(clone, t.prevClone)
	}
	t.prevMap, t.newMap = t.newMap, nil // a rename keeps the blocks, so the map stays valid
	if err != nil {
		t.prevMap = nil
		t.cache = nil
		os.Remove(t.cachePath)
		os.Remove(t.prevClone)
		os.Remove(clone)
	}
	return err
}

func (c *diskCache) bitmap() string {
	if c == nil {
		return ""
	}
	return c.Bitmap
}
