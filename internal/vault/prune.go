package vault

import (
	"context"
	"errors"
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
	// Now is when retention and the deletion grace are measured from
	// (tests; zero means now). Lock leases always use the real clock.
	Now      time.Time
	LockWait time.Duration // how long to wait for another prune
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
	MarkedPacks    int        `json:"marked_packs"`   // newly marked as garbage, deleted by a later prune
	MarkedBytes    int64      `json:"marked_bytes"`   // their size
	Unmarked       int        `json:"unmarked_packs"` // marked earlier, but a point taken meanwhile uses them
	KeptPacks      int        `json:"kept_packs"`
	Deferred       string     `json:"deferred,omitempty"` // why marked data was not deleted now
	RewrittenIdx   int        `json:"rewritten_indexes"`
	DryRun         bool       `json:"dry_run"`
	PartlyUsed     int        `json:"partly_used_packs"`
	PartlyUnusedB  int64      `json:"partly_unused_bytes"`
	RepackedPacks  int        `json:"repacked_packs"`       // rewritten with only their used blobs
	DeletedLocks   int        `json:"deleted_lock_objects"` // of released, expired or superseded lock writes
	// Retained counts deletes the storage refused for now because the
	// object is still under its lock (blob.ErrRetained, S3 Object Lock,
	// Azure immutability): prune carried on, and a later prune deletes
	// them once the lock has expired. Never bypassed.
	Retained      int      `json:"retained_objects"`
	RetainedNames []string `json:"retained_names,omitempty"`
}

// notYet turns a delete refused by an object lock into "not yet": the
// object is counted as retained and prune carries on. Any other error is
// returned as it is.
func (rep *PruneReport) notYet(name string, err error) (deleted bool, _ error) {
	if errors.Is(err, blob.ErrRetained) {
		rep.Retained++
		rep.RetainedNames = append(rep.RetainedNames, name)
		return false, nil
	}
	return err == nil, err
}

// Prune forgets points that retention does not keep and collects data in
// two phases: it deletes the packs that an earlier prune marked as garbage
// (if still unneeded, see sweep), then marks the packs that no remaining
// point needs. Snapshots run on meanwhile: prune's lock only excludes other
// prunes, and a writer never dedupes against a marked pack.
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
	released, err := v.Released(ctx, points)
	if err != nil {
		return nil, err
	}
	held, err := v.Held(ctx, points)
	if err != nil {
		return nil, err
	}
	rep.Decisions = opt.Retention.apply(points, opt.Now, released, held)
	if opt.DryRun {
		return rep, nil
	}
	for _, d := range rep.Decisions {
		if !d.Keep {
			err := lock.guarded(ctx, func(ctx context.Context) error { return v.deletePoint(ctx, d.Point) })
			if gone, err := rep.notYet(v.pointName(d.Point.Machine, d.Point.ID), err); err != nil {
				return rep, err
			} else if !gone {
				continue // still locked: the point stays, and so do its data and release mark
			}
			rep.Forgotten++
			if _, err := rep.notYet(v.releaseName(d.Point.Machine, d.Point.ID), v.forgetRelease(ctx, d.Point)); err != nil {
				return rep, err
			}
		}
	}
	return rep, v.collect(ctx, lock, rep, opt)
}

// gcState is what both phases of collection work from.
type gcState struct {
	live  []lockFile // other live locks, listed before everything else
	marks *marks
	idx   *Index
	used  map[ID]bool  // blobs that some point references
	where map[ID][]ID  // used blob -> packs that hold it
	sizes map[ID]int64 // stored pack sizes
	dates map[ID]time.Time
}

func (v *Vault) loadGC(ctx context.Context, lock *Lock) (*gcState, error) {
	st := &gcState{sizes: map[ID]int64{}, dates: map[ID]time.Time{}, where: map[ID][]ID{}}
	var err error
	// Locks first: a writer that starts after this listing sees every mark
	// that exists now, and its points are not needed to decide.
	if st.live, err = v.liveLocks(ctx, lock.name); err != nil {
		return nil, err
	}
	if st.idx, err = v.loadIndex(ctx, forPrune); err != nil {
		return nil, err
	}
	st.marks = st.idx.marks
	if st.used, err = v.usedBlobs(ctx, st.idx); err != nil {
		return nil, err
	}
	for p, entries := range st.idx.packs {
		for _, e := range entries {
			if st.used[e.ID] {
				st.where[e.ID] = append(st.where[e.ID], p)
			}
		}
	}
	err = v.be.List(ctx, "data/", func(fi blob.Info) error {
		if id, err := ParseID(fi.Name[strings.LastIndexByte(fi.Name, '/')+1:]); err == nil {
			st.sizes[id], st.dates[id] = fi.Size, fi.ModTime
		}
		return nil // not ours: leave it alone
	})
	return st, err
}

// keepNeeded removes from gone every pack holding a used blob that no pack
// outside gone holds, until no such pack is left.
func (st *gcState) keepNeeded(gone map[ID]bool) {
	for changed := true; changed; {
		changed = false
		for p := range gone {
			if !st.replaceable(p, gone) {
				delete(gone, p)
				changed = true
			}
		}
	}
}

func (st *gcState) replaceable(p ID, gone map[ID]bool) bool {
	for _, e := range st.idx.packs[p] {
		if st.used[e.ID] && !st.hasCopy(e.ID, func(q ID) bool { return gone[q] }) {
			return false
		}
	}
	return true
}

// hasCopy reports whether a stored pack that is not going holds blob id.
func (st *gcState) hasCopy(id ID, going func(ID) bool) bool {
	for _, q := range st.where[id] {
		if _, stored := st.sizes[q]; stored && !going(q) {
			return true
		}
	}
	return false
}

// collect deletes due garbage, then marks new garbage. Every step is safe
// to interrupt: marks only ever name packs, deletions only follow a mark
// older than the grace, and the index is rewritten before packs go.
func (v *Vault) collect(ctx context.Context, lock *Lock, rep *PruneReport, opt PruneOptions) error {
	st, err := v.loadGC(ctx, lock)
	if err != nil {
		return err
	}
	if err := v.sweep(ctx, lock, st, rep, opt.Now); err != nil {
		return err
	}
	if err := v.markGarbage(ctx, lock, st, rep, opt); err != nil {
		return err
	}
	// Debris of writes killed mid-way (local directory temp files).
	if n, b, err := blob.SweepPartial(ctx, v.be, LockLease); err == nil {
		rep.DeletedPartial, rep.DeletedBytes = n, rep.DeletedBytes+b
	}
	// Writers never delete their lock objects (see Lock); prune does.
	rep.DeletedLocks, err = v.sweepLocks(ctx, lock.name, rep)
	return err
}

// markGarbage marks the packs that no point needs: unused ones, ones
// repacked now, and unindexed ones (left by interrupted snapshots) older
// than a lease.
func (v *Vault) markGarbage(ctx context.Context, lock *Lock, st *gcState, rep *PruneReport, opt PruneOptions) error {
	var garbage, repack []ID
	for pack, entries := range st.idx.packs {
		if st.marks.packs[pack] {
			continue
		}
		n := 0
		var unused, total int64
		for _, e := range entries {
			total += int64(e.Length)
			if st.used[e.ID] {
				n++
			} else {
				unused += int64(e.Length)
			}
		}
		switch {
		case n == 0:
			garbage = append(garbage, pack)
		case n < len(entries) && opt.RepackUnused > 0 && float64(unused) > opt.RepackUnused*float64(total):
			repack = append(repack, pack)
		default:
			rep.KeptPacks++
			if n < len(entries) {
				rep.PartlyUsed++
				rep.PartlyUnusedB += unused
			}
		}
	}
	for id, mod := range st.dates {
		_, indexed := st.idx.packs[id]
		if !indexed && !st.marks.packs[id] && time.Since(mod) >= LockLease {
			garbage = append(garbage, id)
		}
	}
	if err := v.repack(ctx, lock, st, repack, rep); err != nil {
		return err
	}
	garbage = append(garbage, repack...)
	if len(garbage) == 0 {
		return nil
	}
	if err := v.writeMark(ctx, lock, garbage, opt.Now); err != nil {
		return err
	}
	for _, p := range garbage {
		rep.MarkedPacks++
		rep.MarkedBytes += st.sizes[p]
	}
	if rep.Deferred == "" {
		rep.Deferred = deferral("", opt.Now.Add(deleteGrace()))
	}
	return nil
}

// repack copies the used blobs of the given packs that no other pack holds
// into new packs, as sealed bytes (a blob's AAD is its type and ID, not its
// pack, so no re-encryption is needed), after authenticating each: a
// damaged blob stops the prune before anything is marked. The new packs
// are indexed before the old ones are marked.
func (v *Vault) repack(ctx context.Context, lock *Lock, st *gcState, packs []ID, rep *PruneReport) error {
	old := map[ID]bool{}
	for _, p := range packs {
		old[p] = true
	}
	pb := v.newPackBuf()
	written := map[ID][]blobEntry{}
	flush := func() error {
		id, data := v.finishPack(pb)
		if err := v.be.Put(ctx, packName(id), data); err != nil {
			return err
		}
		written[id] = pb.entries
		rep.KeptPacks++
		pb = v.newPackBuf()
		return nil
	}
	// A blob with a copy in a pack that is neither repacked now nor marked
	// needs no new copy.
	going := func(q ID) bool { return old[q] || st.marks.packs[q] }
	copied := map[ID]bool{}
	for _, p := range packs {
		name := packName(p)
		data, err := getObject(ctx, v.be, name)
		if err != nil {
			return err
		}
		for _, e := range st.idx.packs[p] {
			if !st.used[e.ID] || copied[e.ID] || st.hasCopy(e.ID, going) {
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
		if err := flush(); err != nil {
			return err
		}
	}
	if len(written) == 0 {
		return nil
	}
	return lock.guarded(ctx, func(ctx context.Context) error { _, err := v.saveIndex(ctx, written); return err })
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
