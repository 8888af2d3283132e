package vault

import (
	"context"
	"io"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// chunkFileKnown is chunkFile that reads only the chunks known does not
// vouch for. Known chunks cost a map lookup; runs of unknown chunks are read
// in blocks of up to 1 MiB and hashed by one worker per CPU. r is a file
// (prefetched, its holes skipped) or any other reader (an NBD export).
// churn counts what the chunks read changed against its prev.
func (s *saver) chunkFileKnown(r io.ReaderAt, size int64, known KnownFunc, churn *churnCounter, progress func(int64)) ([]ID, int64, int64, error) {
	cs := int64(s.v.cfg.ChunkSize)
	ids := make([]ID, (size+cs-1)/cs)
	var nKnown int64
	var jobs []readJob
	maxRun := s.v.blockSize()
	for i := int64(0); i < int64(len(ids)); i++ {
		if known != nil {
			if id, ok := known(i); ok && (id.IsZero() || s.idx.canDedupe(id)) {
				ids[i] = id
				nKnown++
				continue
			}
		}
		off, n := i*cs, min(cs, size-i*cs)
		if k := len(jobs) - 1; k >= 0 && jobs[k].off+jobs[k].n == off && jobs[k].n+n <= maxRun {
			jobs[k].n += n
		} else {
			jobs = append(jobs, readJob{off: off, n: n})
		}
	}
	if progress != nil {
		progress(nKnown * cs)
	}
	var zero atomic.Int64
	if f, ok := r.(*os.File); ok {
		var stop func()
		progress, stop = prefetch(s.ctx, f, jobs, progress)
		defer stop() // before f is closed: the prefetcher uses its descriptor
	}
	err := s.v.scanRuns(s.ctx, r, size, jobs, func(w *worker, i, n int64, chunk []byte) error {
		if chunk == nil {
			zero.Add(n)
			churn.chunk(i, n, ID{}, -1, nil)
			return nil
		}
		ids[i] = w.id(chunk)
		stored, err := s.store(w, dataBlob, ids[i], chunk)
		churn.chunk(i, n, ids[i], stored, chunk)
		return err
	}, progress)
	return ids, zero.Load(), nKnown, err
}

// prefetchAhead bounds how far readahead runs ahead of the scan.
const prefetchAhead = 256 << 20

// prefetch asks the kernel to read the scattered runs ahead of the scan
// (POSIX_FADV_WILLNEED, asynchronous), so the single reader of scanRuns
// does not wait for each small read in turn: after heavy random writes a
// cycle reads tens of thousands of separate chunks. It returns progress
// wrapped to track how far the scan got, and a func that stops prefetching.
func prefetch(ctx context.Context, f *os.File, runs []readJob, progress func(int64)) (func(int64), func()) {
	if len(runs) < 2 {
		return progress, func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	var done atomic.Int64
	wake := make(chan struct{}, 1)
	go func() {
		defer close(stopped)
		var issued int64
		for _, j := range runs {
			for issued-done.Load() > prefetchAhead {
				select {
				case <-ctx.Done():
					return
				case <-wake:
				case <-time.After(50 * time.Millisecond):
				}
			}
			if ctx.Err() != nil {
				return
			}
			unix.Fadvise(int(f.Fd()), j.off, j.n, unix.FADV_WILLNEED)
			issued += j.n
		}
	}()
	return func(n int64) {
		done.Add(n)
		select {
		case wake <- struct{}{}:
		default:
		}
		if progress != nil {
			progress(n)
		}
	}, func() { cancel(); <-stopped }
}
