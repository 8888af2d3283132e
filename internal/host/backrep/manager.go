package backrep

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"

	"github.com/haven-dr/haven/internal/atomicfile"
	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/vault"
)

// Manager is a host's replication back of the plans the server ordered,
// one Plan each. Each order is kept in dir (<plan>.json: the machines
// and whether the loop runs), so the host goes on replicating back after
// its own restart without waiting for the server: a recovered machine
// whose points stop while the server is away would let its RPO grow
// with nobody told. The server re-ensures on its own start anyway.
type Manager struct {
	dir      string
	cloneDir string
	v        *vault.Vault
	log      *slog.Logger

	mu    sync.Mutex
	plans map[string]*managed
}

type managed struct {
	order
	plan *Plan
}

// order is what is kept of a plan on disk.
type order struct {
	Replication host.Replication `json:"replication"`
	Running     bool             `json:"running"`
}

// ErrBadOrder: a plan name or machine description the host refuses.
var ErrBadOrder = errors.New("bad replication back order")

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// Open loads the orders kept in dir and starts the loops that ran;
// clones go under cloneDir (on the disks' filesystem). An order that no
// longer loads is logged and left, not fatal: the server's ensure
// replaces it.
func Open(dir, cloneDir string, v *vault.Vault, log *slog.Logger) (*Manager, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	m := &Manager{dir: dir, cloneDir: cloneDir, v: v, log: log, plans: map[string]*managed{}}
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		if err := m.load(name, f); err != nil {
			log.Warn("replication back order not resumed", "plan", name, "err", err)
		}
	}
	return m, nil
}

func (m *Manager) load(name, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var o order
	if err := json.Unmarshal(b, &o); err != nil {
		return err
	}
	p, err := m.build(name, o.Replication)
	if err != nil {
		return err
	}
	m.plans[name] = &managed{order: o, plan: p}
	if o.Running {
		p.Start()
		m.log.Info("replicating back again after a restart", "plan", name)
	}
	return nil
}

func (m *Manager) build(name string, r host.Replication) (*Plan, error) {
	cfg := AgentConfig(r, filepath.Join(m.dir, name), filepath.Join(m.cloneDir, name))
	p, err := New(cfg, m.v)
	if err != nil {
		return nil, fmt.Errorf("%w: plan %s: %v", ErrBadOrder, name, err)
	}
	return p, nil
}

func checkName(kind, s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("%w: %s name %q", ErrBadOrder, kind, s)
	}
	return nil
}

// Ensure holds plan as r describes; the same r again does nothing, a
// different one replaces the plan's agent (its loop stopped, then
// started again if it ran). Disk paths must be the host's own.
func (m *Manager) Ensure(plan string, r host.Replication) error {
	if err := checkRequest(plan, r); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.plans[plan]
	if cur != nil && reflect.DeepEqual(cur.Replication, r) {
		return nil
	}
	p, err := m.build(plan, r)
	if err != nil {
		return err
	}
	o := order{Replication: r}
	if cur != nil {
		cur.plan.Stop()
		o.Running = cur.Running
	}
	if err := m.save(plan, o); err != nil {
		return err
	}
	m.plans[plan] = &managed{order: o, plan: p}
	if o.Running {
		p.Start()
	}
	return nil
}

func checkRequest(plan string, r host.Replication) error {
	if err := checkName("plan", plan); err != nil {
		return err
	}
	if len(r.Machines) == 0 {
		return fmt.Errorf("%w: plan %s: no machines", ErrBadOrder, plan)
	}
	for _, mc := range r.Machines {
		if err := checkName("machine", mc.Name); err != nil {
			return err
		}
		if len(mc.Disks) == 0 {
			return fmt.Errorf("%w: machine %s: no disks", ErrBadOrder, mc.Name)
		}
		for _, d := range mc.Disks {
			if d.Name == "" || !filepath.IsAbs(d.Path) {
				return fmt.Errorf("%w: machine %s: disk %q at %q", ErrBadOrder, mc.Name, d.Name, d.Path)
			}
		}
	}
	return nil
}

func (m *Manager) save(plan string, o order) error {
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(m.dir, plan+".json"), b, 0o600)
}

func (m *Manager) get(plan string) (*managed, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lookup(plan)
}

func (m *Manager) lookup(plan string) (*managed, error) {
	if p := m.plans[plan]; p != nil {
		return p, nil
	}
	return nil, fmt.Errorf("%w: %q", host.ErrNoReplication, plan)
}

// Cycle takes one point of group's machines of plan now.
func (m *Manager) Cycle(ctx context.Context, plan, group string) error {
	p, err := m.get(plan)
	if err != nil {
		return err
	}
	return p.plan.Agent.Cycle(ctx, group)
}

// Snapshot takes a point of machine's group and returns the new IDs.
func (m *Manager) Snapshot(ctx context.Context, plan, machine string) (map[string]string, error) {
	p, err := m.get(plan)
	if err != nil {
		return nil, err
	}
	return p.plan.Agent.SnapshotMachine(ctx, machine)
}

// Start starts plan's loop, kept across the host's restart.
func (m *Manager) Start(plan string) error {
	return m.setRunning(plan, true)
}

// Stop stops plan's loop (written down first, so a restart in between
// does not start it again).
func (m *Manager) Stop(plan string) error {
	return m.setRunning(plan, false)
}

// setRunning holds the lock throughout, so a drop in between cannot
// leave the order written again.
func (m *Manager) setRunning(plan string, run bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.lookup(plan)
	if err != nil {
		return err
	}
	if p.Running != run {
		o := p.order
		o.Running = run
		if err := m.save(plan, o); err != nil {
			return err
		}
		p.Running = run
	}
	if run {
		p.plan.Start()
	} else {
		p.plan.Stop()
	}
	return nil
}

// Drop stops plan's loop and forgets it: its order, change tracking and
// clones. An unknown plan is already dropped.
func (m *Manager) Drop(plan string) error {
	if err := checkName("plan", plan); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.plans[plan]; p != nil {
		p.plan.Stop()
	}
	if err := os.Remove(filepath.Join(m.dir, plan+".json")); err != nil && !os.IsNotExist(err) {
		return err
	}
	delete(m.plans, plan)
	return errors.Join(os.RemoveAll(filepath.Join(m.dir, plan)), os.RemoveAll(filepath.Join(m.cloneDir, plan)))
}

// Running tells whether plan's loop runs (false for an unknown plan).
func (m *Manager) Running(plan string) bool {
	p, err := m.get(plan)
	return err == nil && p.plan.Running()
}

// Close stops every loop where it is; the orders stay for the next Open.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.plans {
		p.plan.Stop()
	}
}
