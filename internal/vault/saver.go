package vault

import (
	"context"
	"sync"
	"sync/atomic"
)

// saver dedupes, seals and packs blobs for one snapshot and uploads full
// packs in the background. Nothing it writes is referenced by anything until
// the snapshot writes its index and then its manifest, so a crash at any
// moment leaves only unreferenced packs, which prune collects.
type saver struct {
	v       *Vault
	lock    *Lock // index writes must land while it holds
	idx     *Index
	ctx     context.Context
	cancel  context.CancelCauseFunc
	mu      sync.Mutex
	seen    map[ID]struct{}
	cur     *packBuf
	uploads chan *packBuf
	wg      sync.WaitGroup
	packs   map[ID][]blobEntry // uploaded, to be indexed

	newChunks, newBytes, storedBytes atomic.Int64
	nPacks                           atomic.Int64
}

const uploaders = 3

func newSaver(ctx context.Context, v *Vault, idx *Index, lock *Lock) *saver {
	ctx, cancel := context.WithCancelCause(ctx)
	s := &saver{v: v, idx: idx, lock: lock, ctx: ctx, cancel: cancel, seen: make(map[ID]struct{}),
		uploads: make(chan *packBuf, 1), packs: make(map[ID][]blobEntry)}
	s.cur = v.newPackBuf()
	for range uploaders {
		s.wg.Add(1)
		go s.uploader()
	}
	return s
}

// save stores plain under id unless the vault or this snapshot has it
// already. w is the calling worker (nil for metadata blobs).
func (s *saver) save(w *worker, t blobType, id ID, plain []byte) error {
	_, err := s.store(w, t, id, plain)
	return err
}

// store is save that also says what became of the blob: stored is -1
// when it was not new, else the size zstd left of it (its raw size when
// compression did not pay: compressBlob then keeps the plaintext), which the churn statistics count.
func (s *saver) store(w *worker, t blobType, id ID, plain []byte) (stored int, err error) {
	if s.idx.canDedupe(id) {
		return -1, nil
	}
	s.mu.Lock()
	_, dup := s.seen[id]
	s.seen[id] = struct{}{}
	s.mu.Unlock()
	if dup {
		return -1, nil
	}
	payload, flags := s.v.compressBlob(w, plain)
	stored = len(payload)
	if t == dataBlob {
		s.newChunks.Add(1)
		s.newBytes.Add(int64(len(plain)))
	}
	n := len(payload) + overhead
	var full []*packBuf
	s.mu.Lock()
	if !s.cur.fits(n) && len(s.cur.entries) > 0 {
		full, s.cur = append(full, s.cur), s.v.newPackBuf()
	}
	pb := s.cur
	region := pb.reserve(t, id, flags, n, len(plain))
	if len(pb.data) >= s.v.cfg.PackSize {
		full, s.cur = append(full, pb), s.v.newPackBuf()
	}
	s.mu.Unlock()
	// Seal outside the lock, straight into the pack: no copy, and workers
	// encrypt in parallel; the uploader waits for pb.pending.
	sealTo(s.v.key.Enc, region, payload, blobAAD(t, id))
	pb.pending.Done()
	for _, f := range full {
		select {
		case s.uploads <- f:
		case <-s.ctx.Done():
			return stored, context.Cause(s.ctx)
		}
	}
	return stored, nil
}

func (s *saver) uploader() {
	defer s.wg.Done()
	for pb := range s.uploads {
		if s.ctx.Err() != nil {
			continue
		}
		id, data := s.v.finishPack(pb)
		if err := s.v.be.Put(s.ctx, packName(id), data); err != nil {
			s.cancel(err)
			continue
		}
		s.storedBytes.Add(int64(len(data)))
		s.nPacks.Add(1)
		s.mu.Lock()
		s.packs[id] = pb.entries
		s.mu.Unlock()
	}
}

// finish uploads the last pack and waits for all uploads.
func (s *saver) finish() error {
	s.mu.Lock()
	last := s.cur
	s.cur = newPackBuf(0)
	s.mu.Unlock()
	if len(last.entries) > 0 {
		select {
		case s.uploads <- last:
		case <-s.ctx.Done():
		}
	}
	close(s.uploads)
	s.wg.Wait()
	return context.Cause(s.ctx)
}

// abort stops the uploads after a failure.
func (s *saver) abort(err error) {
	s.cancel(err)
	s.finish()
}
