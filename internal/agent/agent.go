package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/vault"
)

// Agent replicates the configured machines. Build it with New, run it with
// Run; Status may be called at any time.
type Agent struct {
	cfg       *Config
	be        blob.Backend // the vault's storage, set by New
	password  string
	vaultp    atomic.Pointer[vault.Vault] // nil until opened (Run retries); read by API handlers
	openEvery time.Duration
	groups    []*group
	board     *statusBoard
	now       func() time.Time
	cycled    func(cycleRecord) // called by Run after each cycle (tests)
	// afterCapture runs between the capture instant and the read (tests:
	// writes racing with the read must not reach the point).
	afterCapture func()
	bg           sync.WaitGroup // background prunes; Run waits for them
}

// group is a consistency group: its machines are captured at one instant.
type group struct {
	turn     turn // one cycle or control operation at a time
	name     string
	machines []*machine
	freq     time.Duration // smallest frequency of the members
	appFreq  time.Duration // smallest non-zero app frequency (0: never)
	lastApp  time.Time     // start of the last app-consistent cycle
}

type machine struct {
	cfg       MachineConfig
	slot      int // index in the status board
	trackers  map[string]*tracker
	stateDir  string
	lastPrune time.Time
	pruning   atomic.Bool           // a background prune of this machine runs
	verified  bool                  // trackers checked against the vault since start
	pending   vault.Pending         // uploaded by a failed cycle, not yet indexed
	ctl       ctlState              // stopped/paused through the control API
	lastIDs   map[string][]vault.ID // newest point's chunk IDs per disk (churn.go)
}

// newAgent prepares the machines of cfg on v (nil: not open yet).
func newAgent(cfg *Config, v *vault.Vault) *Agent {
	host, _ := os.Hostname()
	a := &Agent{cfg: cfg, now: time.Now, openEvery: MinFrequency,
		board: &statusBoard{host: host, started: time.Now().UTC()}}
	if v != nil {
		a.vaultp.Store(v)
		a.be, a.board.vault = v.Backend(), v.Backend().Location()
	}
	byName := map[string]*group{}
	for i, mc := range cfg.Machines {
		m := &machine{cfg: mc, slot: i, trackers: map[string]*tracker{}, stateDir: cfg.StateDir}
		for _, d := range mc.Disks {
			m.trackers[d.Name] = newTracker(cfg.StateDir, mc.CloneDir, mc.Name, d.Name)
		}
		a.board.machines = append(a.board.machines, &MachineStatus{Name: mc.Name, Group: mc.Group,
			Provider: mc.Provider, RPOAlertSeconds: mc.Policy.RPOAlert.Seconds(), RPOUnknown: true})
		g := byName[mc.Group]
		if g == nil {
			g = &group{name: mc.Group, freq: mc.Policy.Frequency}
			byName[mc.Group] = g
			a.groups = append(a.groups, g)
		}
		g.add(m)
	}
	return a
}

// tracker returns the disk's tracker; provider qemu learns its disks from
// QEMU, so trackers are made as disks appear.
func (m *machine) tracker(disk string) *tracker {
	t := m.trackers[disk]
	if t == nil {
		t = newTracker(m.stateDir, m.cfg.CloneDir, m.cfg.Name, disk)
		m.trackers[disk] = t
	}
	return t
}

func (g *group) add(m *machine) {
	g.machines = append(g.machines, m)
	g.freq = min(g.freq, m.cfg.Policy.Frequency)
	app := m.cfg.Policy.AppFrequency
	if (m.cfg.Provider == ProviderHooks || m.cfg.Provider == ProviderQemu && m.cfg.GuestAgent != "") && app == 0 {
		// Hooks-only machines, and VMs whose guest agent freezes their
		// filesystems for an instant, are app-consistent every time.
		app = m.cfg.Policy.Frequency
	}
	if app > 0 && (g.appFreq == 0 || app < g.appFreq) {
		g.appFreq = app
	}
}

// Status returns the current report.
func (a *Agent) Status() *Report { return a.board.report(a.now()) }

// Vault returns the open vault (nil while New could not reach it and Run
// has not opened it yet).
func (a *Agent) Vault() *vault.Vault { return a.vaultp.Load() }

// Close releases the vault.
func (a *Agent) Close() error {
	a.bg.Wait()
	var err error
	if a.Vault() != nil {
		err = a.Vault().Close()
	}
	return errors.Join(err, a.be.Close())
}

// Run replicates until ctx ends. It opens the vault if New could not, then
// loads each machine's newest point from it, so after a restart the RPO is
// honest at once and an overdue machine is replicated immediately.
func (a *Agent) Run(ctx context.Context) error {
	if !a.waitVault(ctx) {
		return nil
	}
	var wg sync.WaitGroup
	for _, g := range a.groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.runGroup(ctx, g)
		}()
	}
	wg.Wait()
	a.bg.Wait()
	return nil
}

func (a *Agent) runGroup(ctx context.Context, g *group) {
	go g.flushAhead(ctx)
	next := a.catchUp(ctx, g)
	for {
		wait := time.Until(next)
		select {
		case <-ctx.Done():
			return
		case <-time.After(max(wait, 0)):
		}
		if ctx.Err() != nil {
			return // both cases were ready; do not start a cycle bound to fail
		}
		start := a.now()
		err := a.Cycle(ctx, g.name)
		if a.cycled != nil {
			a.cycled(cycleRecord{group: g.name, start: start, end: a.now(), err: err})
		}
		next = start.Add(g.freq)
	}
}

// cycleRecord is one scheduled cycle as Run ran it, for tests that check
// the schedule against the points it produced.
type cycleRecord struct {
	group      string
	start, end time.Time
	err        error
}

// catchUp reads the newest committed point of each member and returns when
// the first cycle is due: now if any member is overdue or unknown.
func (a *Agent) catchUp(ctx context.Context, g *group) time.Time {
	now := a.now()
	next := now.Add(g.freq)
	for _, m := range g.machines {
		p, err := a.latest(ctx, m)
		switch {
		case err != nil || p == nil:
			next = now
		case p.Time.Add(g.freq).Before(next):
			next = p.Time.Add(g.freq)
		}
	}
	return next
}

// latest loads machine's newest point into its status (nil if none).
func (a *Agent) latest(ctx context.Context, m *machine) (*vault.Point, error) {
	p, err := a.Vault().FindPoint(ctx, m.cfg.Name, "latest")
	if errors.Is(err, vault.ErrNoPoint) {
		a.board.update(m.slot, func(s *MachineStatus) { s.RPOUnknown = false })
		return nil, nil
	}
	if err != nil {
		a.fail(m, fmt.Errorf("reading newest point: %w", err))
		return nil, err
	}
	a.board.update(m.slot, func(s *MachineStatus) { s.LastPoint, s.RPOUnknown = summarize(p), false })
	return p, nil
}

func summarize(p *vault.Point) *PointSummary {
	return &PointSummary{ID: p.ID, Time: p.Time, Consistency: p.Consistency, Provider: p.Provider}
}

func (a *Agent) fail(m *machine, err error) {
	slog.Error("replication failed", "machine", m.cfg.Name, "err", err)
	now := a.now().UTC()
	a.board.update(m.slot, func(s *MachineStatus) {
		s.Failures++
		s.LastError, s.LastErrorTime = err.Error(), &now
	})
}
