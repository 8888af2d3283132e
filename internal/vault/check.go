package vault

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/haven-dr/haven/internal/blob"
	"golang.org/x/sync/errgroup"
)

// CheckOptions select how deep Check goes.
type CheckOptions struct {
	ReadData bool              // download and verify every pack
	Progress func(bytes int64) // pack bytes verified (ReadData only)
}

// CheckReport lists what Check looked at and every problem it found.
type CheckReport struct {
	Points            int      `json:"points"`
	Indexes           int      `json:"indexes"`
	Packs             int      `json:"packs"`
	PackBytes         int64    `json:"pack_bytes"`
	UnreferencedPacks int      `json:"unreferenced_packs"` // left by interrupted snapshots; prune removes them
	Problems          []string `json:"problems"`
	errs              []error
}

// Err summarises the problems as one error, wrapping the first one's class.
func (r *CheckReport) Err() error {
	if len(r.errs) == 0 {
		return nil
	}
	return fmt.Errorf("check found %d problem(s); first: %w", len(r.errs), r.errs[0])
}

type checker struct {
	v     *Vault
	r     *CheckReport
	mu    sync.Mutex
	idx   *Index
	packs map[string]int64 // stored pack objects and sizes
}

func (c *checker) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.r.errs = append(c.r.errs, err)
	c.r.Problems = append(c.r.Problems, err.Error())
}

// Check verifies the vault: every metadata object authenticates, every point
// refers only to indexed blobs in packs that exist with the right size and,
// with ReadData, every pack's content hash, header and every blob. Problems
// are collected (naming the object) rather than stopping at the first.
func (v *Vault) Check(ctx context.Context, opt CheckOptions) (*CheckReport, error) {
	c := &checker{v: v, r: &CheckReport{}, packs: map[string]int64{}}
	if err := c.plainObjects(ctx); err != nil {
		return nil, err
	}
	if err := c.index(ctx); err != nil {
		return nil, err
	}
	if err := c.marks(ctx); err != nil {
		return nil, err
	}
	used, err := c.points(ctx)
	if err != nil {
		return nil, err
	}
	c.packSizes(used)
	if opt.ReadData {
		if err := c.readPacks(ctx, opt.Progress); err != nil {
			return nil, err
		}
	}
	return c.r, nil
}

// plainObjects checks the checksums of key and lock files.
func (c *checker) plainObjects(ctx context.Context) error {
	for _, prefix := range []string{keysPrefix, locksPrefix} {
		names, err := listNames(ctx, c.v.be, prefix)
		if err != nil {
			return err
		}
		for _, name := range names {
			data, err := getObject(ctx, c.v.be, name)
			if errors.Is(err, ErrMissing) && prefix == locksPrefix {
				continue // released while we looked
			} else if err != nil {
				c.fail(err)
				continue
			}
			var dummy map[string]any
			if err := decodeSigned(name, data, nil, &dummy); err != nil {
				c.fail(err)
			}
		}
	}
	return nil
}

// index loads each index object on its own so one bad object is reported
// without hiding the others.
func (c *checker) index(ctx context.Context) error {
	names, err := listNames(ctx, c.v.be, indexPrefix)
	if err != nil {
		return err
	}
	c.idx = newIndex()
	c.r.Indexes = len(names)
	for _, name := range names {
		plain, err := c.v.getSealed(ctx, name)
		if err == nil {
			err = decodeIndex(name, plain, c.idx)
		}
		if err != nil {
			if isStorageErr(err) {
				return err
			}
			c.fail(err)
		}
	}
	return c.v.be.List(ctx, "data/", func(fi blob.Info) error {
		c.packs[fi.Name] = fi.Size
		return nil
	})
}

func isStorageErr(err error) bool {
	return errors.Is(err, blob.ErrUnavailable) || errors.Is(err, context.Canceled)
}

// points loads every manifest and its pages and checks that every chunk is
// indexed. It returns the packs that points use.
func (c *checker) points(ctx context.Context) (map[ID]bool, error) {
	names, err := c.v.pointNames(ctx, "")
	if err != nil {
		return nil, err
	}
	c.r.Points = len(names)
	used := map[ID]bool{}
	for _, name := range names {
		p, err := c.v.loadPoint(ctx, name)
		if err != nil {
			if isStorageErr(err) {
				return nil, err
			}
			c.fail(err)
			continue
		}
		for i := range p.Disks {
			if err := c.disk(ctx, name, p, &p.Disks[i], used); err != nil {
				if isStorageErr(err) {
					return nil, err
				}
				c.fail(fmt.Errorf("point %s disk %s: %w", name, p.Disks[i].Name, err))
			}
		}
	}
	return used, nil
}

func (c *checker) disk(ctx context.Context, name string, p *Point, d *Disk, used map[ID]bool) error {
	for _, pid := range d.Pages {
		if loc, ok := c.idx.lookup(pid); ok {
			used[loc.Pack] = true
		}
	}
	ids, err := c.v.chunkIDs(ctx, c.idx, d, p.ChunkSize)
	if err != nil {
		return err
	}
	missing := 0
	for _, id := range ids {
		if id.IsZero() {
			continue
		}
		loc, ok := c.idx.lookup(id)
		if !ok {
			missing++
			continue
		}
		used[loc.Pack] = true
	}
	if missing > 0 {
		return &ObjectError{Object: name, Detail: fmt.Sprintf("%d chunks are in no index", missing), Err: ErrMissing}
	}
	return nil
}

// packSizes checks that every indexed pack exists and is long enough.
func (c *checker) packSizes(used map[ID]bool) {
	for pack, entries := range c.idx.packs {
		name := packName(pack)
		size, ok := c.packs[name]
		if !ok {
			if used[pack] {
				c.fail(&ObjectError{Object: name, Detail: "indexed and used by a point", Err: ErrMissing})
			}
			continue
		}
		var end int64
		for _, e := range entries {
			end = max(end, int64(e.Offset)+int64(e.Length))
		}
		if size < end+4+overhead {
			c.fail(corrupt(name, "truncated: %d bytes, index needs more than %d", size, end))
		}
	}
	for name, size := range c.packs {
		c.r.Packs++
		c.r.PackBytes += size
		id, err := ParseID(name[strings.LastIndexByte(name, '/')+1:])
		if err != nil {
			c.fail(corrupt(name, "not a pack name"))
			continue
		}
		if !used[id] {
			c.r.UnreferencedPacks++
		}
	}
}

// readPacks downloads every pack and verifies it completely.
func (c *checker) readPacks(ctx context.Context, progress func(int64)) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for name := range c.packs {
		g.Go(func() error {
			data, err := getObject(ctx, c.v.be, name)
			if err != nil {
				if isStorageErr(err) {
					return err
				}
				c.fail(err)
				return nil
			}
			if err := c.verifyPack(name, data); err != nil {
				c.fail(err)
			}
			if progress != nil {
				progress(int64(len(data)))
			}
			return nil
		})
	}
	return g.Wait()
}

func (c *checker) verifyPack(name string, data []byte) error {
	entries, err := c.v.verifyPack(name, data)
	if err != nil {
		return err
	}
	id, _ := ParseID(name[strings.LastIndexByte(name, '/')+1:])
	if indexed, ok := c.idx.packs[id]; ok && len(indexed) != len(entries) {
		return corrupt(name, "header lists %d blobs, index %d", len(entries), len(indexed))
	}
	return nil
}
