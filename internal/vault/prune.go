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
	// RepackUnused: a pack whose bytes are more than this share unused is
	// rewritten with only its used blobs (0 keeps partly used packs;
	// DefaultRepackUnused is what the CLI and the agent use).
	RepackUnused float64
}

// DefaultRepackUnused repacks packs that are more than half garbage: the
// copy costs at most twice the space it frees.
const DefaultRepackUnused = 0.5

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
	RepackedPacks  int        `json:"repacked_packs"` // rewritten with only their used blobs
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
	return rep, v.collect(ctx, rep, opt.RepackUnused)
}

// collect deletes packs that no point uses and repacks those that points
// use only a little. Order is what makes a crash at any step safe: new packs
// first, then an index of exactly the packs that stay, then the old index
// objects, and only then the packs. A stale index listing a deleted pack
// would make the next snapshot dedupe against data that is gone.
func (v *Vault) collect(ctx context.Context, rep *PruneReport, repackAbove float64) error {
	idx, err := v.loadIndex(ctx)
	if err != nil {
		return err
	}
	used, err := v.usedBlobs(ctx, idx)
	if err != nil {
		return err
	}
	keep := map[ID][]blobEntry{}
	var repack []ID
	for pack, entries := range idx.packs {
		n := 0
		var unused, total int64
		for _, e := range entries {
			total += int64(e.Length)
			if used[e.ID] {
				n++
			} else {
				unused += int64(e.Length)
			}
		}
		switch {
		case n == 0:
		case n < len(entries) && repackAbove > 0 && float64(unused) > repackAbove*float64(total):
			repack = append(repack, pack)
		default:
			keep[pack] = entries
			rep.KeptPacks++
			if n < len(entries) {
				rep.PartlyUsed++
				rep.PartlyUnusedB += unused
			}
		}
	}
	if err := v.repack(ctx, idx, repack, used, keep, rep); err != nil {
		return err
	}
	if !samePacks(keep, idx.packs) || len(idx.files) > 1 {
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
	}
	if err := v.deletePacks(ctx, idx, keep, rep); err != nil {
		return err
	}
	// Debris of writes killed mid-way (local directory temp files).
	if n, b, err := blob.SweepPartial(ctx, v.be, LockLease); err == nil {
		rep.DeletedPartial, rep.DeletedBytes = n, rep.DeletedBytes+b
	}
	return nil
}

func samePacks(a, b map[ID][]blobEntry) bool {
	if len(a) != len(b) {
		return false
	}
	for id := range a {
		if _, ok := b[id]; !ok {
			return false
		}
	}
	return true
}

// repack copies the used blobs of the given packs into new packs, as sealed
// bytes (a blob's AAD is its type and ID, not its pack, so no re-encryption
// is needed), after authenticating each: a damaged blob stops the prune
// before anything is deleted. The new packs are added to keep.
func (v *Vault) repack(ctx context.Context, idx *Index, packs []ID, used map[ID]bool, keep map[ID][]blobEntry, rep *PruneReport) error {
	pb := v.newPackBuf()
	flush := func() error {
		id, data := v.finishPack(pb)
		if err := v.be.Put(ctx, packName(id), data); err != nil {
			return err
		}
		keep[id] = pb.entries
		rep.KeptPacks++
		pb = v.newPackBuf()
		return nil
	}
	copied := map[ID]bool{}
	for _, p := range packs {
		name := packName(p)
		data, err := getObject(ctx, v.be, name)
		if err != nil {
			return err
		}
		for _, e := range idx.packs[p] {
			if !used[e.ID] || copied[e.ID] {
				continue
			}
			if int64(e.Offset)+int64(e.Length) > int64(len(data)) {
				return corrupt(name, "blob %s beyond the end of the pack", e.ID)
			}
			sealed := data[e.Offset : e.Offset+e.Length]
			if _, err := v.openBlob(name, e, append([]byte(nil), sealed...)); err != nil {
				return err
			}
			if !pb.fits(len(sealed)) {
				if err := flush(); err != nil {
					return err
				}
			}
			copy(pb.reserve(e.Type, e.ID, e.Flags, len(sealed), int(e.RawLength)), sealed)
			pb.pending.Done()
			copied[e.ID] = true
			if len(pb.data) >= v.cfg.PackSize {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		rep.RepackedPacks++
	}
	if len(pb.entries) > 0 {
		return flush()
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
