package vault

import (
	"context"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// RestoreOptions select a disk of a point and where to write it.
type RestoreOptions struct {
	Machine  string
	Point    string // ID, unique ID prefix, or "latest"/"" for the newest
	Disk     string
	Target   string            // file or block device; a new file is created sparse
	Progress func(bytes int64) // called as the target is compared and written
}

// RestoreStats report what a restore did.
type RestoreStats struct {
	Point           string        `json:"point"`
	Size            int64         `json:"size"`
	Existing        bool          `json:"existing"`         // target existed: only differing chunks written
	BytesWritten    int64         `json:"bytes_written"`    // data written or holes punched in the target
	ChunksWritten   int64         `json:"chunks_written"`   // chunks that differed
	ChunksUnchanged int64         `json:"chunks_unchanged"` // chunks the target already had
	BytesFetched    int64         `json:"bytes_fetched"`    // bytes read from storage
	Duration        time.Duration `json:"duration_ns"`
}

// Restore writes one disk of a recovery point to opt.Target. A new target is
// written to a temporary file renamed into place only when complete and
// verified, so a failed restore leaves nothing. An existing target is
// compared chunk by chunk and only differing chunks are fetched and written,
// which is what makes failback cheap.
func (v *Vault) Restore(ctx context.Context, opt RestoreOptions) (*RestoreStats, error) {
	start := time.Now()
	p, err := v.FindPoint(ctx, opt.Machine, opt.Point)
	if err != nil {
		return nil, err
	}
	d, err := p.Disk(opt.Disk)
	if err != nil {
		return nil, err
	}
	idx, err := v.loadIndex(ctx)
	if err != nil {
		return nil, err
	}
	ids, err := v.chunkIDs(ctx, idx, d, p.ChunkSize)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if !id.IsZero() && !idx.has(id) {
			return nil, &ObjectError{Object: pointName(p.Machine, p.ID), Detail: "chunk " + id.String() + " is in no index", Err: ErrMissing}
		}
	}
	t, err := openTarget(opt.Target, d.Size)
	if err != nil {
		return nil, err
	}
	st := &RestoreStats{Point: p.ID, Size: d.Size, Existing: t.existing}
	r := &restorer{v: v, idx: idx, t: t, ids: ids, cs: int64(p.ChunkSize), st: st, progress: opt.Progress}
	if err := r.run(ctx); err != nil {
		t.abort()
		return nil, err
	}
	if err := t.commit(); err != nil {
		return nil, err
	}
	st.Duration = time.Since(start)
	return st, nil
}

type restorer struct {
	v        *Vault
	idx      *Index
	t        *target
	ids      []ID
	cs       int64
	st       *RestoreStats
	progress func(int64)
	written  atomic.Int64
	chunks   atomic.Int64
	fetched  atomic.Int64
}

func (r *restorer) run(ctx context.Context) error {
	need, err := r.differing(ctx)
	if err != nil {
		return err
	}
	byPack := map[ID][]location{}
	where := map[ID][]int64{}
	for i, id := range r.ids {
		if !need[i] {
			continue
		}
		if id.IsZero() {
			if err := r.zero(int64(i)); err != nil {
				return err
			}
			continue
		}
		if where[id] == nil {
			loc, _ := r.idx.lookup(id)
			byPack[loc.Pack] = append(byPack[loc.Pack], loc)
		}
		where[id] = append(where[id], int64(i))
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for pack, locs := range byPack {
		g.Go(func() error { return r.fetchPack(ctx, pack, locs, where) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	r.st.BytesWritten, r.st.ChunksWritten, r.st.BytesFetched = r.written.Load(), r.chunks.Load(), r.fetched.Load()
	r.st.ChunksUnchanged = int64(len(r.ids)) - r.st.ChunksWritten
	return nil
}

// differing reports which chunks the target must get. A new target is sparse
// and zero, so it needs every non-zero chunk; an existing one is read and
// hashed to find the chunks that differ from the point.
func (r *restorer) differing(ctx context.Context) ([]bool, error) {
	need := make([]bool, len(r.ids))
	if !r.t.existing {
		for i, id := range r.ids {
			need[i] = !id.IsZero()
		}
		return need, nil
	}
	err := r.v.scanFile(ctx, r.t.f, r.st.Size, func(w *worker, i, n int64, chunk []byte) error {
		if chunk == nil {
			need[i] = !r.ids[i].IsZero()
		} else {
			need[i] = w.id(chunk) != r.ids[i]
		}
		return nil
	}, r.progress)
	return need, err
}

// fetchPack reads the needed blobs of one pack in as few ranged reads as
// possible, verifies each, and writes it wherever the disk has it.
func (r *restorer) fetchPack(ctx context.Context, pack ID, locs []location, where map[ID][]int64) error {
	sort.Slice(locs, func(i, j int) bool { return locs[i].Offset < locs[j].Offset })
	name := packName(pack)
	for len(locs) > 0 {
		n := 1 // merge blobs whose gap is small into one read
		for n < len(locs) && int64(locs[n].Offset)-int64(locs[n-1].Offset+locs[n-1].Length) < 256<<10 &&
			locs[n].Offset+locs[n].Length-locs[0].Offset < 16<<20 {
			n++
		}
		first, last := locs[0], locs[n-1]
		data, err := getRange(ctx, r.v.be, name, int64(first.Offset), int64(last.Offset+last.Length-first.Offset))
		if err != nil {
			return err
		}
		r.fetched.Add(int64(len(data)))
		// Room for a full write plus one chunk: DecodeAll then never has to
		// grow (and copy) the buffer.
		w := coalescer{r: r, buf: make([]byte, 0, coalesceMax+int(r.cs))}
		for _, l := range locs[:n] {
			sealed := data[l.Offset-first.Offset : l.Offset-first.Offset+l.Length]
			if err := w.blob(name, l.blobEntry, sealed, where[l.ID]); err != nil {
				return err
			}
		}
		if err := w.flush(); err != nil {
			return err
		}
		locs = locs[n:]
	}
	return nil
}

// coalescer turns runs of consecutive chunks (a snapshot packs chunks in
// disk order, so a pack often holds a run) into one write each.
type coalescer struct {
	r      *restorer
	buf    []byte
	first  int64 // chunk number of buf's start
	chunks int64
}

// blob decrypts one blob straight into the write buffer at the place of
// chunk at[0], and copies it to the other places the disk has it.
func (w *coalescer) blob(pack string, e blobEntry, sealed []byte, at []int64) error {
	if err := w.place(at[0]); err != nil {
		return err
	}
	start := len(w.buf)
	buf, err := w.r.v.appendBlob(w.buf, pack, e, sealed)
	if err != nil {
		return err
	}
	w.buf = buf
	w.chunks++
	if len(at) == 1 {
		return nil
	}
	plain := append([]byte(nil), w.buf[start:]...)
	for _, i := range at[1:] {
		if err := w.place(i); err != nil {
			return err
		}
		w.buf = append(w.buf, plain...)
		w.chunks++
	}
	return nil
}

// place makes chunk i the next in the buffer, writing the buffer out first
// unless i continues it.
func (w *coalescer) place(i int64) error {
	if w.chunks > 0 && (i != w.first+w.chunks || len(w.buf) >= coalesceMax) {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if w.chunks == 0 {
		w.first = i
	}
	return nil
}

func (w *coalescer) flush() error {
	if w.chunks == 0 {
		return nil
	}
	off := w.first * w.r.cs
	if _, err := w.r.t.f.WriteAt(w.buf, off); err != nil {
		return fmt.Errorf("write %s: %w", w.r.t.path, err)
	}
	w.r.written.Add(int64(len(w.buf)))
	w.r.chunks.Add(w.chunks)
	if w.r.progress != nil && !w.r.t.existing {
		w.r.progress(int64(len(w.buf)))
	}
	w.buf, w.chunks = w.buf[:0], 0
	return nil
}

func (r *restorer) zero(i int64) error {
	n := min(r.cs, r.st.Size-i*r.cs)
	if err := r.t.zero(i*r.cs, n); err != nil {
		return err
	}
	r.account(n)
	return nil
}

func (r *restorer) account(n int64) {
	r.written.Add(n)
	r.chunks.Add(1)
	if r.progress != nil && !r.t.existing {
		r.progress(n)
	}
}

// coalesceMax is the most a coalescer writes at once.
const coalesceMax = 4 << 20
