package vault

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/zeebo/blake3"
	"golang.org/x/sync/errgroup"
)

// chunkFileKnown is chunkFile that reads only the chunks known does not
// vouch for. Known chunks cost a map lookup; runs of unknown chunks are read
// in blocks of up to 1 MiB and hashed by one worker per CPU.
func (s *saver) chunkFileKnown(f *os.File, size int64, known KnownFunc, progress func(int64)) ([]ID, int64, int64, error) {
	cs := int64(s.v.cfg.ChunkSize)
	ids := make([]ID, (size+cs-1)/cs)
	var nKnown int64
	var jobs []readJob
	maxRun := max(cs, (1<<20)/cs*cs)
	for i := int64(0); i < int64(len(ids)); i++ {
		if known != nil {
			if id, ok := known(i); ok && (id.IsZero() || s.idx.has(id)) {
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
	err := s.v.scanRuns(s, f, size, jobs, func(h *blake3.Hasher, i, n int64, chunk []byte) error {
		if chunk == nil {
			zero.Add(n)
			return nil
		}
		ids[i] = sumID(h, chunk)
		return s.save(dataBlob, ids[i], chunk)
	}, progress)
	return ids, zero.Load(), nKnown, err
}

// scanRuns is scanFile over the given ascending ranges only.
func (v *Vault) scanRuns(s *saver, f *os.File, size int64, runs []readJob, fn chunkFunc, progress func(int64)) error {
	cs := int64(v.cfg.ChunkSize)
	pool := sync.Pool{New: func() any { return make([]byte, max(cs, (1<<20)/cs*cs)) }}
	jobs := make(chan readJob, 4)
	g, ctx := errgroup.WithContext(s.ctx)
	g.Go(func() error {
		defer close(jobs)
		holes := &holeMap{fd: int(f.Fd()), size: size}
		for _, j := range runs {
			if !holes.hole(j.off, j.n) {
				buf := pool.Get().([]byte)[:j.n]
				if _, err := f.ReadAt(buf, j.off); err != nil {
					return fmt.Errorf("read at %d: %w", j.off, err)
				}
				j.data = buf
			}
			select {
			case jobs <- j:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	for range runtime.GOMAXPROCS(0) {
		g.Go(func() error {
			h := v.key.hasher()
			for j := range jobs {
				err := scanBlock(h, j, cs, fn)
				if j.data != nil {
					pool.Put(j.data[:cap(j.data)])
				}
				if err != nil {
					return err
				}
				if progress != nil {
					progress(j.n)
				}
			}
			return nil
		})
	}
	return g.Wait()
}
