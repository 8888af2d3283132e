package orchtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/haven-dr/haven/internal/agent"
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/vault"
)

// Mode is how a fake agent answers.
type Mode int

const (
	Answering Mode = iota // works
	Dead                  // every call fails as unreachable (the primary is down)
	Refusing              // it answers, with an error (a 503)
)

// DiskSize is the size of each fake primary disk: small, so a snapshot
// or restore takes milliseconds, and a few chunks of the default size.
const DiskSize = 64 << 10

// AgentClient has the methods of orchestrator.AgentClient, so a value of
// it converts to that interface (orchtest cannot import the
// orchestrator). Wire it with:
//
//	Agents: func(a protection.Agent) (AgentClient, error) { return agents.Dial(a) }
type AgentClient interface {
	Status(ctx context.Context) (*agent.Report, error)
	Stop(ctx context.Context, machine string) error
	Start(ctx context.Context, machine string) error
	Snapshot(ctx context.Context, machine string) (map[string]string, error)
	Restore(ctx context.Context, machine string, req agent.RestoreRequest) (*agent.RestoreResult, error)
}

// Agents are the primary sites' agents of a config. Each machine with an
// agent has real disk files under dir, snapshotted into and restored from
// the real vault, and a running state its agent's Stop and Start change.
type Agents struct {
	Faults
	v   *vault.Vault
	cfg *protection.Config
	dir string

	mu           sync.Mutex
	modes        map[string]Mode
	running      map[string]bool
	restoreFails map[string]int
}

// NewAgents makes the agents of cfg's machines with disks under dir
// (random ones where none exist yet), every machine running. Call Seed to
// give each a first point.
func NewAgents(v *vault.Vault, cfg *protection.Config, dir string) (*Agents, error) {
	a := &Agents{v: v, cfg: cfg, dir: dir, modes: map[string]Mode{}, running: map[string]bool{}}
	for _, m := range cfg.Machines {
		if m.Agent == "" {
			continue
		}
		a.running[m.Name] = true
		for _, d := range m.Disks {
			p := a.DiskPath(m.Name, d.Name)
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				return nil, err
			}
			if _, err := os.Stat(p); err == nil {
				continue // a copied world's disks
			}
			if err := os.WriteFile(p, randBytes(DiskSize), 0o600); err != nil {
				return nil, err
			}
		}
	}
	return a, nil
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// DiskPath is the file holding a primary machine's disk.
func (a *Agents) DiskPath(m, disk string) string {
	return filepath.Join(a.dir, m, disk+".img")
}

// Write puts data at off of a primary disk (the primary taking writes).
func (a *Agents) Write(m, disk string, off int64, data []byte) error {
	f, err := os.OpenFile(a.DiskPath(m, disk), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteAt(data, off)
	return err
}

// Seed takes one point of every group of the config.
func (a *Agents) Seed(ctx context.Context) error {
	seen := map[string]bool{}
	for _, m := range a.cfg.Machines {
		if m.Agent == "" || seen[m.GroupOf()] {
			continue
		}
		seen[m.GroupOf()] = true
		if _, err := a.snapshotGroup(ctx, m.Name, nil); err != nil {
			return err
		}
	}
	return nil
}

// SetMode sets how the agent named name answers.
func (a *Agents) SetMode(name string, m Mode) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.modes[name] = m
}

// Running reports whether the primary machine runs.
func (a *Agents) Running(m string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.running[m]
}

// SetRunning sets a primary machine's state behind the agent's back.
func (a *Agents) SetRunning(m string, on bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.running[m] = on
}

// RunningSet returns every primary machine's state.
func (a *Agents) RunningSet() map[string]bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]bool{}
	for k, v := range a.running {
		out[k] = v
	}
	return out
}

// Dial returns the client of agent pa; it matches
// orchestrator.AgentDialer once wrapped (see AgentClient).
func (a *Agents) Dial(pa protection.Agent) (AgentClient, error) {
	return &agentClient{a: a, name: pa.Name}, nil
}

type agentClient struct {
	a    *Agents
	name string
}

// enter records the call, applies the agent's mode and checks that the
// machine is this agent's.
func (c *agentClient) enter(ctx context.Context, method, m, point string) (func(error) error, error) {
	done, err := c.a.enter(ctx, Call{Method: "Agent." + method, Agent: c.name, Machine: m, Point: point})
	if err != nil {
		return nil, err
	}
	c.a.mu.Lock()
	mode := c.a.modes[c.name]
	c.a.mu.Unlock()
	switch mode {
	case Dead:
		return nil, done(fmt.Errorf("agent %s unreachable: connection refused", c.name))
	case Refusing:
		return nil, done(fmt.Errorf("agent %s: %s: 503 Service Unavailable", c.name, method))
	}
	if m != "" {
		if mc := c.a.cfg.Machine(m); mc == nil || mc.Agent != c.name {
			return nil, done(fmt.Errorf("agent %s: %s %s: 404 Not Found", c.name, method, m))
		}
	}
	return done, nil
}

func (c *agentClient) Status(ctx context.Context) (*agent.Report, error) {
	done, err := c.enter(ctx, "Status", "", "")
	if err != nil {
		return nil, err
	}
	r := &agent.Report{Version: 1, Host: c.name, Time: time.Now().UTC()}
	c.a.mu.Lock()
	for _, m := range c.a.cfg.Machines {
		if m.Agent == c.name {
			r.Machines = append(r.Machines, agent.MachineStatus{Name: m.Name, Group: m.GroupOf(),
				Provider: agent.ProviderNone, Paused: !c.a.running[m.Name]})
		}
	}
	c.a.mu.Unlock()
	return r, done(nil)
}

func (c *agentClient) Stop(ctx context.Context, m string) error {
	done, err := c.enter(ctx, "Stop", m, "")
	if err != nil {
		return err
	}
	c.a.SetRunning(m, false)
	return done(nil)
}

func (c *agentClient) Start(ctx context.Context, m string) error {
	done, err := c.enter(ctx, "Start", m, "")
	if err != nil {
		return err
	}
	c.a.SetRunning(m, true)
	return done(nil)
}

// Snapshot takes a point of the machine's whole group at one instant, as
// the agent does, and returns every member's.
func (c *agentClient) Snapshot(ctx context.Context, m string) (map[string]string, error) {
	done, err := c.enter(ctx, "Snapshot", m, "")
	if err != nil {
		return nil, err
	}
	ids, err := c.a.snapshotGroup(ctx, m, nil)
	return ids, done(err)
}

func (a *Agents) snapshotGroup(ctx context.Context, m string, tags map[string]string) (map[string]string, error) {
	g := a.cfg.Machine(m).GroupOf()
	now := time.Now().UTC()
	ids := map[string]string{}
	for _, mc := range a.cfg.Machines {
		if mc.GroupOf() != g || mc.Agent == "" {
			continue
		}
		p, err := a.snapshot(ctx, mc.Name, now, tags)
		if err != nil {
			return nil, err
		}
		ids[mc.Name] = p.ID
	}
	return ids, nil
}

// SnapshotAt is the agent taking a point of machine m on its own
// schedule, with its clock at at (ahead of the server's, say).
func (a *Agents) SnapshotAt(ctx context.Context, m string, at time.Time) (*vault.Point, error) {
	return a.snapshot(ctx, m, at, nil)
}

func (a *Agents) snapshot(ctx context.Context, m string, at time.Time, tags map[string]string) (*vault.Point, error) {
	mc := a.cfg.Machine(m)
	opt := vault.SnapshotOptions{Machine: m, Time: at, Consistency: vault.CrashConsistent,
		Provider: agent.ProviderNone, Group: mc.GroupOf(), Tags: tags}
	for _, d := range mc.Disks {
		opt.Disks = append(opt.Disks, vault.DiskSource{Name: d.Name, Path: a.DiskPath(m, d.Name)})
	}
	p, _, err := a.v.Snapshot(ctx, opt)
	if err != nil {
		return nil, fmt.Errorf("fake agent: snapshot %s: %w", m, err)
	}
	return p, nil
}

// Restore writes req.Point onto the machine's disk files in place, after
// keeping their state as a point tagged agent.PreservedTag when
// req.Preserve, as the agent does: once per req.PreserveKey, and named in
// the answer of a restore that fails after it.
func (c *agentClient) Restore(ctx context.Context, m string, req agent.RestoreRequest) (*agent.RestoreResult, error) {
	done, err := c.enter(ctx, "Restore", m, req.Point)
	if err != nil {
		return nil, err
	}
	if c.a.Running(m) {
		return nil, done(fmt.Errorf("agent %s: restore %s: 409 Conflict: the machine runs; stop it first", c.name, m))
	}
	res := &agent.RestoreResult{}
	if req.Preserve {
		if res.Preserved, err = c.a.preserve(ctx, m, req); err != nil {
			return nil, done(err)
		}
	}
	if err := c.a.restoreFault(m); err != nil {
		return res, done(fmt.Errorf("agent %s: restore %s: %w", c.name, m, err))
	}
	for _, d := range c.a.cfg.Machine(m).Disks {
		st, err := c.a.v.Restore(ctx, vault.RestoreOptions{Machine: m, Point: req.Point, Disk: d.Name, Target: c.a.DiskPath(m, d.Name)})
		if err != nil {
			return res, done(fmt.Errorf("agent %s: restore %s/%s: %w", c.name, m, d.Name, err))
		}
		res.Disks = append(res.Disks, agent.DiskRestoreResult{Disk: d.Name, Size: st.Size,
			BytesWritten: st.BytesWritten, Differing: st.ChunksWritten * int64(c.a.v.Config().ChunkSize)})
	}
	return res, done(nil)
}

// preserve keeps the machine's disks as a point, or finds the one kept
// under req.PreserveKey.
func (a *Agents) preserve(ctx context.Context, m string, req agent.RestoreRequest) (string, error) {
	tags := map[string]string{agent.PreservedTag: "true", "haven.preserved.before_restore_of": req.Point}
	if req.PreserveKey != "" {
		ps, err := a.v.Points(ctx, m)
		if err != nil {
			return "", err
		}
		for _, p := range ps {
			if p.Preserved() && p.Tags["haven.preserved.key"] == req.PreserveKey {
				return p.ID, nil
			}
		}
		tags["haven.preserved.key"] = req.PreserveKey
	}
	p, err := a.snapshot(ctx, m, time.Now().UTC(), tags)
	if err != nil {
		return "", err
	}
	return p.ID, nil
}

// FailRestoreAfterPreserve makes the next restores of machine m fail
// after its disks' state was preserved and half of a disk was written
// (the storage went away mid-restore), n times.
func (a *Agents) FailRestoreAfterPreserve(m string, n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.restoreFails == nil {
		a.restoreFails = map[string]int{}
	}
	a.restoreFails[m] = n
}

func (a *Agents) restoreFault(m string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.restoreFails[m] == 0 {
		return nil
	}
	a.restoreFails[m]--
	for _, d := range a.cfg.Machine(m).Disks {
		if f, err := os.OpenFile(a.DiskPath(m, d.Name), os.O_WRONLY, 0); err == nil {
			f.WriteAt(randBytes(DiskSize/2), 0)
			f.Close()
		}
	}
	return fmt.Errorf("%w: storage gone mid-restore (the disks are half written)", ErrInjected)
}
