package vault

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/haven-dr/haven/internal/blob"
)

// PruneOptions select what prune removes.
type PruneOptions struct {
	Retention Retention
	Machine   string // only this machine's points ("" for all)
	DryRun    bool
	Now       time.Time // for tests; zero means now
	LockWait  time.Duration
}

// PruneReport says what prune removed, or would remove.
type PruneReport struct {
	Decisions      []Decision `json:"decisions"`
	Forgotten      int        `json:"forgotten"`
	DeletedPacks   int        `json:"deleted_packs"`
	DeletedBytes   int64      `json:"deleted_bytes"`
	DeletedPartial int        `json:"deleted_partial_uploads"`
	KeptPacks      int        `json:"kept_packs"`
	Deferred       string     `json:"deferred,omitempty"` // why data was not collected now
	RewrittenIdx   int        `json:"rewritten_indexes"`
	DryRun         bool       `json:"dry_run"`
	PartlyUsed     int        `json:"partly_used_packs"`
	PartlyUnusedB  int64      `json:"partly_unused_bytes"`
}

// Prune forgets points that retention does not keep, then deletes the packs
// no remaining point uses. It holds an exclusive lock; if a snapshot holds a
// shared lock, points are still forgotten but no data is deleted (it may be
// what the snapshot is about to reference), and Deferred says so.
func (v *Vault) Prune(ctx context.Context, opt PruneOptions) (*PruneReport, error) {
	if opt.Retention.Empty() {
		return nil, errNoRules
	}
	if opt.Now.IsZero() {
		opt.Now = time.Now()
	}
	rep := &PruneReport{DryRun: opt.DryRun}
	var lock *Lock
	if !opt.DryRun {
		var err error
		if lock, err = v.acquire(ctx, lockExclusive, opt.LockWait); err != nil {
			return nil, err
		}
		defer lock.Release()
	}
	points, err := v.Points(ctx, opt.Machine)
	if err != nil {
		return nil, err
	}
	rep.Decisions = opt.Retention.Apply(points, opt.Now)
	if opt.DryRun {
		return rep, nil
	}
	for _, d := range rep.Decisions {
		if !d.Keep {
			if err := v.deletePoint(ctx, d.Point); err != nil {
				return rep, err
			}
			rep.Forgotten++
		}
	}
	if len(lock.Peers) > 0 {
		rep.Deferred = "snapshots in progress (" + sharedWithOthers(lock.Peers) + "); unused data is collected by a later prune"
		return rep, nil
	}
	return rep, v.collect(ctx, rep)
}

// collect deletes packs that no point uses, then rewrites the index without
// them: new index first, old index objects after, so a crash in between
// leaves duplicates (harmless), never a hole.
func (v *Vault) collect(ctx context.Context, rep *PruneReport) error {
	idx, err := v.loadIndex(ctx)
	if err != nil {
		return err
	}
	used, err := v.usedBlobs(ctx, idx)
	if err != nil {
		return err
	}
	keep := map[ID][]blobEntry{}
	for pack, entries := range idx.packs {
		n := 0
		var unused int64
		for _, e := range entries {
			if used[e.ID] {
				n++
			} else {
				unused += int64(e.Length)
			}
		}
		if n > 0 {
			keep[pack] = entries
			rep.KeptPacks++
			if n < len(entries) {
				rep.PartlyUsed++
				rep.PartlyUnusedB += unused
			}
		}
	}
	if err := v.deletePacks(ctx, idx, keep, rep); err != nil {
		return err
	}
	// Debris of writes killed mid-way (local directory temp files).
	if n, b, err := blob.SweepPartial(ctx, v.be, LockLease); err == nil {
		rep.DeletedPartial, rep.DeletedBytes = n, rep.DeletedBytes+b
	}
	if len(keep) == len(idx.packs) && len(idx.files) <= 1 {
		return nil
	}
	if len(keep) > 0 {
		if _, err := v.saveIndex(ctx, keep); err != nil {
			return err
		}
	}
	for _, name := range idx.files {
		if err := v.be.Delete(ctx, name); err != nil {
			return err
		}
		rep.RewrittenIdx++
	}
	return nil
}

// deletePacks removes every stored pack not in keep. Packs that no index
// lists come from interrupted snapshots; they are deleted only once older
// than a lock lease, in case their writer is alive but slow.
func (v *Vault) deletePacks(ctx context.Context, idx *Index, keep map[ID][]blobEntry, rep *PruneReport) error {
	var victims []blob.Info
	err := v.be.List(ctx, "data/", func(fi blob.Info) error {
		id, err := ParseID(fi.Name[strings.LastIndexByte(fi.Name, '/')+1:])
		if err != nil {
			return nil // not ours: leave it alone
		}
		_, kept := keep[id]
		_, indexed := idx.packs[id]
		if !kept && (indexed || time.Since(fi.ModTime) >= LockLease) {
			victims = append(victims, fi)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, fi := range victims {
		if err := v.be.Delete(ctx, fi.Name); err != nil {
			return fmt.Errorf("delete %s: %w", fi.Name, err)
		}
		rep.DeletedPacks++
		rep.DeletedBytes += fi.Size
	}
	return nil
}

// usedBlobs returns every blob (pages and chunks) that a point references.
func (v *Vault) usedBlobs(ctx context.Context, idx *Index) (map[ID]bool, error) {
	points, err := v.Points(ctx, "")
	if err != nil {
		return nil, err
	}
	used := map[ID]bool{}
	for _, p := range points {
		for i := range p.Disks {
			d := &p.Disks[i]
			if allUsed(used, d.Pages) {
				continue // same pages as a point already walked
			}
			for _, pid := range d.Pages {
				used[pid] = true
			}
			ids, err := v.chunkIDs(ctx, idx, d, p.ChunkSize)
			if err != nil {
				return nil, fmt.Errorf("point %s/%s disk %s: %w", p.Machine, p.ID, d.Name, err)
			}
			for _, id := range ids {
				used[id] = true
			}
		}
	}
	return used, nil
}

func allUsed(used map[ID]bool, ids []ID) bool {
	for _, id := range ids {
		if !used[id] {
			return false
		}
	}
	return true
}
