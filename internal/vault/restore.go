package vault

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// RestoreOptions select a disk of a point and where to write it.
type RestoreOptions struct {
	Machine string
	Point   string // ID, unique ID prefix, "latest"/"" or another selector of FindPoint
	Disk    string
	Target  string // file or block device; a new file is created sparse
	// DryRun compares and plans but writes nothing: the stats say what a
	// real run would write.
	DryRun bool
	// StagingDir holds the verified chunks of an in-place restore until all
	// are fetched. Default: the target's directory, or os.TempDir() for a
	// block device. It needs room for the chunks that differ.
	StagingDir string
	Progress   func(bytes int64) // called as the target is compared and written
	// Base is a point of the same machine whose disk an existing target
	// holds byte for byte (a standby refreshed to it and not written
	// since, or a reflink clone of one). The chunks to write are then the
	// ones whose IDs differ between the two manifests, and the target is
	// not read at all. A wrong Base gives a wrong disk, so only a caller
	// that knows (host's disk records) sets it. It is ignored for a new
	// target, and when the target's size is not the base disk's size.
	Base string
}

// RestoreStats report what a restore did (or, with DryRun, would do).
type RestoreStats struct {
	Point           string        `json:"point"`
	Size            int64         `json:"size"`             // the disk's size: the target's size afterwards
	TargetSize      int64         `json:"target_size"`      // the target's size before (0 for a new file)
	Existing        bool          `json:"existing"`         // target existed: restored in place, only differing chunks written
	DryRun          bool          `json:"dry_run"`          // nothing was written
	BytesWritten    int64         `json:"bytes_written"`    // data written or holes punched in the target
	ChunksWritten   int64         `json:"chunks_written"`   // chunks that differed
	ChunksUnchanged int64         `json:"chunks_unchanged"` // chunks the target already had
	BytesFetched    int64         `json:"bytes_fetched"`    // bytes read from storage (dry run: sealed size of the blobs needed)
	BytesCompared   int64         `json:"bytes_compared"`   // bytes of an existing target read and hashed to find what differs
	FromBase        bool          `json:"from_base"`        // what differs came from comparing manifests with opt.Base
	Duration        time.Duration `json:"duration_ns"`
}

// Restore writes one disk of a recovery point to opt.Target.
//
// A new target is written to a temporary file renamed into place only when
// complete and verified, so a failed restore leaves nothing.
//
// An existing target (failback onto the old disk) is compared chunk by chunk,
// and only differing chunks are fetched, verified and staged in a temporary
// file before the first byte of the target changes; then they are written,
// the target is synced, and only then shrunk if the disk is smaller.
//
// Every error is a *RestoreError saying whether the target is untouched,
// not created, or partially written; from each, running the same restore
// again completes it.
func (v *Vault) Restore(ctx context.Context, opt RestoreOptions) (*RestoreStats, error) {
	st, err := v.restore(ctx, opt)
	var re *RestoreError
	if err != nil && !errors.As(err, &re) { // failed before opening the target
		state := TargetUntouched
		if _, serr := os.Stat(opt.Target); os.IsNotExist(serr) {
			state = TargetNotCreated
		}
		err = &RestoreError{Target: opt.Target, State: state, Err: err}
	}
	return st, err
}

func (v *Vault) restore(ctx context.Context, opt RestoreOptions) (*RestoreStats, error) {
	start := time.Now()
	p, err := v.FindPoint(ctx, opt.Machine, opt.Point)
	if err != nil {
		return nil, err
	}
	d, err := p.Disk(opt.Disk)
	if err != nil {
		return nil, err
	}
	idx, err := v.loadIndex(ctx, forRead)
	if err != nil {
		return nil, err
	}
	ids, err := v.chunkIDs(ctx, idx, d, p.ChunkSize)
	if err != nil {
		return nil, err
	}
	t, err := openTarget(opt.Target, d.Size, opt.DryRun)
	if err != nil {
		return nil, &RestoreError{Target: opt.Target, State: t.state(), Err: err}
	}
	st := &RestoreStats{Point: p.ID, Size: d.Size, TargetSize: t.size, Existing: t.existing, DryRun: opt.DryRun}
	r := &restorer{v: v, idx: idx, t: t, ids: ids, cs: int64(p.ChunkSize), st: st, opt: opt,
		object: v.pointName(p.Machine, p.ID)}
	if t.existing && opt.Base != "" {
		if r.base, err = v.baseIDs(ctx, idx, p, opt, t.size); err != nil {
			t.abort()
			return nil, r.failed(err)
		}
		st.FromBase = r.base != nil
	}
	if err := r.run(ctx); err != nil {
		t.abort()
		return nil, r.failed(err)
	}
	if err := t.commit(d.Size); err != nil {
		return nil, r.failed(err)
	}
	st.Duration = time.Since(start)
	return st, nil
}

type restorer struct {
	v      *Vault
	idx    *Index
	t      *target
	ids    []ID
	cs     int64
	st     *RestoreStats
	opt    RestoreOptions
	object string // the point's manifest, named in errors
	base   []ID   // the chunk IDs of the disk the target holds (opt.Base), or nil

	applied int64 // chunks written to an existing target so far
}

func (r *restorer) run(ctx context.Context) error {
	need, err := r.differing(ctx)
	if err != nil {
		return err
	}
	pl, err := r.plan(need)
	if err != nil {
		return err
	}
	r.st.ChunksWritten, r.st.BytesWritten = pl.chunks, pl.bytes
	r.st.ChunksUnchanged = int64(len(r.ids)) - pl.chunks
	switch {
	case r.opt.DryRun:
		r.st.BytesFetched = pl.sealed
		return nil
	case r.t.existing:
		return r.inPlace(ctx, pl)
	}
	dst := map[ID][]int64{}
	for id, at := range pl.where {
		for _, i := range at {
			dst[id] = append(dst[id], i*r.cs)
		}
	}
	return r.fetch(ctx, pl, sink{dst: r.t.f, name: r.t.path, at: dst, progress: r.opt.Progress})
}

// differing reports which chunks the target must get. A new target is sparse
// and zero, so it needs every non-zero chunk; an existing one is read and
// hashed to find the chunks that differ from the point. Beyond the end of a
// shorter file, the chunks the point has as zeros need nothing: growing
// the file makes them read as zeros.
func (r *restorer) differing(ctx context.Context) ([]bool, error) {
	need := make([]bool, len(r.ids))
	for i, id := range r.ids {
		need[i] = !id.IsZero()
	}
	if !r.t.existing {
		return need, nil
	}
	if r.base != nil {
		// Beyond the base disk the grown file reads as zeros; a partial
		// last chunk has an ID of its own length, so it differs from a
		// full one unless both are zeros, which read the same.
		for i := range min(len(r.base), len(r.ids)) {
			need[i] = r.base[i] != r.ids[i]
		}
		return need, nil
	}
	size := r.st.Size
	scan := min(r.t.size, size)
	var compared atomic.Int64
	defer func() { r.st.BytesCompared = compared.Load() }()
	err := r.v.scanFile(ctx, r.t.f, scan, func(w *worker, i, n int64, chunk []byte) error {
		if chunk != nil {
			compared.Add(int64(len(chunk)))
		}
		if full := min(r.cs, size-i*r.cs); n < full && chunk != nil {
			// The file ends inside this chunk: growing it pads it with zeros.
			padded := make([]byte, full)
			copy(padded, chunk)
			need[i] = w.id(padded) != r.ids[i]
		} else if chunk == nil {
			need[i] = !r.ids[i].IsZero()
		} else {
			need[i] = w.id(chunk) != r.ids[i]
		}
		return nil
	}, r.opt.Progress)
	return need, err
}

// failed says what state a failed restore left the target in.
func (r *restorer) failed(err error) error {
	return &RestoreError{Target: r.t.path, State: r.t.state(), Written: r.applied, Differing: r.st.ChunksWritten, Err: err}
}

// baseIDs returns the chunk IDs of opt.Base's disk, which the target holds,
// or nil when they cannot stand for it (another size or chunk size): the
// restore then compares the target itself.
func (v *Vault) baseIDs(ctx context.Context, idx *Index, p *Point, opt RestoreOptions, targetSize int64) ([]ID, error) {
	bp, err := v.FindPoint(ctx, opt.Machine, opt.Base)
	if err != nil {
		return nil, fmt.Errorf("base point: %w", err)
	}
	bd, err := bp.Disk(opt.Disk)
	if err != nil {
		return nil, fmt.Errorf("base point: %w", err)
	}
	if bd.Size != targetSize || bp.ChunkSize != p.ChunkSize {
		return nil, nil
	}
	return v.chunkIDs(ctx, idx, bd, bp.ChunkSize)
}
