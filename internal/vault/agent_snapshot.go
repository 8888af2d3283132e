package vault

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/haven-dr/haven/internal/blob"
)

// KnownFunc reports the ID of chunk i of a disk when the caller knows the
// chunk is unchanged since a point already in the vault (for example from
// reflink extent maps). A known ID that the vault's index does not hold is
// ignored and the chunk is read, so a stale hint costs time, never data.
type KnownFunc func(i int64) (ID, bool)

// AgentSnapshot is what SnapshotKnown returns.
type AgentSnapshot struct {
	Point *Point
	Stats *SnapshotStats
	IDs   map[string][]ID // per disk, the chunk IDs in disk order
	Known int64           // chunks taken from hints without reading
}

// SnapshotKnown is the one snapshot path (Snapshot is SnapshotKnown without
// hints). The replication agent passes per-disk hints naming chunks it knows
// to be unchanged, so a cycle reads and hashes only what changed; known may
// be nil or miss disks. Uploaded packs are indexed every indexEvery, so a
// snapshot that fails half-way (vault outage) does not upload them again.
func (v *Vault) SnapshotKnown(ctx context.Context, opt SnapshotOptions, known map[string]KnownFunc) (*AgentSnapshot, error) {
	return v.SnapshotPending(ctx, opt, known, nil)
}

// SnapshotPending is SnapshotKnown that carries unindexed uploads across
// failed calls: see Pending.
func (v *Vault) SnapshotPending(ctx context.Context, opt SnapshotOptions, known map[string]KnownFunc, pending *Pending) (_ *AgentSnapshot, err error) {
	if err := opt.validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	if opt.Time.IsZero() {
		opt.Time = start
	}
	lock, err := v.acquire(ctx, lockShared, opt.LockWait)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	ctx, cancel := lock.bind(ctx)
	defer cancel()
	defer func() {
		// Work stopped because the lease was lost reports that, not
		// the cancellation it caused.
		if lost := lock.check(); err != nil && lost != nil && !errors.Is(err, ErrLeaseLost) {
			err = fmt.Errorf("%w (%v)", lost, err)
		}
	}()
	idx, err := v.loadIndex(ctx, forWrite)
	if err != nil {
		return nil, err
	}
	if err := v.indexPending(ctx, lock, idx, pending); err != nil { // under the lock: prune must see them
		return nil, err
	}
	host, _ := os.Hostname()
	p := &Point{ID: newPointID(opt.Time), Machine: opt.Machine, Time: opt.Time.UTC(), Consistency: opt.Consistency,
		Provider: opt.Provider, Group: opt.Group, Host: host, Tags: opt.Tags, ChunkSize: v.cfg.ChunkSize}
	res := &AgentSnapshot{Point: p, Stats: &SnapshotStats{}, IDs: map[string][]ID{}}
	s := newSaver(ctx, v, idx, lock)
	inc := startIncrementalIndex(ctx, s)
	for _, src := range opt.Disks {
		d, ids, err := s.saveDiskKnown(src, known[src.Name], opt.Previous[src.Name], res, opt.Progress)
		if err != nil {
			inc.stop()
			s.abort(err)
			inc.flush(context.WithoutCancel(ctx))
			inc.keepPending(pending)
			return nil, err
		}
		p.Disks = append(p.Disks, *d)
		res.IDs[src.Name] = ids
	}
	err = s.finish()
	inc.stop()
	if err != nil {
		inc.flush(context.WithoutCancel(ctx))
		inc.keepPending(pending)
		return nil, fmt.Errorf("upload: %w", err)
	}
	inc.dropIndexed()
	if err := lock.guarded(ctx, func(ctx context.Context) error { return v.commit(ctx, s, p, res.Stats) }); err != nil {
		inc.keepPending(pending) // if only the manifest failed, re-indexing is a harmless duplicate
		return nil, err
	}
	res.Stats.Duration = time.Since(start)
	return res, nil
}

func (s *saver) saveDiskKnown(src DiskSource, known KnownFunc, prev []ID, res *AgentSnapshot, progress func(int64)) (*Disk, []ID, error) {
	r, size := src.Reader, src.Size
	if r == nil {
		f, err := os.Open(src.Path)
		if err != nil {
			return nil, nil, fmt.Errorf("disk %s: %w", src.Name, err)
		}
		defer f.Close()
		if size, err = f.Seek(0, 2); err != nil {
			return nil, nil, fmt.Errorf("disk %s: size: %w", src.Name, err)
		}
		r = f
	}
	churn := &churnCounter{prev: prev}
	ids, zero, nKnown, err := s.chunkFileKnown(r, size, known, churn, progress)
	if err != nil {
		return nil, nil, fmt.Errorf("disk %s: %w", src.Name, err)
	}
	res.Stats.Bytes += size
	res.Stats.ZeroBytes += zero
	res.Known += nKnown
	d := &Disk{Name: src.Name, Size: size, Churn: churn.result()}
	for i := 0; i < len(ids); i += pageEntries {
		page := encodePage(ids[i:min(i+pageEntries, len(ids))])
		pid := s.v.pageID(page)
		if err := s.save(nil, pageBlob, pid, page); err != nil {
			return nil, nil, err
		}
		d.Pages = append(d.Pages, pid)
	}
	return d, ids, nil
}

// DiskChunkIDs loads the chunk IDs of one disk of a point from the vault
// (used to rebuild the agent's change-tracking cache).
func (v *Vault) DiskChunkIDs(ctx context.Context, p *Point, disk string) ([]ID, error) {
	d, err := p.Disk(disk)
	if err != nil {
		return nil, err
	}
	idx, err := v.loadIndex(ctx, forRead)
	if err != nil {
		return nil, err
	}
	return v.chunkIDs(ctx, idx, d, p.ChunkSize)
}

// PagesMatch reports whether ids are exactly the chunk list of disk d:
// the page IDs are recomputed locally, so a cache is verified against the
// point's manifest without downloading anything.
func (v *Vault) PagesMatch(d *Disk, chunkSize int, ids []ID) bool {
	want := int((d.Size + int64(chunkSize) - 1) / int64(chunkSize))
	if len(ids) != want || len(d.Pages) != (want+pageEntries-1)/pageEntries {
		return false
	}
	for n, i := 0, 0; i < len(ids); n, i = n+1, i+pageEntries {
		if v.pageID(encodePage(ids[i:min(i+pageEntries, len(ids))])) != d.Pages[n] {
			return false
		}
	}
	return true
}

// incrementalIndex writes index objects for packs already uploaded while a
// snapshot is still running, so their chunks count as stored even if the
// snapshot then fails.
type incrementalIndex struct {
	s       *saver
	mu      sync.Mutex
	indexed map[ID]bool
	done    chan struct{}
	wg      sync.WaitGroup
}

const indexEvery = 10 * time.Second

func startIncrementalIndex(ctx context.Context, s *saver) *incrementalIndex {
	x := &incrementalIndex{s: s, indexed: map[ID]bool{}, done: make(chan struct{})}
	x.wg.Add(1)
	go func() {
		defer x.wg.Done()
		t := time.NewTicker(indexEvery)
		defer t.Stop()
		for {
			select {
			case <-x.done:
				return
			case <-t.C:
				x.flush(ctx)
			}
		}
	}()
	return x
}

func (x *incrementalIndex) stop() {
	close(x.done)
	x.wg.Wait()
}

// flush indexes the uploaded packs not indexed yet (best effort: failing
// only means they may be uploaded again).
func (x *incrementalIndex) flush(ctx context.Context) {
	x.mu.Lock()
	defer x.mu.Unlock()
	todo := map[ID][]blobEntry{}
	x.s.mu.Lock()
	for id, e := range x.s.packs {
		if !x.indexed[id] {
			todo[id] = e
		}
	}
	x.s.mu.Unlock()
	if len(todo) == 0 {
		return
	}
	err := x.s.lock.guarded(ctx, func(ctx context.Context) error { _, err := x.s.v.saveIndex(ctx, todo); return err })
	if err != nil {
		return
	}
	for id := range todo {
		x.indexed[id] = true
	}
}

// dropIndexed removes already-indexed packs from the saver, so commit
// indexes only the rest.
func (x *incrementalIndex) dropIndexed() {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	for id := range x.indexed {
		delete(x.s.packs, id)
	}
}

// Pending carries packs that a failed SnapshotPending uploaded but could
// not index: the next call indexes them first (if still stored), so a vault
// outage never makes the agent upload the same data twice. The zero value
// is empty and ready to use.
type Pending struct {
	packs map[ID][]blobEntry
}

// Packs is how many packs wait to be indexed.
func (p *Pending) Packs() int {
	if p == nil {
		return 0
	}
	return len(p.packs)
}

// keepPending moves the packs not indexed yet into p.
func (x *incrementalIndex) keepPending(p *Pending) {
	if p == nil {
		return
	}
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	for id, e := range x.s.packs {
		if !x.indexed[id] {
			if p.packs == nil {
				p.packs = map[ID][]blobEntry{}
			}
			p.packs[id] = e
		}
	}
}

// indexPending writes an index for the pending packs that are still
// stored and not marked as garbage (a prune elsewhere may have marked or
// collected them meanwhile; their data is then stored again), and adds
// them to idx.
func (v *Vault) indexPending(ctx context.Context, lock *Lock, idx *Index, p *Pending) error {
	if p.Packs() == 0 {
		return nil
	}
	live := map[ID][]blobEntry{}
	for id, e := range p.packs {
		if idx.marks.packs[id] {
			continue
		}
		if _, err := v.be.Stat(ctx, packName(id)); err == nil {
			live[id] = e
		} else if !errors.Is(err, blob.ErrNotFound) {
			return err
		}
	}
	if len(live) > 0 {
		err := lock.guarded(ctx, func(ctx context.Context) error { _, err := v.saveIndex(ctx, live); return err })
		if err != nil {
			return err
		}
		for id, e := range live {
			idx.addPack(id, e)
		}
	}
	p.packs = nil
	return nil
}
