package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"time"

	"github.com/haven-dr/haven/internal/vault"
)

// ErrNoGroup is returned by Cycle for an unknown consistency group.
var ErrNoGroup = errors.New("no such consistency group")

// snapshotLockWait is how long a cycle waits for a prune holding the vault.
const snapshotLockWait = time.Minute

// cycleNow takes one recovery point of every machine in the consistency
// group (all captured at one instant), then prunes if a member's retention
// is due. The caller holds the group's turn (Cycle, snapshotGroup).
func (a *Agent) cycleNow(ctx context.Context, groupName string) error {
	g := a.group(groupName)
	if g == nil {
		return fmt.Errorf("%w: %q", ErrNoGroup, groupName)
	}
	if a.Vault() == nil {
		return errors.New("the vault is not open yet")
	}
	for _, m := range g.machines {
		a.verifyTrackers(ctx, m)
	}
	// Cycle starts, not capture instants, are compared: Run starts cycles
	// one frequency apart, while the capture comes after the hooks, and
	// measuring from it pushed every other app point one cycle late.
	began := a.now()
	// Half a period of slack: cycles are one frequency apart by schedule,
	// but each starts a little after it is due (the turn lock, tracker
	// checks), so the measured gap may fall a hair short of appFreq; the
	// nearest cycle to the due time takes the app point.
	app := g.appFreq > 0 && !began.Before(g.lastApp.Add(g.appFreq-g.freq/2))
	c, err := g.takeCapture(ctx, app, a.Vault().Config().ChunkSize)
	if err != nil {
		for _, m := range g.machines {
			a.fail(m, fmt.Errorf("capture: %w", err))
		}
		return err
	}
	if a.afterCapture != nil {
		a.afterCapture()
	}
	if c.consistency == vault.CrashConsistent && a.readWhileRunning(g) {
		// Disks read while in use with no consistency provider are
		// not crash-consistent: say so (the point's tag explains).
		c.consistency = vault.Inconsistent
	}
	var errs []error
	for _, m := range g.machines {
		if err := a.replicate(ctx, m, c); err != nil {
			a.fail(m, err)
			errs = append(errs, err)
		}
	}
	c.release()
	c.removeClones() // what is left failed; the good ones became baselines
	c.closeQemu(ctx)
	if c.consistency == vault.AppConsistent && len(errs) == 0 {
		g.lastApp = began
	}
	for _, m := range g.machines {
		a.maybePrune(ctx, m)
	}
	return errors.Join(errs...)
}

func (a *Agent) group(name string) *group {
	for _, g := range a.groups {
		if g.name == name {
			return g
		}
	}
	return nil
}

// verifyTrackers checks the change-tracking caches against the machine's
// newest point once after start; a cache that does not match is dropped.
func (a *Agent) verifyTrackers(ctx context.Context, m *machine) {
	if m.verified {
		return
	}
	p, err := a.latest(ctx, m)
	if err != nil {
		return // vault unreachable: no hints until it can be checked
	}
	if p != nil && m.cfg.Provider == ProviderQemu {
		for _, d := range p.Disks { // disks come from QEMU: track those of the newest point
			m.tracker(d.Name)
		}
	}
	for name, t := range m.trackers {
		if !t.verify(a.Vault(), p, name) && (m.cfg.Provider == ProviderReflink || m.cfg.Provider == ProviderQemu) {
			slog.Info("change-tracking cache absent or stale; next point reads the whole disk", "machine", m.cfg.Name, "disk", name)
		}
	}
	m.verified = true
}

// replicate stores one machine's part of a capture as a recovery point.
func (a *Agent) replicate(ctx context.Context, m *machine, c *capture) error {
	t0 := time.Now()
	known := a.hints(m, c)
	if vm := c.qemu[m.cfg.Name]; vm != nil {
		known = vm.hints(ctx, a.Vault().Config().ChunkSize)
	}
	tracking := time.Since(t0)
	opt := vault.SnapshotOptions{Machine: m.cfg.Name, Disks: c.sources[m.cfg.Name], Time: c.time,
		Consistency: c.consistency, Provider: m.cfg.Provider, Group: m.cfg.Group,
		Tags: a.pointTags(m, c), LockWait: snapshotLockWait, Previous: m.previous()}
	start := a.now()
	res, err := a.Vault().SnapshotPending(ctx, opt, known, &m.pending)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	m.lastIDs = res.IDs
	if vm := c.qemu[m.cfg.Name]; vm != nil {
		vm.commit(res)
	}
	for _, d := range res.Point.Disks {
		if clone, ok := c.clones[m.cfg.Name][d.Name]; ok {
			dc := &diskCache{Point: res.Point.ID, Size: d.Size, ChunkSize: res.Point.ChunkSize, IDs: res.IDs[d.Name]}
			if err := m.trackers[d.Name].commit(clone, dc); err != nil {
				slog.Warn("change tracking reset; next point reads the whole disk", "machine", m.cfg.Name, "disk", d.Name, "err", err)
			}
		}
	}
	a.record(m, res, start, known != nil, c.took, tracking, c.readBytes(m))
	return nil
}

// hints builds change-tracking hints for the reflink clones of a capture.
func (a *Agent) hints(m *machine, c *capture) map[string]vault.KnownFunc {
	var known map[string]vault.KnownFunc
	for disk, clone := range c.clones[m.cfg.Name] {
		fi, err := os.Stat(clone)
		if err != nil {
			continue
		}
		k, err := m.trackers[disk].known(clone, fi.Size())
		if err != nil {
			slog.Warn("change tracking unavailable; reading the whole disk", "machine", m.cfg.Name, "disk", disk, "err", err)
		}
		if k != nil {
			if known == nil {
				known = map[string]vault.KnownFunc{}
			}
			known[disk] = k
		}
	}
	return known
}

func (a *Agent) pointTags(m *machine, c *capture) map[string]string {
	tags := maps.Clone(c.notes)
	if m.cfg.Provider == ProviderNone {
		tags["warning"] = "provider none: disks were read while in use; the point may be inconsistent"
	}
	if m.cfg.Provider == ProviderReflink && (len(c.clones) > 1 || len(m.cfg.Disks) > 1) {
		if len(m.cfg.Freeze) == 0 && c.consistency != vault.AppConsistent {
			tags["note"] = "several disks cloned one after another without a freeze"
		}
	}
	if vm := c.qemu[m.cfg.Name]; vm != nil && len(vm.fullRead) > 0 {
		tags["full_read"] = vm.fullReadTag()
	}
	if len(tags) == 0 {
		return nil
	}
	return tags
}

// record updates the status after a committed point.
func (a *Agent) record(m *machine, res *vault.AgentSnapshot, start time.Time, incremental bool, capture, tracking time.Duration, read int64) {
	st, p := res.Stats, res.Point
	slog.Info("recovery point", "machine", m.cfg.Name, "point", p.ID, "consistency", p.Consistency,
		"new_bytes", st.NewBytes, "stored_bytes", st.StoredBytes, "known_chunks", res.Known, "seconds", st.Duration.Seconds(),
		"capture_seconds", capture.Seconds(), "tracking_seconds", tracking.Seconds())
	a.board.update(m.slot, func(s *MachineStatus) {
		if s.LastPoint != nil {
			if dt := p.Time.Sub(s.LastPoint.Time).Seconds(); dt > 0 {
				s.ChurnBPS = float64(st.NewBytes) / dt
			}
		}
		s.LastPoint, s.RPOUnknown = summarize(p), false
		s.Points++
		s.UploadedBytes += st.StoredBytes
		s.LastCycle = &CycleStats{Start: start.UTC(), Seconds: st.Duration.Seconds(), CaptureSeconds: capture.Seconds(),
			TrackingSeconds: tracking.Seconds(), DiskBytes: st.Bytes,
			KnownChunks: res.Known, NewBytes: st.NewBytes, StoredBytes: st.StoredBytes, Incremental: incremental, ReadBytes: read}
	})
}

// maybePrune applies the machine's retention when it is due.
func (a *Agent) maybePrune(ctx context.Context, m *machine) {
	pol := m.cfg.Policy
	if pol.Retention.Empty() || a.now().Sub(m.lastPrune) < pol.PruneEvery || !m.pruning.CompareAndSwap(false, true) {
		return
	}
	m.lastPrune = a.now()
	// In the background: snapshots never wait for a prune (two-phase
	// deletion), so neither this group's next point nor another's is
	// pushed back by it. A prune that fails is tried at a later cycle.
	v := a.Vault()
	a.bg.Add(1)
	go func() {
		defer a.bg.Done()
		defer m.pruning.Store(false)
		rep, err := v.Prune(ctx, vault.PruneOptions{Retention: pol.Retention, Machine: m.cfg.Name,
			RepackUnused: vault.DefaultRepackUnused})
		if err != nil {
			slog.Warn("prune failed", "machine", m.cfg.Name, "err", err)
			return
		}
		slog.Info("pruned", "machine", m.cfg.Name, "forgotten", rep.Forgotten, "deleted_packs", rep.DeletedPacks, "deferred", rep.Deferred)
	}()
}

// readWhileRunning: some member has provider none and is not stopped
// through the control API (a stopped machine's disks are quiet).
func (a *Agent) readWhileRunning(g *group) bool {
	for _, m := range g.machines {
		if m.cfg.Provider == ProviderNone {
			if _, stopped := a.ctlOf(m); !stopped {
				return true
			}
		}
	}
	return false
}
