package vault

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync/atomic"

	"github.com/zeebo/blake3"
	"golang.org/x/sync/errgroup"
)

// restorePlan is what a restore must write, found before anything is.
type restorePlan struct {
	need   []bool            // per chunk: the target must get it
	where  map[ID][]int64    // non-zero chunks to write: their chunk numbers
	order  []ID              // where's keys in order of first use on the disk
	byPack map[ID][]location // where's blobs, by pack
	chunks int64             // chunks to write (zero chunks included)
	bytes  int64             // bytes to write
	sealed int64             // bytes of the blobs in their packs
}

// plan looks up every needed chunk in the index and checks that the blob
// found has the chunk's length, so a bad index fails the restore before the
// target changes rather than half-way through writing it.
func (r *restorer) plan(need []bool) (*restorePlan, error) {
	pl := &restorePlan{need: need, where: map[ID][]int64{}, byPack: map[ID][]location{}}
	for i, id := range r.ids {
		if !need[i] {
			continue
		}
		n := min(r.cs, r.st.Size-int64(i)*r.cs)
		pl.chunks++
		pl.bytes += n
		if id.IsZero() {
			continue
		}
		if pl.where[id] == nil {
			loc, ok := r.idx.lookup(id)
			if !ok {
				return nil, &ObjectError{Object: r.object, Detail: "chunk " + id.String() + " is in no index", Err: ErrMissing}
			}
			if int64(loc.RawLength) != n {
				return nil, corrupt(packName(loc.Pack), "blob %s has %d bytes, chunk %d of the disk has %d", id, loc.RawLength, i, n)
			}
			pl.byPack[loc.Pack] = append(pl.byPack[loc.Pack], loc)
			pl.order = append(pl.order, id)
			pl.sealed += int64(loc.Length)
		}
		pl.where[id] = append(pl.where[id], int64(i))
	}
	return pl, nil
}

// sink is where fetched plaintext goes: at[id] lists the byte offsets in
// dst that get blob id.
type sink struct {
	dst      io.WriterAt
	name     string // for errors
	at       map[ID][]int64
	progress func(int64)
}

// fetch reads every blob of pl from its pack, four packs at a time,
// verifies it and writes it to s.
func (r *restorer) fetch(ctx context.Context, pl *restorePlan, s sink) error {
	var fetched atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for pack, locs := range pl.byPack {
		g.Go(func() error { return r.fetchPack(ctx, pack, locs, s, &fetched) })
	}
	err := g.Wait()
	r.st.BytesFetched = fetched.Load()
	return err
}

// fetchPack reads the needed blobs of one pack in as few ranged reads as
// possible.
func (r *restorer) fetchPack(ctx context.Context, pack ID, locs []location, s sink, fetched *atomic.Int64) error {
	sort.Slice(locs, func(i, j int) bool { return locs[i].Offset < locs[j].Offset })
	name := packName(pack)
	// Room for a full write plus one chunk: DecodeAll then never has to
	// grow (and copy) the buffer.
	w := &coalescer{v: r.v, s: s, h: r.v.key.hasher(), buf: make([]byte, 0, coalesceMax+int(r.cs))}
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
		fetched.Add(int64(len(data)))
		for _, l := range locs[:n] {
			sealed := data[l.Offset-first.Offset : l.Offset-first.Offset+l.Length]
			if err := w.blob(name, l.blobEntry, sealed, s.at[l.ID]); err != nil {
				return err
			}
		}
		locs = locs[n:]
	}
	return w.flush()
}

// coalescer turns blobs bound for consecutive offsets (a snapshot packs
// chunks in disk order, so a pack often holds a run) into one write each.
type coalescer struct {
	v   *Vault
	s   sink
	h   *blake3.Hasher
	buf []byte
	off int64 // where buf goes
}

// blob decrypts and verifies one blob straight into the write buffer at
// offset at[0], and copies it to the other offsets.
func (w *coalescer) blob(pack string, e blobEntry, sealed []byte, at []int64) error {
	if err := w.place(at[0]); err != nil {
		return err
	}
	start := len(w.buf)
	buf, err := w.v.appendBlob(w.buf, pack, e, sealed, w.h)
	if err != nil {
		return err
	}
	w.buf = buf
	if len(at) == 1 {
		return nil
	}
	plain := append([]byte(nil), w.buf[start:]...)
	for _, off := range at[1:] {
		if err := w.place(off); err != nil {
			return err
		}
		w.buf = append(w.buf, plain...)
	}
	return nil
}

// place makes off the next offset in the buffer, writing the buffer out
// first unless off continues it.
func (w *coalescer) place(off int64) error {
	if len(w.buf) > 0 && (off != w.off+int64(len(w.buf)) || len(w.buf) >= coalesceMax) {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if len(w.buf) == 0 {
		w.off = off
	}
	return nil
}

func (w *coalescer) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	if _, err := w.s.dst.WriteAt(w.buf, w.off); err != nil {
		return fmt.Errorf("write %s: %w", w.s.name, err)
	}
	if w.s.progress != nil {
		w.s.progress(int64(len(w.buf)))
	}
	w.buf = w.buf[:0]
	return nil
}

// coalesceMax is the most a coalescer writes at once.
const coalesceMax = 4 << 20
