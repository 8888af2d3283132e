package vault

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/haven-dr/haven/internal/blob"
)

// lockReleased is the last object of a released lock.
const lockReleased = "released"

// lockSeqName is the name of a lock's seq-th write: ten digits, so that
// name order is write order.
func lockSeqName(lock string, seq int) string { return fmt.Sprintf("%s/%010d", lock, seq) }

// lockGroup is one lock as stored: its objects, the newest write among
// them, and whether its holder released it.
type lockGroup struct {
	name     string // locks/<id>
	objects  []blob.Info
	newest   blob.Info
	released bool
}

// maybeLive is false for a lock whose newest write is so old that its
// expiry (write start + LockLease) has certainly passed, even allowing
// LockRefresh of skew between the storage's clock and ours; such a lock
// is not read at all, so locks left for prune to clean up cost a listing
// entry each, not a download.
func (g *lockGroup) maybeLive(now time.Time) bool {
	return now.Sub(g.newest.ModTime) <= LockLease+LockRefresh
}

// lockGroups lists the locks. A lock written by Haven before lock objects
// were append-only is a single object locks/<id>, rewritten in place and
// deleted at release; it reads as a group of one.
func (v *Vault) lockGroups(ctx context.Context) (map[string]*lockGroup, error) {
	groups := map[string]*lockGroup{}
	err := v.be.List(ctx, locksPrefix, func(fi blob.Info) error {
		id, leaf, _ := strings.Cut(strings.TrimPrefix(fi.Name, locksPrefix), "/")
		g := groups[id]
		if g == nil {
			g = &lockGroup{name: locksPrefix + id}
			groups[id] = g
		}
		g.objects = append(g.objects, fi)
		switch {
		case leaf == lockReleased:
			g.released = true
		case g.newest.Name == "" || laterSeq(fi.Name, g.newest.Name):
			g.newest = fi
		}
		return nil
	})
	for id, g := range groups {
		if g.newest.Name == "" { // only a release object: nothing to read
			g.newest = g.objects[0]
			groups[id] = g
		}
	}
	return groups, err
}

func laterSeq(a, b string) bool {
	return len(a) > len(b) || len(a) == len(b) && a > b
}

// sweepLocks deletes what no reader needs any more: every object of a
// released or certainly expired lock, and the older writes of a live one.
// Only prune calls it: it needs a credential that may delete.
func (v *Vault) sweepLocks(ctx context.Context, self string, rep *PruneReport) (int, error) {
	groups, err := v.lockGroups(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	now := time.Now()
	for _, g := range groups {
		if g.name == self {
			continue
		}
		gone := g.released || !g.maybeLive(now)
		for _, fi := range g.objects {
			if !gone && fi.Name == g.newest.Name {
				continue
			}
			if gone, err := rep.notYet(fi.Name, v.be.Delete(ctx, fi.Name)); err != nil {
				return n, err
			} else if gone {
				n++
			}
		}
	}
	return n, nil
}
