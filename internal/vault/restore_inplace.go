package vault

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dustin/go-humanize"
	"golang.org/x/sys/unix"
)

// inPlace restores onto an existing target in two phases: every chunk that
// differs is fetched, verified and staged in an unlinked temporary file
// (a disk's delta can be far larger than memory), and only then is the
// target written. A damaged or missing object, an outage or a full staging
// disk thus fail the restore while the target is still untouched.
func (r *restorer) inPlace(ctx context.Context, pl *restorePlan) error {
	s, err := r.stage(ctx, pl)
	if err != nil {
		return err
	}
	defer s.close()
	return r.apply(ctx, pl, s)
}

// staging is an unlinked file holding each needed blob's plaintext once,
// at offset at[id][0].
type staging struct {
	f  *os.File // nil when only zero chunks are needed
	at map[ID][]int64
}

func (s *staging) close() {
	if s.f != nil {
		s.f.Close()
	}
}

// stage fetches the blobs of pl into staging, in order of first use on the
// disk, so that applying them reads the file mostly front to back.
func (r *restorer) stage(ctx context.Context, pl *restorePlan) (*staging, error) {
	at := make(map[ID][]int64, len(pl.order))
	var total int64
	for _, id := range pl.order {
		at[id] = []int64{total}
		total += min(r.cs, r.st.Size-pl.where[id][0]*r.cs)
	}
	if total == 0 {
		return &staging{at: at}, nil
	}
	dir := r.stagingDir()
	if err := checkRoom(dir, total); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, ".haven-stage-*")
	if err != nil {
		return nil, fmt.Errorf("staging: %w", err)
	}
	os.Remove(f.Name()) // unlinked at once: a crash leaves nothing behind
	if err := r.fetch(ctx, pl, sink{dst: f, name: "staging file in " + dir, at: at}); err != nil {
		f.Close()
		return nil, err
	}
	return &staging{f: f, at: at}, nil
}

func (r *restorer) stagingDir() string {
	switch {
	case r.opt.StagingDir != "":
		return r.opt.StagingDir
	case r.t.device:
		return os.TempDir()
	}
	return filepath.Dir(r.t.path)
}

func checkRoom(dir string, need int64) error {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return fmt.Errorf("staging directory: %w", err)
	}
	if free := int64(fs.Bavail) * fs.Bsize; free < need {
		return fmt.Errorf("staging the %s that differ needs room in %s, which has %s free: "+
			"choose a staging directory with room", humanize.IBytes(uint64(need)), dir, humanize.IBytes(uint64(free)))
	}
	return nil
}

// apply writes the staged chunks (and the zero chunks) to the target in
// disk order, coalescing runs of consecutive chunks into one write.
func (r *restorer) apply(ctx context.Context, pl *restorePlan, s *staging) error {
	if err := r.t.grow(r.st.Size); err != nil {
		return fmt.Errorf("grow %s: %w", r.t.path, err)
	}
	run := &applyRun{r: r, buf: make([]byte, 0, coalesceMax+r.cs)}
	for i, id := range r.ids {
		if !pl.need[i] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		off, n := int64(i)*r.cs, min(r.cs, r.st.Size-int64(i)*r.cs)
		if id.IsZero() {
			if err := run.flush(); err != nil {
				return err
			}
			if err := r.t.zero(off, n); err != nil {
				return err
			}
			r.wrote(1, n)
			continue
		}
		if err := run.add(s.f, off, n, s.at[id][0]); err != nil {
			return err
		}
	}
	return run.flush()
}

// applyRun is a run of consecutive chunks read from staging, to be
// written to the target at once.
type applyRun struct {
	r      *restorer
	buf    []byte
	off    int64
	chunks int64
}

func (a *applyRun) add(stage *os.File, off, n, from int64) error {
	if a.chunks > 0 && (off != a.off+int64(len(a.buf)) || len(a.buf) >= coalesceMax) {
		if err := a.flush(); err != nil {
			return err
		}
	}
	if a.chunks == 0 {
		a.off = off
	}
	end := int64(len(a.buf)) + n
	if _, err := stage.ReadAt(a.buf[len(a.buf):end], from); err != nil {
		return fmt.Errorf("read staging file: %w", err)
	}
	a.buf = a.buf[:end]
	a.chunks++
	return nil
}

func (a *applyRun) flush() error {
	if a.chunks == 0 {
		return nil
	}
	if err := a.r.t.writeAt(a.buf, a.off); err != nil {
		return err
	}
	a.r.wrote(a.chunks, int64(len(a.buf)))
	a.buf, a.chunks = a.buf[:0], 0
	return nil
}

func (r *restorer) wrote(chunks, bytes int64) {
	r.applied += chunks
	if r.opt.Progress != nil {
		r.opt.Progress(bytes)
	}
}
