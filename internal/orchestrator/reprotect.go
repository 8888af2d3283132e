package orchestrator

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/haven-dr/haven/internal/store"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/haven-dr/haven/internal/agent"
	"github.com/haven-dr/haven/internal/protection"
	"golang.org/x/sys/unix"
)

// replicator replicates a plan's recovered machines back into the vault
// (reprotect) with the agent's own code.
type replicator struct {
	agent *agent.Agent
	// mu orders start and stop: a resumed failback stops replication
	// back while the server's start may be resuming it.
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

type replicators struct {
	mu sync.Mutex
	m  map[string]*replicator
}

// reprotectConfig describes the recovered machines to the agent code:
// their disks are the failover's disk files at the recovery site.
func (r *run) reprotectConfig(plan *protection.Plan) *agent.Config {
	dir := filepath.Join(r.o.DiskDir, r.out.DiskJob)
	provider := agent.ProviderNone
	if reflinks(dir) {
		provider = agent.ProviderReflink
	}
	cfg := &agent.Config{Vault: "server", StateDir: filepath.Join(dir, ".agent"), Listen: "127.0.0.1:0"}
	for _, m := range machinesOf(plan) {
		mc := r.cfg.Machine(m)
		amc := agent.MachineConfig{Name: m, Group: mc.GroupOf(), Provider: provider,
			CloneDir: filepath.Join(dir, ".clones", m),
			Policy:   agent.Policy{Frequency: agent.MinFrequency, RPOAlert: 2 * time.Minute}}
		for _, d := range mc.Disks {
			amc.Disks = append(amc.Disks, agent.DiskConfig{Name: d.Name, Path: r.diskPath(m, d.Name)})
		}
		os.MkdirAll(amc.CloneDir, 0o700)
		cfg.Machines = append(cfg.Machines, amc)
	}
	return cfg
}

// disksHere refuses replication back of machines that run on a remote
// host: the replicating agent runs in the server and reads the failover's
// disk files from this machine's disk directory, where a `haven host`
// on another machine keeps none of them. Nothing is done before it.
func (r *run) disksHere(ctx context.Context, plan *protection.Plan) error {
	for _, m := range machinesOf(plan) {
		h, err := r.hostOf(ctx, m)
		if err != nil {
			return err
		}
		if h.Remote {
			return fmt.Errorf("%s runs on recovery host %s, a haven host on another machine: replication back (reprotect, failback) reads the recovered disks on the server's own machine and cannot reach them there yet (docs/orchestrator.md)", m, h.Name)
		}
	}
	return nil
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

func (o *Orchestrator) replicatorFor(plan string) *replicator {
	o.reps.mu.Lock()
	defer o.reps.mu.Unlock()
	return o.reps.m[plan]
}

// dropReplicator stops replication back of plan and forgets it.
func (o *Orchestrator) dropReplicator(plan string) {
	if rep := o.replicatorFor(plan); rep != nil {
		rep.stop()
		o.reps.mu.Lock()
		delete(o.reps.m, plan)
		o.reps.mu.Unlock()
	}
}

// ensureReplicator builds the plan's agent if this process has none.
func (r *run) ensureReplicator(plan *protection.Plan) (*replicator, error) {
	o := r.o
	o.reps.mu.Lock()
	defer o.reps.mu.Unlock()
	if o.reps.m == nil {
		o.reps.m = map[string]*replicator{}
	}
	if rep := o.reps.m[plan.Name]; rep != nil {
		return rep, nil
	}
	a, err := agent.NewWithVault(r.reprotectConfig(plan), o.Vault)
	if err != nil {
		return nil, err
	}
	rep := &replicator{agent: a}
	o.reps.m[plan.Name] = rep
	return rep, nil
}

func (rep *replicator) start() {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if rep.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	rep.cancel, rep.done = cancel, make(chan struct{})
	go func() {
		defer close(rep.done)
		rep.agent.Run(ctx)
	}()
}

func (rep *replicator) stop() {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if rep.cancel != nil {
		rep.cancel()
		<-rep.done
		rep.cancel = nil
	}
}

func groupsOf(cfg *protection.Config, plan *protection.Plan) []string {
	var out []string
	for _, m := range machinesOf(plan) {
		if g := cfg.Machine(m).GroupOf(); !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out
}

func (r *run) reprotectSteps(plan *protection.Plan) []step {
	return []step{
		{"first point back", func(ctx context.Context, r *run) error {
			if err := r.disksHere(ctx, plan); err != nil {
				return err
			}
			if err := r.intend(ctx, Resource{Kind: ResReplicating, Name: plan.Name}); err != nil {
				return err
			}
			rep, err := r.ensureReplicator(plan)
			if err != nil {
				return err
			}
			for _, g := range groupsOf(r.cfg, plan) {
				if err := rep.agent.Cycle(ctx, g); err != nil {
					return fmt.Errorf("replicating group %s back: %w", g, err)
				}
			}
			r.logf("info", "the recovered machines' disks are in the vault; replication back runs every %s", agent.MinFrequency)
			return nil
		}},
		{"finish", func(ctx context.Context, r *run) error {
			rep, err := r.ensureReplicator(plan)
			if err != nil {
				return err
			}
			rep.start()
			return r.setPhase(ctx, PhaseReprotected, r.out.From.Failover)
		}},
	}
}

// failbackStoppedReplication: an unfinished failback of plan took
// replication back's final pass; it (or its cancel) decides when
// replication back runs again, not the server's start.
func (o *Orchestrator) failbackStoppedReplication(ctx context.Context, plan string) bool {
	jobs, err := o.Store.Jobs(ctx, store.JobFilter{Plan: plan, Active: true})
	if err != nil {
		return false
	}
	for _, j := range jobs {
		if j.Type != Failback {
			continue
		}
		var out Outputs
		if json.Unmarshal(j.Outputs, &out) == nil && slices.ContainsFunc(out.Resources, func(x Resource) bool {
			return x.Kind == ResReplicationStopped
		}) {
			return true
		}
	}
	return false
}

// resumeReplication restarts replication back for reprotected plans after
// a server restart.
func (o *Orchestrator) resumeReplication(ctx context.Context) {
	cfg, _, err := o.Config(ctx)
	if err != nil {
		return
	}
	for _, p := range cfg.Plans {
		st, err := o.Store.PlanState(ctx, p.Name)
		if err != nil || st.Phase != PhaseReprotected || o.failbackStoppedReplication(ctx, p.Name) {
			continue
		}
		fj, err := o.Store.Job(ctx, st.Failover)
		if err != nil {
			continue
		}
		r, _, err := o.load(fj)
		if err != nil {
			continue
		}
		r.out.DiskJob = fj.ID
		if rep, err := r.ensureReplicator(r.cfg.Plan(p.Name)); err == nil {
			rep.start()
			o.log.Info("replicating back again", "plan", p.Name)
		}
	}
}
