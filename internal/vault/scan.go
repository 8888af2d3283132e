package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"

	"github.com/zeebo/blake3"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

var zeroChunk = make([]byte, 16<<20) // compared against, never written

func isZero(b []byte) bool { return bytes.Equal(b, zeroChunk[:len(b)]) }

// chunkFunc is called for chunk number i of length n; chunk is nil when the
// chunk is all zeros. w is the calling worker's own state.
type chunkFunc func(w *worker, i, n int64, chunk []byte) error

// worker is the per-goroutine state of a scan: a keyed hasher, and whether
// the last chunk it sealed was incompressible (see compressBlob).
type worker struct {
	h              *blake3.Hasher
	incompressible bool
	scratch        []byte // compression output, reused
}

func (w *worker) id(b []byte) ID { return sumID(w.h, b) }

type readJob struct {
	off  int64
	n    int64
	data []byte // nil: the range is a hole
}

// scanFile reads all of f: see scanRuns.
func (v *Vault) scanFile(ctx context.Context, f *os.File, size int64, fn chunkFunc, progress func(int64)) error {
	block := v.blockSize()
	var runs []readJob
	for off := int64(0); off < size; off += block {
		runs = append(runs, readJob{off: off, n: min(block, size-off)})
	}
	return v.scanRuns(ctx, f, size, runs, fn, progress)
}

// blockSize is how much is read at once: whole chunks, about 1 MiB.
func (v *Vault) blockSize() int64 {
	cs := int64(v.cfg.ChunkSize)
	return max(cs, (1<<20)/cs*cs)
}

// scanRuns reads the given ascending, chunk-aligned ranges of f (each at
// most blockSize) on one goroutine and hands their chunks to one worker per
// CPU. Holes of sparse files are found with SEEK_DATA and never read (r
// other than an *os.File is read in full).
// Snapshot (hash and store) and restore (compare with the point) both walk
// disks this way.
func (v *Vault) scanRuns(ctx context.Context, r io.ReaderAt, size int64, runs []readJob, fn chunkFunc, progress func(int64)) error {
	cs, block := int64(v.cfg.ChunkSize), v.blockSize()
	pool := sync.Pool{New: func() any { return make([]byte, block) }}
	jobs := make(chan readJob, 4)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(jobs)
		holes := &holeMap{fd: -1, size: size, broken: true}
		if f, ok := r.(*os.File); ok {
			holes = &holeMap{fd: int(f.Fd()), size: size}
		}
		for _, j := range runs {
			if !holes.hole(j.off, j.n) {
				buf := pool.Get().([]byte)[:j.n]
				if _, err := r.ReadAt(buf, j.off); err != nil {
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
			w := &worker{h: v.key.hasher()}
			for j := range jobs {
				err := scanBlock(w, j, cs, fn)
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

func scanBlock(w *worker, j readJob, cs int64, fn chunkFunc) error {
	for off := j.off; off < j.off+j.n; off += cs {
		n := min(cs, j.off+j.n-off)
		var chunk []byte
		if j.data != nil {
			chunk = j.data[off-j.off : off-j.off+n]
			if isZero(chunk) {
				chunk = nil
			}
		}
		if err := fn(w, off/cs, n, chunk); err != nil {
			return err
		}
	}
	return nil
}

func sumID(h *blake3.Hasher, b []byte) ID {
	h.Reset()
	h.Write(b)
	var id ID
	h.Sum(id[:0])
	return id
}

// holeMap answers "is this range a hole?" for a file read front to back, using
// SEEK_DATA/SEEK_HOLE so the unallocated parts of a sparse image are never
// read. Where the file system cannot tell, everything counts as data.
type holeMap struct {
	fd       int
	size     int64
	nextData int64 // no data in [queried, nextData)
	dataEnd  int64 // data known in [nextData, dataEnd)
	broken   bool
}

func (h *holeMap) hole(off, n int64) bool {
	if h.broken || off < h.dataEnd {
		return false
	}
	if off+n <= h.nextData {
		return true
	}
	d, err := unix.Seek(h.fd, off, unix.SEEK_DATA)
	if errors.Is(err, unix.ENXIO) {
		h.nextData, h.dataEnd = h.size, 0
		return true
	}
	if err != nil {
		h.broken = true
		return false
	}
	h.nextData = d
	if d >= off+n {
		return true
	}
	e, err := unix.Seek(h.fd, d, unix.SEEK_HOLE)
	if err != nil {
		h.broken = true
		return false
	}
	h.dataEnd = e
	return false
}
