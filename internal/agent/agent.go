package agent

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/blobopen"
	"github.com/haven-dr/haven/internal/vault"
)

// Agent replicates the configured machines. Build it with New, run it with
// Run; Status may be called at any time.
type Agent struct {
	cfg    *Config
	vault  *vault.Vault
	groups []*group
	board  *statusBoard
	now    func() time.Time
}

// group is a consistency group: its machines are captured at one instant.
type group struct {
	name     string
	machines []*machine
	freq     time.Duration // smallest frequency of the members
	appFreq  time.Duration // smallest non-zero app frequency (0: never)
	lastApp  time.Time
}

type machine struct {
	cfg       MachineConfig
	slot      int // index in the status board
	trackers  map[string]*tracker
	lastPrune time.Time
	verified  bool          // trackers checked against the vault since start
	pending   vault.Pending // uploaded by a failed cycle, not yet indexed
}

// New opens the vault named by cfg and prepares the machines.
func New(ctx context.Context, cfg *Config) (*Agent, error) {
	pw, err := readPassword(cfg.PasswordFile)
	if err != nil {
		return nil, err
	}
	lim := blob.DefaultLimits()
	lim.UploadBytesPerSec = cfg.UploadLimit()
	be, err := blobopen.Open(ctx, cfg.Vault, lim)
	if err != nil {
		return nil, err
	}
	v, err := vault.Open(ctx, be, pw, vault.Options{Holder: lockHolder()})
	if err != nil {
		be.Close()
		return nil, err
	}
	return newAgent(cfg, v), nil
}

// lockHolder names this agent process in the vault's lock files. It is
// unique per process (host, pid and a random part, as a pid can be reused
// and a container's host name repeated), so a lock left by one agent is
// never taken for another's.
func lockHolder() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("haven-agent@%s/%d/%s", host, os.Getpid(), rand.Text()[:8])
}

func readPassword(file string) (string, error) {
	if file == "" {
		if p := os.Getenv("HAVEN_PASSWORD"); p != "" {
			return p, nil
		}
		return "", fmt.Errorf("%w: no password_file and $HAVEN_PASSWORD is empty", ErrConfig)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

func newAgent(cfg *Config, v *vault.Vault) *Agent {
	host, _ := os.Hostname()
	a := &Agent{cfg: cfg, vault: v, now: time.Now,
		board: &statusBoard{host: host, vault: v.Backend().Location(), started: time.Now().UTC()}}
	byName := map[string]*group{}
	for i, mc := range cfg.Machines {
		m := &machine{cfg: mc, slot: i, trackers: map[string]*tracker{}}
		for _, d := range mc.Disks {
			m.trackers[d.Name] = newTracker(cfg.StateDir, mc.CloneDir, mc.Name, d.Name)
		}
		a.board.machines = append(a.board.machines, &MachineStatus{Name: mc.Name, Group: mc.Group,
			Provider: mc.Provider, RPOAlertSeconds: mc.Policy.RPOAlert.Seconds()})
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

func (g *group) add(m *machine) {
	g.machines = append(g.machines, m)
	g.freq = min(g.freq, m.cfg.Policy.Frequency)
	app := m.cfg.Policy.AppFrequency
	if m.cfg.Provider == ProviderHooks && app == 0 {
		app = m.cfg.Policy.Frequency // hooks-only machines are app-consistent every time
	}
	if app > 0 && (g.appFreq == 0 || app < g.appFreq) {
		g.appFreq = app
	}
}

// Status returns the current report.
func (a *Agent) Status() *Report { return a.board.report(a.now()) }

// Vault returns the open vault.
func (a *Agent) Vault() *vault.Vault { return a.vault }

// Close releases the vault.
func (a *Agent) Close() error {
	be := a.vault.Backend()
	return errors.Join(a.vault.Close(), be.Close())
}

// Run replicates until ctx ends. It first loads each machine's newest point
// from the vault, so after a restart the RPO is honest at once and an
// overdue machine is replicated immediately.
func (a *Agent) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, g := range a.groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.runGroup(ctx, g)
		}()
	}
	wg.Wait()
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
		start := a.now()
		a.Cycle(ctx, g.name)
		next = start.Add(g.freq)
	}
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
	p, err := a.vault.FindPoint(ctx, m.cfg.Name, "latest")
	if errors.Is(err, vault.ErrNoPoint) {
		return nil, nil
	}
	if err != nil {
		a.fail(m, fmt.Errorf("reading newest point: %w", err))
		return nil, err
	}
	a.board.update(m.slot, func(s *MachineStatus) { s.LastPoint = summarize(p) })
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
