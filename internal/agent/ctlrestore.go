package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"

	"github.com/haven-dr/haven/internal/vault"
)

// PreservedTag marks the point a restore takes of the disks it is about to
// overwrite; retention keeps such points until an operator releases them.
const PreservedTag = vault.PreservedTag

// preserveKeyTag holds the RestoreRequest.PreserveKey a point was kept
// under.
const preserveKeyTag = "haven.preserved.key"

// RestoreMachine writes a point of the machine onto its own disks in place
// (only differing chunks are written). The machine must be stopped. With
// req.Preserve the disks' current state is first kept as a point tagged
// PreservedTag, so nothing written after the target point is destroyed
// unseen. The work goes on if the caller goes away: a restore left half
// done is worse than one the caller no longer waits for.
func (a *Agent) RestoreMachine(ctx context.Context, name string, req RestoreRequest) (*RestoreResult, error) {
	m, g, err := a.machineNamed(name)
	if err != nil {
		return nil, err
	}
	if req.Point == "" {
		return nil, ctlErrorf(http.StatusBadRequest, "restore %s: no point given", name)
	}
	if m.cfg.Provider == ProviderQemu {
		if err := qemuRestorable(ctx, m); err != nil {
			return nil, err
		}
	}
	if a.Vault() == nil {
		return nil, ctlErrorf(http.StatusServiceUnavailable, "the vault is not open yet")
	}
	if err := g.turn.take(ctx); err != nil {
		return nil, ctlErrorf(http.StatusServiceUnavailable, "restore %s: %v", name, err)
	}
	defer g.turn.give()
	ctx = context.WithoutCancel(ctx)
	if _, stopped := a.ctlOf(m); !stopped {
		return nil, ctlErrorf(http.StatusConflict, "restore %s: the machine is not stopped (POST /v1/machines/%s/stop first)", name, name)
	}
	p, err := a.restorable(ctx, m, req.Point)
	if err != nil {
		return nil, err
	}
	res := &RestoreResult{}
	var now map[string][]vault.ID
	var nowSize map[string]int64
	if req.Preserve {
		if res.Preserved, now, nowSize, err = a.preserveOnce(ctx, m, p, req.PreserveKey); err != nil {
			return nil, fmt.Errorf("restore %s: keeping the disks' current state: %w (nothing was written)", name, err)
		}
	}
	// From here on a failure still answers res: the caller must learn
	// which point holds the disks' previous state.
	// A tracker would now describe the disks before the restore: drop it
	// before the first write, so the next cycle reads everything.
	if err := a.invalidateTrackers(m); err != nil {
		return res, fmt.Errorf("restore %s: %w (nothing was written)", name, err)
	}
	for _, d := range m.cfg.Disks {
		dr, err := a.restoreDisk(ctx, m, p, d, now[d.Name], nowSize[d.Name])
		if err != nil {
			// The vault's RestoreError says what state the disk is in.
			return res, fmt.Errorf("restore %s: disk %s: %w (disks restored before it: %d of %d; the same restore again completes it)",
				name, d.Name, err, len(res.Disks), len(m.cfg.Disks))
		}
		res.Disks = append(res.Disks, *dr)
	}
	return res, nil
}

// preserveOnce keeps the disks' state, or with a key finds the point an
// earlier try kept under it (the disks may since be half restored).
func (a *Agent) preserveOnce(ctx context.Context, m *machine, target *vault.Point, key string) (string, map[string][]vault.ID, map[string]int64, error) {
	if key == "" {
		return a.preserve(ctx, m, target, nil)
	}
	ps, err := a.Vault().Points(ctx, m.cfg.Name)
	if err != nil {
		return "", nil, nil, err
	}
	for _, p := range ps {
		if p.Tags[PreservedTag] != "true" || p.Tags[preserveKeyTag] != key {
			continue
		}
		ids, sizes := map[string][]vault.ID{}, map[string]int64{}
		for _, d := range p.Disks {
			if ids[d.Name], err = a.Vault().DiskChunkIDs(ctx, p, d.Name); err != nil {
				return "", nil, nil, fmt.Errorf("chunk list of preserved point %s: %w", p.ID, err)
			}
			sizes[d.Name] = d.Size
		}
		return p.ID, ids, sizes, nil
	}
	return a.preserve(ctx, m, target, map[string]string{preserveKeyTag: key})
}

// restorable finds the point and checks that its disks are exactly the
// machine's configured disks, before anything is written.
func (a *Agent) restorable(ctx context.Context, m *machine, id string) (*vault.Point, error) {
	p, err := a.Vault().FindPoint(ctx, m.cfg.Name, id)
	if errors.Is(err, vault.ErrNoPoint) {
		return nil, &ctlError{code: http.StatusNotFound, err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("restore %s: %w", m.cfg.Name, err)
	}
	var have, want []string
	for _, d := range p.Disks {
		have = append(have, d.Name)
	}
	for _, d := range m.cfg.Disks {
		want = append(want, d.Name)
	}
	slices.Sort(have)
	slices.Sort(want)
	if !slices.Equal(have, want) {
		return nil, ctlErrorf(http.StatusConflict, "restore %s: point %s has disks %v, the agent's config has %v; nothing was written",
			m.cfg.Name, p.ID, have, want)
	}
	return p, nil
}

// preserve reads the disks whole (no change-tracking hints: the disks are
// about to be overwritten, and this point must be exact) into a point.
func (a *Agent) preserve(ctx context.Context, m *machine, target *vault.Point, tags map[string]string) (string, map[string][]vault.ID, map[string]int64, error) {
	var disks []vault.DiskSource
	for _, d := range m.cfg.Disks {
		disks = append(disks, vault.DiskSource{Name: d.Name, Path: d.Path})
	}
	tags = maps.Clone(tags)
	if tags == nil {
		tags = map[string]string{}
	}
	tags[PreservedTag], tags["haven.preserved.before_restore_of"] = "true", target.ID
	res, err := a.Vault().SnapshotKnown(ctx, vault.SnapshotOptions{Machine: m.cfg.Name, Disks: disks, Time: a.now(),
		Consistency: vault.CrashConsistent, Provider: m.cfg.Provider, Group: m.cfg.Group, LockWait: snapshotLockWait,
		Tags: tags}, nil)
	if err != nil {
		return "", nil, nil, err
	}
	sizes := map[string]int64{}
	for _, d := range res.Point.Disks {
		sizes[d.Name] = d.Size
	}
	return res.Point.ID, res.IDs, sizes, nil
}

func (a *Agent) invalidateTrackers(m *machine) error {
	m.verified, m.lastIDs = false, nil
	for name, t := range m.trackers {
		if err := t.reset(); err != nil {
			return fmt.Errorf("dropping the change-tracking state of disk %s: %w", name, err)
		}
	}
	return nil
}

// reset forgets the cache and the baseline clone, in memory and on disk.
func (t *tracker) reset() error {
	t.cache, t.prevMap, t.newMap = nil, nil, nil
	for _, p := range []string{t.cachePath, t.prevClone} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// restoreDisk restores one disk; now (the preserved chunk IDs, nil without
// preserve) gives the bytes that differed, else the bytes written do.
func (a *Agent) restoreDisk(ctx context.Context, m *machine, p *vault.Point, d DiskConfig, now []vault.ID, nowSize int64) (*DiskRestoreResult, error) {
	st, err := a.Vault().Restore(ctx, vault.RestoreOptions{Machine: m.cfg.Name, Point: p.ID, Disk: d.Name, Target: d.Path})
	if err != nil {
		return nil, err
	}
	dr := &DiskRestoreResult{Disk: d.Name, Size: st.Size, BytesWritten: st.BytesWritten, Differing: st.BytesWritten}
	if now != nil {
		pd, _ := p.Disk(d.Name)
		ids, err := a.Vault().DiskChunkIDs(ctx, p, d.Name)
		if err != nil {
			return nil, fmt.Errorf("chunk list of point %s: %w", p.ID, err)
		}
		dr.Differing = differingBytes(now, ids, int64(p.ChunkSize), max(nowSize, pd.Size))
	}
	return dr, nil
}

// differingBytes counts the bytes of the chunks whose IDs differ; a chunk
// past the end of the shorter list differs unless it is all zero.
func differingBytes(x, y []vault.ID, chunk, size int64) int64 {
	var n int64
	for i := range max(len(x), len(y)) {
		var a, b vault.ID
		if i < len(x) {
			a = x[i]
		}
		if i < len(y) {
			b = y[i]
		}
		if a != b {
			n += min(chunk, size-int64(i)*chunk)
		}
	}
	return n
}
