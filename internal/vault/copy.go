package vault

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/zeebo/blake3"
	"golang.org/x/sync/errgroup"
)

// CopyOptions tune Copy.
type CopyOptions struct {
	// Progress is called after each point is copied.
	Progress func(CopyEvent)
	// OnlyNewer copies only points newer than the copy's newest point of
	// their machine, so that points the copy's own (shorter) retention
	// forgot are not copied again. A point committed out of capture order,
	// or skipped as damaged and repaired later, is then never copied.
	OnlyNewer bool
}

// CopyEvent reports one point copied.
type CopyEvent struct {
	Machine string    `json:"machine"`
	Point   string    `json:"point"`
	Time    time.Time `json:"time"`
	Packs   int       `json:"packs"` // packs this point brought
	Bytes   int64     `json:"bytes"`
	Done    int       `json:"done"`  // points copied so far in this run
	Total   int       `json:"total"` // points this run set out to copy
}

// CopyReport is what one Copy did and found.
type CopyReport struct {
	Points   int   `json:"points"`   // copied now
	Present  int   `json:"present"`  // source points the copy already had
	Packs    int   `json:"packs"`    // uploaded now
	Bytes    int64 `json:"bytes"`    // of those packs
	Adopted  int   `json:"adopted"`  // packs a killed run had uploaded, verified and indexed now
	Catalogs int   `json:"catalogs"` // catalog versions copied
	// Kept counts points the copy holds that the source no longer lists
	// (pruned there, or deleted by someone): the copy never follows.
	Kept int `json:"kept"`
	// Skipped counts source points not copied because something they
	// need is damaged or missing in the source; Problems says what.
	Skipped  int      `json:"skipped"`
	Problems []string `json:"problems"`
	// Older counts source points left out by OnlyNewer.
	Older int `json:"older"`
	// Lag is, over all machines, the largest gap between the capture
	// time of the source's newest point and the copy's, after the run.
	Lag time.Duration `json:"lag_ns"`
}

// Copy brings dst up to date with src: every point of src that dst lacks,
// with the packs it needs, then the catalog versions dst lacks. It only
// ever adds objects to dst, never deletes or replaces one, so it needs no
// more than create rights there, and whatever happens to src (points
// deleted, packs corrupted) cannot take anything from dst.
//
// Every pack copied is verified completely before it is uploaded: its
// content hash, its sealed header, and every blob opened and checked
// against its keyed hash. A point is copied only after every blob it
// references is in a verified pack in dst and indexed there (index
// object first, manifest last), so dst never references data it lacks and
// a run killed at any moment is resumed by running again: packs it
// uploaded but did not index are read back from dst, verified and indexed.
// Damaged source objects are reported in CopyReport.Problems and skipped.
func (dst *Vault) Copy(ctx context.Context, src *Vault, opt CopyOptions) (*CopyReport, error) {
	if err := sameKeys(src, dst); err != nil {
		return nil, err
	}
	lock, err := dst.acquire(ctx, lockShared, 0)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	ctx, cancel := lock.bind(ctx)
	defer cancel()
	c := &copier{src: src, dst: dst, lock: lock, opt: opt, rep: &CopyReport{Problems: []string{}}, packs: map[string]int64{}}
	if err := c.load(ctx); err != nil {
		return nil, err
	}
	if err := c.points(ctx); err != nil {
		return c.rep, err
	}
	if err := c.catalogs(ctx); err != nil {
		return c.rep, err
	}
	c.rep.Lag, err = Lag(ctx, src, dst)
	return c.rep, err
}

// destError is a failed write to the copy (refused, full): it stops the
// run instead of being reported as damage in the source.
type destError struct{ err error }

func (e *destError) Error() string { return "writing the copy: " + e.err.Error() }
func (e *destError) Unwrap() error { return e.err }

// errVanished: a source point listed at the start was gone when read.
var errVanished = errors.New("point vanished from the source")

type copier struct {
	src, dst *Vault
	lock     *Lock
	opt      CopyOptions
	rep      *CopyReport
	srcIdx   *Index
	dstIdx   *Index
	packs    map[string]int64 // dst's pack objects
	mu       sync.Mutex
}

func (c *copier) problem(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rep.Problems = append(c.rep.Problems, err.Error())
}

// load reads both indexes. The source's is read object by object, so a
// damaged index object there costs only the points that need it; the
// copy's own must be sound, as for any writer.
func (c *copier) load(ctx context.Context) error {
	var err error
	if c.srcIdx, err = c.sourceIndex(ctx); err != nil {
		return err
	}
	if c.dstIdx, err = c.dst.loadIndex(ctx, forWrite); err != nil {
		return fmt.Errorf("destination index: %w", err)
	}
	return c.dst.be.List(ctx, "data/", func(fi blob.Info) error {
		c.packs[fi.Name] = fi.Size
		return nil
	})
}

func (c *copier) sourceIndex(ctx context.Context) (*Index, error) {
	m, err := c.src.loadMarks(ctx, false)
	if isStorageErr(err) {
		return nil, err
	} else if err != nil {
		c.problem(fmt.Errorf("source deletion marks ignored: %w", err))
		m = &marks{packs: map[ID]bool{}}
	}
	names, err := listNames(ctx, c.src.be, indexPrefix)
	if err != nil {
		return nil, err
	}
	x := newIndex()
	for _, name := range names {
		plain, err := c.src.getSealed(ctx, name)
		if err == nil {
			err = decodeIndex(name, plain, x)
		}
		if isStorageErr(err) {
			return nil, err
		} else if err != nil && !errors.Is(err, ErrMissing) { // missing: rewritten by a prune meanwhile
			c.problem(fmt.Errorf("source index object skipped: %w", err))
		}
	}
	x.preferUnmarked(m)
	return x, nil
}

// points copies the source's points the copy lacks, oldest first, so the
// copy's newest point only moves forward.
func (c *copier) points(ctx context.Context) error {
	srcNames, err := c.src.pointNames(ctx, "")
	if err != nil {
		return err
	}
	dstNames, err := c.dst.pointNames(ctx, "")
	if err != nil {
		return err
	}
	have, newest := map[string]bool{}, map[string]string{}
	for _, n := range dstNames { // oldest first
		have[n] = true
		newest[path.Dir(n)] = path.Base(n)
	}
	var todo []string
	inSrc := map[string]bool{}
	for _, n := range srcNames {
		inSrc[n] = true
		switch top, ok := newest[path.Dir(n)]; {
		case have[n]:
			c.rep.Present++
		case c.opt.OnlyNewer && ok && path.Base(n) < top:
			c.rep.Older++
		default:
			todo = append(todo, n)
		}
	}
	for _, n := range dstNames {
		if !inSrc[n] {
			c.rep.Kept++
		}
	}
	for _, name := range todo {
		ev, err := c.point(ctx, name)
		var de *destError
		if isStorageErr(err) || errors.Is(err, ErrLeaseLost) || errors.As(err, &de) || ctx.Err() != nil {
			return errors.Join(err, ctx.Err())
		}
		if errors.Is(err, errVanished) || (errors.Is(err, ErrMissing) && c.vanished(ctx, name)) {
			continue // pruned in the source since we listed it, perhaps with its packs
		}
		if err != nil {
			c.rep.Skipped++
			c.problem(fmt.Errorf("point %s not copied: %w", name, err))
			continue
		}
		c.rep.Points++
		if c.opt.Progress != nil {
			ev.Done, ev.Total = c.rep.Points, len(todo)
			c.opt.Progress(*ev)
		}
	}
	return nil
}

// vanished: the manifest is gone from the source now.
func (c *copier) vanished(ctx context.Context, name string) bool {
	_, err := c.src.be.Stat(ctx, name)
	return errors.Is(err, blob.ErrNotFound)
}

// point copies one manifest after the packs it needs.
func (c *copier) point(ctx context.Context, name string) (*CopyEvent, error) {
	raw, err := getObject(ctx, c.src.be, name)
	if errors.Is(err, ErrMissing) {
		return nil, errVanished
	} else if err != nil {
		return nil, err
	}
	p, err := c.src.parsePoint(name, append([]byte(nil), raw...))
	if err != nil {
		return nil, err
	}
	need, err := c.blobs(ctx, p)
	if err != nil {
		return nil, err
	}
	want := map[ID]bool{}
	for _, id := range need {
		if c.dstHas(id) {
			continue
		}
		loc, ok := c.srcIdx.lookup(id)
		if !ok {
			return nil, &ObjectError{Object: "blob " + id.String(), Detail: "in no source index", Err: ErrMissing}
		}
		if c.dstIdx.marks != nil && c.dstIdx.marks.packs[loc.Pack] {
			return nil, fmt.Errorf("pack %s is marked as garbage in the copy: copied once the copy's prune has collected it", loc.Pack)
		}
		want[loc.Pack] = true
	}
	ev := &CopyEvent{Machine: p.Machine, Point: p.ID, Time: p.Time}
	if err := c.copyPacks(ctx, want, ev); err != nil {
		return nil, err
	}
	for _, id := range need {
		if !c.dstHas(id) {
			return nil, corrupt(packName(c.mustLoc(id)), "the source index lists blob %s here, the pack does not hold it", id)
		}
	}
	if err := c.lock.guarded(ctx, func(ctx context.Context) error { return c.dst.be.Put(ctx, name, raw) }); err != nil {
		return nil, &destError{err}
	}
	return ev, nil
}

func (c *copier) mustLoc(id ID) ID {
	l, _ := c.srcIdx.lookup(id)
	return l.Pack
}

// parsePoint authenticates and checks a manifest read as data.
func (v *Vault) parsePoint(name string, data []byte) (*Point, error) {
	plain, err := v.openSealed(name, data)
	if err != nil {
		return nil, err
	}
	return v.decodePoint(name, plain)
}

// blobs lists every page and non-zero chunk the point references; pages
// are read from the source and verified on the way.
func (c *copier) blobs(ctx context.Context, p *Point) ([]ID, error) {
	var ids []ID
	for i := range p.Disks {
		d := &p.Disks[i]
		ids = append(ids, d.Pages...)
		chunks, err := c.src.chunkIDs(ctx, c.srcIdx, d, p.ChunkSize)
		if err != nil {
			return nil, fmt.Errorf("disk %s: %w", d.Name, err)
		}
		for _, id := range chunks {
			if !id.IsZero() {
				ids = append(ids, id)
			}
		}
	}
	return ids, nil
}

// dstHas: the copy can reference id without copying anything.
func (c *copier) dstHas(id ID) bool {
	l, ok := c.dstIdx.lookup(id)
	if !ok || !c.dstIdx.canDedupe(id) {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, stored := c.packs[packName(l.Pack)]
	return stored
}

// copyPacks uploads the packs a point needs, four at a time, and indexes
// them in the copy before the point is written.
func (c *copier) copyPacks(ctx context.Context, want map[ID]bool, ev *CopyEvent) error {
	done := map[ID][]blobEntry{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for pack := range want {
		g.Go(func() error {
			entries, n, err := c.copyPack(gctx, pack)
			if err != nil {
				return err
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			done[pack] = entries
			c.packs[packName(pack)] = n
			ev.Packs++
			ev.Bytes += n
			return nil
		})
	}
	err := g.Wait()
	if len(done) > 0 {
		// Index what arrived even when another pack failed: the next
		// run then needs not read it back.
		ierr := c.lock.guarded(ctx, func(ctx context.Context) error { _, err := c.dst.saveIndex(ctx, done); return err })
		if ierr != nil {
			return &destError{errors.Join(err, ierr)}
		}
		for id, e := range done {
			c.dstIdx.addPack(id, e)
		}
	}
	return err
}

// copyPack verifies one pack and stores it in the copy. A pack the copy
// already stores (uploaded by a killed run, or by a snapshot written there)
// is read back from the copy and verified instead of uploaded again.
func (c *copier) copyPack(ctx context.Context, pack ID) ([]blobEntry, int64, error) {
	name := packName(pack)
	c.mu.Lock()
	_, stored := c.packs[name]
	c.mu.Unlock()
	from := c.src
	if stored {
		from = c.dst
	}
	data, err := getObject(ctx, from.be, name)
	if err != nil {
		return nil, 0, err
	}
	entries, err := c.src.verifyPack(name, append([]byte(nil), data...))
	if err != nil {
		if stored {
			return nil, 0, fmt.Errorf("in the copy: %w", err)
		}
		return nil, 0, err
	}
	if stored {
		c.mu.Lock()
		c.rep.Adopted++
		c.mu.Unlock()
		return entries, int64(len(data)), nil
	}
	if err := c.dst.be.Put(ctx, name, data); err != nil {
		return nil, 0, &destError{err}
	}
	c.mu.Lock()
	c.rep.Packs++
	c.rep.Bytes += int64(len(data))
	c.mu.Unlock()
	return entries, int64(len(data)), nil
}

// verifyPack checks a whole pack: its name is the hash of its content, its
// header authenticates, and every blob opens and matches its ID. data is
// destroyed (blobs are decrypted in place).
func (v *Vault) verifyPack(name string, data []byte) ([]blobEntry, error) {
	if sum := ID(blake3.Sum256(data)); packName(sum) != name {
		return nil, corrupt(name, "content hash is %s", sum)
	}
	entries, err := v.parsePack(name, data)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if _, err := v.openBlob(name, e, data[e.Offset:e.Offset+e.Length]); err != nil {
			return nil, err
		}
	}
	return entries, nil
}

// catalogs copies the catalog versions the copy lacks, each verified, so
// 'haven server --recover-from-vault' works from the copy alone.
func (c *copier) catalogs(ctx context.Context) error {
	have := map[string]bool{}
	names, err := listNames(ctx, c.dst.be, catalogPrefix)
	if err != nil {
		return err
	}
	for _, n := range names {
		have[n] = true
	}
	names, err = listNames(ctx, c.src.be, catalogPrefix)
	if err != nil {
		return err
	}
	for _, name := range names {
		if have[name] {
			continue
		}
		raw, err := getObject(ctx, c.src.be, name)
		if err == nil {
			_, err = c.src.openSealed(name, append([]byte(nil), raw...))
		}
		if isStorageErr(err) {
			return err
		} else if err != nil {
			c.problem(fmt.Errorf("catalog %s not copied: %w", name, err))
			continue
		}
		if err := c.lock.guarded(ctx, func(ctx context.Context) error { return c.dst.be.Put(ctx, name, raw) }); err != nil {
			return err
		}
		c.rep.Catalogs++
	}
	return nil
}

// Lag is, over all machines of src, how much older the capture time of
// dst's newest point is than src's newest; for a machine dst has no point
// of, how long ago src's oldest point of it was taken. Only object names
// are read (point IDs begin with their capture time).
func Lag(ctx context.Context, src, dst *Vault) (time.Duration, error) {
	// oldest and newest point ID per machine dir; names list oldest first.
	span := func(v *Vault) (oldest, newest map[string]string, err error) {
		names, err := v.pointNames(ctx, "")
		oldest, newest = map[string]string{}, map[string]string{}
		for _, n := range names {
			dir := path.Dir(n)
			if _, ok := oldest[dir]; !ok {
				oldest[dir] = path.Base(n)
			}
			newest[dir] = path.Base(n)
		}
		return oldest, newest, err
	}
	first, last, err := span(src)
	if err != nil {
		return 0, err
	}
	_, have, err := span(dst)
	if err != nil {
		return 0, err
	}
	var lag time.Duration
	for dir, id := range last {
		if h, ok := have[dir]; ok {
			lag = max(lag, pointTime(id).Sub(pointTime(h)))
		} else {
			lag = max(lag, time.Since(pointTime(first[dir])))
		}
	}
	return lag, nil
}

// pointTime is the capture time a point ID begins with (zero if none).
func pointTime(id string) time.Time {
	t, _ := time.Parse("20060102T150405.000Z", strings.SplitN(id, "-", 2)[0])
	return t
}

// Err is an error wrapping ErrCorrupt when the source had damaged or
// missing objects that were not copied, nil otherwise.
func (r *CopyReport) Err() error {
	if len(r.Problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %d problem(s) in the source, %d point(s) not copied; first: %s", ErrCorrupt, len(r.Problems), r.Skipped, r.Problems[0])
}
