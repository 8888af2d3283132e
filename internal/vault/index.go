package vault

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
)

const indexPrefix = "index/"

// location is where a blob lives.
type location struct {
	Pack ID
	blobEntry
}

// Index maps blob IDs to their packs. It is the union of all index/* objects.
type Index struct {
	mu    sync.RWMutex
	blobs map[ID]location
	packs map[ID][]blobEntry // pack -> blobs, as listed by the index objects
	files []string           // index objects loaded
	named map[ID][]string    // pack -> the index objects naming it (prune's view)
	marks *marks             // packs marked as garbage when the index was loaded
}

func newIndex() *Index {
	return &Index{blobs: make(map[ID]location), packs: make(map[ID][]blobEntry)}
}

func (x *Index) lookup(id ID) (location, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	l, ok := x.blobs[id]
	return l, ok
}

func (x *Index) has(id ID) bool {
	_, ok := x.lookup(id)
	return ok
}

// canDedupe reports whether a snapshot may reference the stored blob: only
// if a pack that is not marked as garbage holds it. A blob found only in
// marked packs is stored again, since a prune deletes those packs once no
// writer that loaded the index before the mark is left.
func (x *Index) canDedupe(id ID) bool {
	l, ok := x.lookup(id)
	return ok && (x.marks == nil || !x.marks.packs[l.Pack])
}

// preferUnmarked points every blob that also lives in an unmarked pack at
// that pack, so readers and writers use the copies that stay.
func (x *Index) preferUnmarked(m *marks) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.marks = m
	for pack, entries := range x.packs {
		if m.packs[pack] {
			continue
		}
		for _, e := range entries {
			if l := x.blobs[e.ID]; m.packs[l.Pack] {
				x.blobs[e.ID] = location{Pack: pack, blobEntry: e}
			}
		}
	}
}

// nameIn records that index object name lists pack, so prune knows which
// packs must stay while an old index object cannot be deleted yet.
func (x *Index) nameIn(pack ID, name string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.named == nil {
		x.named = map[ID][]string{}
	}
	x.named[pack] = append(x.named[pack], name)
}

func (x *Index) addPack(pack ID, entries []blobEntry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, dup := x.packs[pack]; dup {
		return
	}
	x.packs[pack] = entries
	for _, e := range entries {
		if _, ok := x.blobs[e.ID]; !ok {
			x.blobs[e.ID] = location{Pack: pack, blobEntry: e}
		}
	}
}

// loadIndex reads the deletion marks, then every index object. A damaged
// index object is an error naming it: silently ignoring it could make
// prune delete live data. An index object that vanishes between listing and
// reading was replaced by a prune's rewrite, which is written before the
// old objects are deleted: listing again gives the complete index.
// indexMode says what loading the index does with objects that fail
// authentication (see passOver).
type indexMode int

const (
	forRead  indexMode = iota // restore, stats: pass over such index objects and marks
	forWrite                  // snapshots: pass over such index objects (a missed one costs a re-upload); a damaged mark still stops them
	forPrune                  // everything must authenticate: prune decides what to delete from it
)

func (v *Vault) loadIndex(ctx context.Context, mode indexMode) (*Index, error) {
	m, err := v.loadMarks(ctx, mode == forRead)
	if err != nil {
		return nil, err
	}
	for try := 0; ; try++ {
		x, err := v.loadIndexOnce(ctx, mode != forPrune)
		if errors.Is(err, ErrMissing) && try < 5 {
			continue
		}
		if err != nil {
			return nil, err
		}
		x.preferUnmarked(m)
		return x, nil
	}
}

func (v *Vault) loadIndexOnce(ctx context.Context, lenient bool) (*Index, error) {
	names, err := listNames(ctx, v.be, indexPrefix)
	if err != nil {
		return nil, err
	}
	x := newIndex()
	x.files = names
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, name := range names {
		g.Go(func() error {
			plain, err := v.getSealed(ctx, name)
			if lenient && unauthentic(err) {
				passOver(err)
				return nil
			} else if err != nil {
				return err
			}
			return decodeIndex(name, plain, x)
		})
	}
	return x, g.Wait()
}

const indexMagic = "HVX1"

func encodeIndex(packs map[ID][]blobEntry) []byte {
	ids := make([]ID, 0, len(packs))
	for id := range packs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return strings.Compare(string(ids[i][:]), string(ids[j][:])) < 0 })
	b := append([]byte(indexMagic), binary.AppendUvarint(nil, uint64(len(ids)))...)
	for _, p := range ids {
		b = append(b, p[:]...)
		b = binary.AppendUvarint(b, uint64(len(packs[p])))
		for _, e := range packs[p] {
			b = append(b, byte(e.Type), e.Flags)
			b = append(b, e.ID[:]...)
			for _, n := range []uint32{e.Offset, e.Length, e.RawLength} {
				b = binary.AppendUvarint(b, uint64(n))
			}
		}
	}
	return b
}

func decodeIndex(name string, b []byte, x *Index) error {
	if len(b) < 4 || string(b[:4]) != indexMagic {
		return corrupt(name, "bad magic")
	}
	r := &byteReader{b: b[4:]}
	n := r.uvarint()
	for i := uint64(0); i < n && r.err == nil; i++ {
		var pack ID
		r.read(pack[:])
		m := r.uvarint()
		if m > uint64(len(r.b)) {
			return corrupt(name, "implausible blob count")
		}
		entries := make([]blobEntry, m)
		for j := range entries {
			e := &entries[j]
			e.Type, e.Flags = blobType(r.byte()), r.byte()
			r.read(e.ID[:])
			e.Offset, e.Length, e.RawLength = uint32(r.uvarint()), uint32(r.uvarint()), uint32(r.uvarint())
		}
		x.addPack(pack, entries)
		x.nameIn(pack, name)
	}
	if r.err != nil {
		return corrupt(name, "%v", r.err)
	}
	return nil
}

// saveIndex writes one index object for the given packs.
func (v *Vault) saveIndex(ctx context.Context, packs map[ID][]blobEntry) (string, error) {
	name := indexPrefix + randomHex(16)
	if err := v.putSealed(ctx, name, encodeIndex(packs)); err != nil {
		return "", fmt.Errorf("write index: %w", err)
	}
	return name, nil
}
