// Package backrep is replication back (reprotect): a plan's recovered
// machines replicated into the vault with the agent's own code, where
// their disks are. The server runs it in process for the machines of
// its own host; a `haven host` runs it for the machines it holds, on the
// server's orders (Manager, served by package hostapi).
package backrep

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/haven-dr/haven/internal/agent"
	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/vault"
	"golang.org/x/sys/unix"
)

// Plan replicates some recovered machines of one plan back: one agent,
// its periodic loop started and stopped on order.
type Plan struct {
	Agent *agent.Agent
	// mu orders start and stop: a resumed failback stops replication
	// back while the server's start may be resuming it.
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// New builds the agent of cfg over v (the caller's open vault).
func New(cfg *agent.Config, v *vault.Vault) (*Plan, error) {
	a, err := agent.NewWithVault(cfg, v)
	if err != nil {
		return nil, err
	}
	return &Plan{Agent: a}, nil
}

// AgentConfig describes r's machines to the agent code: change tracking
// under stateDir, reflink clones under cloneDir/<machine> (which must be
// on the disks' filesystem for clones to be cheap; where files cannot
// be cloned the disks are read as they are, which is exact only with the
// machines stopped, as the failback's final pass has them).
func AgentConfig(r host.Replication, stateDir, cloneDir string) *agent.Config {
	provider := agent.ProviderNone
	if reflinks(cloneDir) {
		provider = agent.ProviderReflink
	}
	cfg := &agent.Config{Vault: "server", StateDir: stateDir, Listen: "127.0.0.1:0"}
	for _, m := range r.Machines {
		amc := agent.MachineConfig{Name: m.Name, Group: m.Group, Provider: provider,
			CloneDir: filepath.Join(cloneDir, m.Name),
			Policy:   agent.Policy{Frequency: agent.MinFrequency, RPOAlert: 2 * time.Minute}}
		for _, d := range m.Disks {
			amc.Disks = append(amc.Disks, agent.DiskConfig{Name: d.Name, Path: d.Path})
		}
		os.MkdirAll(amc.CloneDir, 0o700)
		cfg.Machines = append(cfg.Machines, amc)
	}
	return cfg
}

// reflinks reports whether files in dir can be cloned (FICLONE).
func reflinks(dir string) bool {
	os.MkdirAll(dir, 0o700)
	a, err := os.CreateTemp(dir, ".hvprobe")
	if err != nil {
		return false
	}
	defer os.Remove(a.Name())
	defer a.Close()
	a.Write([]byte("x"))
	b, err := os.CreateTemp(dir, ".hvprobe")
	if err != nil {
		return false
	}
	defer os.Remove(b.Name())
	defer b.Close()
	return unix.IoctlFileClone(int(b.Fd()), int(a.Fd())) == nil
}

// Start runs the agent's periodic loop unless it runs.
func (p *Plan) Start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan struct{})
	go func() {
		defer close(p.done)
		p.Agent.Run(ctx)
	}()
}

// Stop ends the loop and waits for a cycle in flight.
func (p *Plan) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cancel != nil {
		p.cancel()
		<-p.done
		p.cancel = nil
	}
}

// Running tells whether the loop runs.
func (p *Plan) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cancel != nil
}
