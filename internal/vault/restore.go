package vault

import (
	"context"
	"errors"
	"os"
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
	size := r.st.Size
	scan := min(r.t.size, size)
	err := r.v.scanFile(ctx, r.t.f, scan, func(w *worker, i, n int64, chunk []byte) error {
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
