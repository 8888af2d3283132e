package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/haven-dr/haven/internal/agent/consistency"
	"github.com/haven-dr/haven/internal/vault"
)

// capture is one consistency group frozen at one instant: what to read for
// each machine, and what to undo once it has been read.
type capture struct {
	time        time.Time
	took        time.Duration // hooks, freeze and clones
	consistency string
	sources     map[string][]vault.DiskSource // machine -> disks to read
	clones      map[string]map[string]string  // machine -> disk -> clone path
	release     func()                        // thaw and post hooks, if still pending
	notes       map[string]string             // point tags (warnings)
	qemu        map[string]*qemuVM            // machine -> fleecing session (provider qemu)
}

// takeCapture runs pre hooks (when app), freezes, clones (reflink) and
// returns. With only reflink machines the filesystems are thawed and the
// post hooks run before returning, so the application pauses only for the
// clones; other providers stay frozen until release, after the read.
//
// Provider qemu VMs are prepared first (overlays, trust), their guests
// frozen through the guest agent only around the fleecing transaction, and
// their disks exported over NBD after the thaw.
func (g *group) takeCapture(ctx context.Context, app bool, chunkSize int) (*capture, error) {
	c := &capture{consistency: vault.CrashConsistent, sources: map[string][]vault.DiskSource{},
		clones: map[string]map[string]string{}, notes: map[string]string{}, release: func() {}, qemu: map[string]*qemuVM{}}
	post := func() {}
	if app {
		var err error
		if post, err = g.preHooks(ctx); err != nil {
			slog.Warn("pre hook failed; taking a crash-consistent point", "group", g.name, "err", err)
			c.notes["hook_error"] = err.Error()
		} else {
			c.consistency = vault.AppConsistent
		}
	}
	fz, err := consistency.Freeze(g.freezeMounts())
	if err != nil {
		post()
		return nil, err
	}
	thawGuests := func() {}
	fail := func(err error) (*capture, error) {
		thawGuests()
		fz.Thaw()
		post()
		c.removeClones()
		c.closeQemu(ctx)
		return nil, err
	}
	if err := c.openQemu(ctx, g, chunkSize); err != nil {
		return fail(err)
	}
	thawGuests = c.freezeGuests(ctx, g, app)
	c.time = time.Now()
	allReflink := true // or qemu: the instant is taken, nothing needs to stay frozen
	for _, m := range g.machines {
		if err := c.addMachine(ctx, m, chunkSize); err != nil {
			return fail(err)
		}
		allReflink = allReflink && (m.cfg.Provider == ProviderReflink || m.cfg.Provider == ProviderQemu)
	}
	thawGuests()
	if err := c.exportQemu(ctx); err != nil {
		return fail(err)
	}
	c.release = func() {
		if err := fz.Thaw(); err != nil {
			slog.Error("thaw", "group", g.name, "err", err)
		}
		post()
	}
	if allReflink {
		c.release()
		c.release = func() {}
	}
	c.took = time.Since(c.time)
	return c, nil
}

func (c *capture) addMachine(ctx context.Context, m *machine, chunkSize int) error {
	if vm := c.qemu[m.cfg.Name]; vm != nil {
		return vm.begin(ctx, chunkSize)
	}
	c.clones[m.cfg.Name] = map[string]string{}
	for _, d := range m.cfg.Disks {
		src := vault.DiskSource{Name: d.Name, Path: d.Path}
		if m.cfg.Provider == ProviderReflink {
			dst := m.trackers[d.Name].newClone()
			if err := os.MkdirAll(m.cfg.CloneDir, 0o700); err != nil {
				return err
			}
			if err := consistency.Clone(d.Path, dst); err != nil {
				return fmt.Errorf("machine %s: %w", m.cfg.Name, err)
			}
			c.clones[m.cfg.Name][d.Name] = dst
			src.Path = dst
		}
		c.sources[m.cfg.Name] = append(c.sources[m.cfg.Name], src)
	}
	return nil
}

func (c *capture) removeClones() {
	for _, disks := range c.clones {
		for _, p := range disks {
			os.Remove(p)
		}
	}
}

// preHooks runs every member's pre hook; if one fails, the post hooks of
// those that ran are run at once. The returned func runs the post hooks.
func (g *group) preHooks(ctx context.Context) (func(), error) {
	var ran []*machine
	post := func() {
		for _, m := range ran {
			if err := consistency.RunHook(context.WithoutCancel(ctx), m.cfg.Hooks.Post, m.cfg.Hooks.Timeout); err != nil {
				slog.Warn("post hook failed", "machine", m.cfg.Name, "err", err)
			}
		}
	}
	for _, m := range g.machines {
		if err := consistency.RunHook(ctx, m.cfg.Hooks.Pre, m.cfg.Hooks.Timeout); err != nil {
			post()
			return func() {}, errors.Join(fmt.Errorf("machine %s", m.cfg.Name), err)
		}
		ran = append(ran, m)
	}
	return post, nil
}

func (g *group) freezeMounts() []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range g.machines {
		for _, mp := range m.cfg.Freeze {
			if !seen[mp] {
				seen[mp] = true
				out = append(out, mp)
			}
		}
	}
	return out
}
