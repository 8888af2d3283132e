package orchestrator

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/machine"
)

// ErrNoMemoryStatus: the machine's host cannot tell what its memory did
// (a host.Host without host.MemoryChecker).
var ErrNoMemoryStatus = errors.New("the recovery host does not report machine memory")

// RecoveredMachine is a machine a plan's failover (or its test failover)
// brought up at the recovery site, with the host it runs on, and what
// that host says of its memory now.
type RecoveredMachine struct {
	Plan    string
	Machine string
	Site    string // SiteRecovery or SiteTest
	Job     string // the failover or test failover that started it
	Host    string
	Memory  machine.MemoryStatus
	// Running is false when the host says the machine does not run;
	// Err is set when the host could not tell.
	Running bool
	Err     error
}

// memoryTimeout bounds one host's answer: a status must not wait out a
// lost host's retries (the host-lost alert says that one).
const memoryTimeout = 5 * time.Second

// RecoveredMachines lists the machines of every plan's failover and test
// failover, asking their hosts, all at once, what each machine's memory
// did.
func (o *Orchestrator) RecoveredMachines(ctx context.Context) ([]RecoveredMachine, error) {
	cfg, _, err := o.Config(ctx)
	if err != nil {
		return nil, err
	}
	var out []RecoveredMachine
	var hosts []SiteHost
	for _, p := range cfg.Plans {
		st, err := o.Store.PlanState(ctx, p.Name)
		if err != nil {
			continue
		}
		failover := st.Failover
		if st.Phase == PhaseProtected { // failed back: the primary runs
			failover = ""
		}
		for _, id := range []string{failover, st.Test} {
			rms, hs := o.jobMachines(ctx, p.Name, id)
			out, hosts = append(out, rms...), append(hosts, hs...)
		}
	}
	var wg sync.WaitGroup
	for i := range out {
		wg.Go(func() { out[i].ask(ctx, hosts[i].Host) })
	}
	wg.Wait()
	return out, nil
}

// jobMachines lists the machines job id started, with their hosts.
func (o *Orchestrator) jobMachines(ctx context.Context, plan, id string) ([]RecoveredMachine, []SiteHost) {
	if id == "" {
		return nil, nil
	}
	j, err := o.Store.Job(ctx, id)
	if err != nil {
		return nil, nil
	}
	r, _, err := o.load(j)
	if err != nil {
		return nil, nil
	}
	var out []RecoveredMachine
	var hosts []SiteHost
	for _, m := range slices.Sorted(maps.Keys(r.out.Machines)) {
		if r.out.Machines[m].Started == nil {
			continue
		}
		h, err := r.hostOf(ctx, m)
		rm := RecoveredMachine{Plan: plan, Machine: m, Site: r.out.Site, Job: id, Host: h.Name, Err: err}
		out, hosts = append(out, rm), append(hosts, h)
	}
	return out, hosts
}

func (rm *RecoveredMachine) ask(ctx context.Context, h host.Host) {
	if rm.Err != nil {
		return
	}
	mc, ok := h.(host.MemoryChecker)
	if !ok {
		rm.Running, rm.Err = h.Running(rm.Site, rm.Machine), ErrNoMemoryStatus
		return
	}
	ctx, cancel := context.WithTimeout(ctx, memoryTimeout)
	defer cancel()
	rm.Memory, rm.Err = mc.MachineMemory(ctx, rm.Site, rm.Machine)
	rm.Running = rm.Err == nil
	if errors.Is(rm.Err, machine.ErrNotRunning) {
		rm.Err = nil
	}
}
