package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

const garbagePrefix = "garbage/"

// DeleteGrace is how long a pack stays marked as garbage before a prune may
// delete it. It must exceed LockLease by far: a writer whose lease lapsed
// refuses to commit, but a write it sent just before may still land late.
// The effective grace is never less than twice LockLease.
var DeleteGrace = 10 * time.Minute

func deleteGrace() time.Duration { return max(DeleteGrace, 2*LockLease) }

// garbageFile is a deletion mark (garbage/<32 hex>, a sealed JSON object):
// packs one prune found unused or repacked. A later prune deletes them once
// the mark is older than the grace and every writer that may have loaded
// the index before the mark existed has finished; anything a point still
// needs from them by then is kept instead.
type garbageFile struct {
	Marked  time.Time `json:"marked"`  // when marked; the grace counts from here
	Written time.Time `json:"written"` // wall clock when written, compared with lock creation times
	Packs   []ID      `json:"packs"`
}

// marks is every garbage object, and the union of the packs they name.
type marks struct {
	files map[string]*garbageFile
	packs map[ID]bool
}

// loadMarks reads every deletion mark. A mark deleted while we list was
// dealt with by a prune and is skipped.
func (v *Vault) loadMarks(ctx context.Context, lenient bool) (*marks, error) {
	names, err := listNames(ctx, v.be, garbagePrefix)
	if err != nil {
		return nil, err
	}
	m := &marks{files: map[string]*garbageFile{}, packs: map[ID]bool{}}
	for _, name := range names {
		plain, err := v.getSealed(ctx, name)
		if errors.Is(err, ErrMissing) {
			continue
		} else if lenient && unauthentic(err) {
			passOver(err)
			continue
		} else if err != nil {
			return nil, err
		}
		var g garbageFile
		if err := decodeMark(name, plain, &g); err != nil {
			return nil, err
		}
		m.files[name] = &g
		for _, p := range g.Packs {
			m.packs[p] = true
		}
	}
	return m, nil
}

// marks checks that every deletion mark authenticates and parses: a
// damaged one stops every snapshot and prune, like a damaged index.
func (c *checker) marks(ctx context.Context) error {
	names, err := listNames(ctx, c.v.be, garbagePrefix)
	if err != nil {
		return err
	}
	for _, name := range names {
		plain, err := c.v.getSealed(ctx, name)
		if errors.Is(err, ErrMissing) {
			continue // swept while we looked
		}
		if err == nil {
			err = decodeMark(name, plain, &garbageFile{})
		}
		if isStorageErr(err) {
			return err
		} else if err != nil {
			c.fail(err)
		}
	}
	return nil
}

func decodeMark(name string, plain []byte, g *garbageFile) error {
	if err := json.Unmarshal(plain, g); err != nil {
		return corrupt(name, "%v", err)
	}
	return nil
}

// markPutBound is how long writing a mark may take: a writer whose lock
// was created later than written + markVisible certainly sees the mark.
func markPutBound() time.Duration { return LockRefresh / 2 }

// markVisible allows for the write itself and for clock skew (< LockRefresh)
// between the prune and the writers.
func markVisible() time.Duration { return markPutBound() + 3*LockRefresh/2 }

// writeMark stores one deletion mark for packs; the write must finish
// within markPutBound of the time recorded in it.
func (v *Vault) writeMark(ctx context.Context, lock *Lock, packs []ID, now time.Time) error {
	plain, err := json.Marshal(&garbageFile{Marked: now.UTC(), Written: time.Now().UTC(), Packs: packs})
	if err != nil {
		return err
	}
	name := garbagePrefix + randomHex(16)
	pctx, cancel := context.WithTimeout(ctx, markPutBound())
	defer cancel()
	err = lock.guarded(pctx, func(ctx context.Context) error { return v.putSealed(ctx, name, plain) })
	if err != nil {
		// A mark that arrives late would carry too early a time; remove
		// it in case the service still applies the write.
		v.be.Delete(context.WithoutCancel(ctx), name)
	}
	return err
}

// blockingWriter names a live lock whose holder may have loaded the index
// before a mark written at written became visible to it, and so may still
// commit a point that references a marked pack.
func blockingWriter(live []lockFile, written time.Time) string {
	for _, l := range live {
		if l.Kind == lockShared && !l.Created.After(written.Add(markVisible())) || l.Created.IsZero() {
			return l.Holder
		}
	}
	return ""
}

// sweep is the second phase of garbage collection: it deletes the packs of
// due marks (older than the grace, no writer predating them still live)
// that no point needs, after rewriting the index without them. A marked
// pack holding a blob that a point uses and no staying pack holds is kept
// and so unmarked: a writer that started before the mark referenced it.
// live must have been listed before points and index were loaded.
func (v *Vault) sweep(ctx context.Context, lock *Lock, st *gcState, rep *PruneReport, now time.Time) error {
	due, dueFiles := map[ID]bool{}, []string{}
	notDue := map[ID]bool{}
	for name, m := range st.marks.files {
		w := blockingWriter(st.live, m.Written)
		if now.Sub(m.Marked) < deleteGrace() || w != "" {
			for _, p := range m.Packs {
				notDue[p] = true
			}
			rep.Deferred = deferral(w, m.Marked.Add(deleteGrace()))
			continue
		}
		dueFiles = append(dueFiles, name)
		for _, p := range m.Packs {
			due[p] = true
		}
	}
	for p := range notDue {
		delete(due, p)
	}
	n := len(due)
	st.keepNeeded(due)
	rep.Unmarked += n - len(due)
	stuck, err := v.rewriteIndex(ctx, lock, st.idx, due, rep)
	if err != nil {
		return err
	}
	// A pack named by an old index object that is still locked must stay:
	// that index would otherwise send snapshots to dedupe against data
	// that is gone. It stays marked and goes with a later prune.
	heldBack := false
	for p := range due {
		for _, f := range st.idx.named[p] {
			if stuck[f] {
				delete(due, p)
				notDue[p], heldBack = true, true
				break
			}
		}
	}
	for p := range due {
		name := packName(p)
		err := lock.guarded(ctx, func(ctx context.Context) error { return v.be.Delete(ctx, name) })
		// A retained pack is no longer indexed: a later prune marks and
		// deletes it like any unindexed pack.
		if gone, err := rep.notYet(name, err); err != nil {
			return fmt.Errorf("delete %s: %w", name, err)
		} else if gone {
			rep.DeletedPacks++
			rep.DeletedBytes += st.sizes[p]
		}
	}
	for _, name := range dueFiles {
		if heldBack {
			break // its packs may be among those kept: keep the marks too
		}
		err := lock.guarded(ctx, func(ctx context.Context) error { return v.be.Delete(ctx, name) })
		if gone, err := rep.notYet(name, err); err != nil {
			return err
		} else if gone {
			delete(st.marks.files, name)
		}
	}
	st.marks.packs = notDue
	for p := range due {
		delete(st.idx.packs, p)
		delete(st.sizes, p)
		delete(st.dates, p)
	}
	return nil
}

func deferral(writer string, after time.Time) string {
	if writer != "" {
		return "marked data is deleted after " + writer + " finishes (it started before the mark)"
	}
	return "marked data is deleted by a prune after " + after.Local().Format(time.DateTime)
}

// rewriteIndex replaces the index objects loaded in idx by one object that
// lists every pack but those in gone; it runs before any pack is deleted,
// since an index naming a deleted pack would make a snapshot dedupe
// against data that is gone. Index objects written meanwhile by snapshots
// are not touched.
func (v *Vault) rewriteIndex(ctx context.Context, lock *Lock, idx *Index, gone map[ID]bool, rep *PruneReport) (stuck map[string]bool, _ error) {
	keep := map[ID][]blobEntry{}
	for p, e := range idx.packs {
		if !gone[p] {
			keep[p] = e
		}
	}
	if len(keep) == len(idx.packs) && len(idx.files) <= 1 {
		return nil, nil
	}
	if len(keep) > 0 {
		err := lock.guarded(ctx, func(ctx context.Context) error { _, err := v.saveIndex(ctx, keep); return err })
		if err != nil {
			return nil, err
		}
	}
	stuck = map[string]bool{}
	for _, name := range idx.files {
		err := lock.guarded(ctx, func(ctx context.Context) error { return v.be.Delete(ctx, name) })
		if deleted, err := rep.notYet(name, err); err != nil {
			return nil, err
		} else if deleted {
			rep.RewrittenIdx++
		} else {
			stuck[name] = true
		}
	}
	return stuck, nil
}
