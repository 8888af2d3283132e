package vault

import (
	"os"
	"sync/atomic"

)

// chunkFileKnown is chunkFile that reads only the chunks known does not
// vouch for. Known chunks cost a map lookup; runs of unknown chunks are read
// in blocks of up to 1 MiB and hashed by one worker per CPU.
func (s *saver) chunkFileKnown(f *os.File, size int64, known KnownFunc, progress func(int64)) ([]ID, int64, int64, error) {
	cs := int64(s.v.cfg.ChunkSize)
	ids := make([]ID, (size+cs-1)/cs)
	var nKnown int64
	var jobs []readJob
	maxRun := s.v.blockSize()
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
	err := s.v.scanRuns(s.ctx, f, size, jobs, func(w *worker, i, n int64, chunk []byte) error {
		if chunk == nil {
			zero.Add(n)
			return nil
		}
		ids[i] = w.id(chunk)
		return s.save(w, dataBlob, ids[i], chunk)
	}, progress)
	return ids, zero.Load(), nKnown, err
}
