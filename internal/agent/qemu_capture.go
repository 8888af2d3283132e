package agent

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/haven-dr/haven/internal/qmp"
	"github.com/haven-dr/haven/internal/vault"
)

// guestSyncTimeout bounds reaching the guest agent: a guest whose agent
// is not running never answers, and the point is then crash-consistent.
const guestSyncTimeout = 10 * time.Second

// openQemu prepares every provider qemu member of the group.
func (c *capture) openQemu(ctx context.Context, g *group, chunkSize int) error {
	for _, m := range g.machines {
		if m.cfg.Provider != ProviderQemu {
			continue
		}
		vm, err := openQemu(ctx, m, m.stateDir)
		if err != nil {
			return fmt.Errorf("machine %s: %w", m.cfg.Name, err)
		}
		c.qemu[m.cfg.Name] = vm
		for disk, why := range vm.fullRead {
			slog.Info("reading the whole disk", "machine", m.cfg.Name, "disk", disk, "why", why)
		}
	}
	return nil
}

// freezeGuests freezes, on an app-consistent cycle, the filesystems of
// every VM with a guest agent and returns the thaw (safe to call twice).
// A guest that cannot be frozen makes the point crash-consistent, tagged.
func (c *capture) freezeGuests(ctx context.Context, g *group, app bool) func() {
	if !app {
		return func() {}
	}
	var frozen []*qmp.Client
	var names []string
	for _, m := range g.machines {
		if m.cfg.Provider != ProviderQemu || m.cfg.GuestAgent == "" {
			continue
		}
		if err := freezeGuest(ctx, m, &frozen); err != nil {
			slog.Warn("guest freeze failed; taking a crash-consistent point", "machine", m.cfg.Name, "err", err)
			c.notes["guest_freeze_error"] = strings.TrimPrefix(c.notes["guest_freeze_error"]+"; ", "; ") + m.cfg.Name + ": " + err.Error()
			c.consistency = vault.CrashConsistent
			continue
		}
		names = append(names, m.cfg.Name)
	}
	return func() {
		for i, ga := range frozen {
			tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			if err := ga.Execute(tctx, "guest-fsfreeze-thaw", nil, nil); err != nil {
				slog.Error("guest thaw failed", "machine", names[i], "err", err)
			}
			cancel()
			ga.Close()
		}
		frozen = nil
	}
}

func freezeGuest(ctx context.Context, m *machine, frozen *[]*qmp.Client) error {
	sctx, cancel := context.WithTimeout(ctx, guestSyncTimeout)
	defer cancel()
	ga, err := qmp.DialGuest(sctx, m.cfg.GuestAgent)
	if err != nil {
		return err
	}
	fctx, cancel := context.WithTimeout(ctx, m.cfg.Hooks.Timeout)
	defer cancel()
	var n int
	if err := ga.Execute(fctx, "guest-fsfreeze-freeze", nil, &n); err != nil {
		// The agent thaws what it froze when a freeze fails; thaw
		// anyway in case it answered late.
		ga.Execute(context.WithoutCancel(ctx), "guest-fsfreeze-thaw", nil, nil)
		ga.Close()
		return err
	}
	*frozen = append(*frozen, ga)
	return nil
}

// exportQemu serves each VM's overlays and makes them the disks to read.
func (c *capture) exportQemu(ctx context.Context) error {
	for name, vm := range c.qemu {
		if err := vm.export(ctx); err != nil {
			return err
		}
		for _, d := range vm.disks {
			c.sources[name] = append(c.sources[name], vault.DiskSource{Name: d.name,
				Reader: countingReader{d.client, &vm.read}, Size: d.size})
		}
	}
	return nil
}

func (c *capture) closeQemu(ctx context.Context) {
	for name, vm := range c.qemu {
		vm.close(ctx)
		delete(c.qemu, name)
	}
}

func (c *capture) readBytes(m *machine) int64 {
	if vm := c.qemu[m.cfg.Name]; vm != nil {
		return vm.read.Load()
	}
	return 0
}

// hints is the vault hint per disk; a disk whose block status cannot be
// had is read whole (and the point says so).
func (vm *qemuVM) hints(ctx context.Context, chunkSize int) map[string]vault.KnownFunc {
	out := map[string]vault.KnownFunc{}
	for _, d := range vm.disks {
		k, err := vm.known(ctx, d, vm.m.tracker(d.name).cache, chunkSize)
		if err != nil {
			slog.Warn("no block status; reading the whole disk", "machine", vm.m.cfg.Name, "disk", d.name, "err", err)
			vm.fullRead[d.name] = "block status failed: " + err.Error()
			continue
		}
		out[d.name] = k
	}
	return out
}

// commit records each disk's IDs with the bitmap that started at this
// point, then lets close drop the old bitmaps.
func (vm *qemuVM) commit(res *vault.AgentSnapshot) {
	for _, d := range vm.disks {
		pd, err := res.Point.Disk(d.name)
		if err != nil {
			continue
		}
		t := vm.m.tracker(d.name)
		dc := &diskCache{Point: res.Point.ID, Size: pd.Size, ChunkSize: res.Point.ChunkSize, IDs: res.IDs[d.name], Bitmap: d.newBitmap}
		if err := t.save(dc); err != nil {
			slog.Warn("change tracking reset; next point reads the whole disk", "machine", vm.m.cfg.Name, "disk", d.name, "err", err)
			t.reset()
		}
	}
	vm.committed = true
}

func (vm *qemuVM) fullReadTag() string {
	var s []string
	for disk, why := range vm.fullRead {
		s = append(s, disk+": "+why)
	}
	slices.Sort(s)
	return strings.Join(s, "; ")
}
