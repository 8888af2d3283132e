package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/host/backrep"
	"github.com/haven-dr/haven/internal/protection"
)

// Replication back (reprotect) runs where the recovered disks are: the
// machines on this server's own hosts are replicated by an agent in this
// process, those on a remote `haven host` by that host, on this server's
// orders (host.BackReplicator). A plan spread over hosts has one
// replicator per host.
//
// A consistency group spread over hosts is not captured at one instant
// by the periodic loop: each host takes its members' points on its own
// schedule. The failback's final pass is exact all the same: it is
// taken with the recovery machines stopped, so nothing changes between
// the hosts' captures.

// replicator replicates some of one plan's recovered machines back.
type replicator interface {
	cycle(ctx context.Context, group string) error
	// snapshot takes a point of machine's group (its members in this
	// replicator) and returns each member's new point ID.
	snapshot(ctx context.Context, machine string) (map[string]string, error)
	start(ctx context.Context) error
	stop(ctx context.Context) error
	// drop stops and forgets the plan (on a host: its kept order too).
	drop(ctx context.Context) error
	// release is the server closing: a loop in this process ends, a
	// host's goes on (it keeps its order across restarts).
	release()
	running() bool
}

// localReplicator is the agent in this process, reading the disk files
// in the server's disk directory.
type localReplicator struct{ p *backrep.Plan }

func (l localReplicator) cycle(ctx context.Context, g string) error { return l.p.Agent.Cycle(ctx, g) }
func (l localReplicator) snapshot(ctx context.Context, m string) (map[string]string, error) {
	return l.p.Agent.SnapshotMachine(ctx, m)
}
func (l localReplicator) start(context.Context) error { l.p.Start(); return nil }
func (l localReplicator) stop(context.Context) error  { l.p.Stop(); return nil }
func (l localReplicator) drop(context.Context) error  { l.p.Stop(); return nil }
func (l localReplicator) release()                    { l.p.Stop() }
func (l localReplicator) running() bool               { return l.p.Running() }

// remoteReplicator is a remote host replicating back what it runs.
type remoteReplicator struct {
	h    SiteHost
	b    host.BackReplicator
	plan string
	on   atomic.Bool
}

func (x *remoteReplicator) cycle(ctx context.Context, g string) error {
	return hostCall(x.h, x.b.CycleReplication(ctx, x.plan, g))
}

func (x *remoteReplicator) snapshot(ctx context.Context, m string) (map[string]string, error) {
	ids, err := x.b.SnapshotReplication(ctx, x.plan, m)
	return ids, hostCall(x.h, err)
}

func (x *remoteReplicator) start(ctx context.Context) error {
	if err := x.b.StartReplication(ctx, x.plan); err != nil {
		return hostCall(x.h, err)
	}
	x.on.Store(true)
	return nil
}

func (x *remoteReplicator) stop(ctx context.Context) error {
	if err := x.b.StopReplication(ctx, x.plan); err != nil {
		return hostCall(x.h, err)
	}
	x.on.Store(false)
	return nil
}

func (x *remoteReplicator) drop(ctx context.Context) error {
	if err := x.b.DropReplication(ctx, x.plan); err != nil {
		return hostCall(x.h, err)
	}
	x.on.Store(false)
	return nil
}

func (x *remoteReplicator) release()      {}
func (x *remoteReplicator) running() bool { return x.on.Load() }

// planReplication is one plan's replication back: a replicator per host
// its machines run on ("" is this process).
type planReplication struct {
	parts  map[string]replicator
	of     map[string]string          // machine -> part
	groups map[string]map[string]bool // part -> groups it holds
}

func (p *planReplication) keys() []string {
	ks := make([]string, 0, len(p.parts))
	for k := range p.parts {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// cycle takes a point of group on every host that holds members of it.
func (p *planReplication) cycle(ctx context.Context, group string) error {
	for _, k := range p.keys() {
		if p.groups[k][group] {
			if err := p.parts[k].cycle(ctx, group); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *planReplication) snapshot(ctx context.Context, m string) (map[string]string, error) {
	part, ok := p.parts[p.of[m]]
	if !ok {
		return nil, fmt.Errorf("%s is not replicated back by any host", m)
	}
	return part.snapshot(ctx, m)
}

// each calls fn on every part, going on past errors.
func (p *planReplication) each(fn func(replicator) error) error {
	var errs []error
	for _, k := range p.keys() {
		errs = append(errs, fn(p.parts[k]))
	}
	return errors.Join(errs...)
}

func (p *planReplication) start(ctx context.Context) error {
	return p.each(func(x replicator) error { return x.start(ctx) })
}

func (p *planReplication) stop(ctx context.Context) error {
	return p.each(func(x replicator) error { return x.stop(ctx) })
}

func (p *planReplication) running() bool {
	return slices.ContainsFunc(p.keys(), func(k string) bool { return p.parts[k].running() })
}

type replicators struct {
	mu sync.Mutex
	m  map[string]*planReplication
}

func (o *Orchestrator) replicatorFor(plan string) *planReplication {
	o.reps.mu.Lock()
	defer o.reps.mu.Unlock()
	return o.reps.m[plan]
}

// replicationOf is what each host replicates of plan: the machines and
// their disk files of the failover's disk job, by host ("" for this
// server's own hosts), with the hosts.
func (r *run) replicationOf(ctx context.Context, plan *protection.Plan) (map[string]host.Replication, map[string]SiteHost, error) {
	specs, hosts := map[string]host.Replication{}, map[string]SiteHost{}
	for _, m := range machinesOf(plan) {
		h, err := r.hostOf(ctx, m)
		if err != nil {
			return nil, nil, err
		}
		k := ""
		if h.Remote {
			k = h.Name
			hosts[k] = h
		}
		mc := r.cfg.Machine(m)
		rm := host.ReplicatedMachine{Name: m, Group: mc.GroupOf()}
		for _, d := range mc.Disks {
			rm.Disks = append(rm.Disks, host.ReplicatedDisk{Name: d.Name, Path: r.diskPath(m, d.Name)})
		}
		s := specs[k]
		s.Machines = append(s.Machines, rm)
		specs[k] = s
	}
	return specs, hosts, nil
}

// backReplicatorOf is the remote host's replicator, or why it has none.
func backReplicatorOf(ctx context.Context, h SiteHost, m string) (host.BackReplicator, error) {
	b, ok := h.Host.(host.BackReplicator)
	var err error
	if !ok {
		err = errors.New("it has no replication back")
	} else {
		err = b.ReplicationReady(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("%s runs on recovery host %s, a haven host on another machine, which cannot replicate it back: %w (replication back of a remote host's machines runs on that host: give it vault: and password_file: in its config, docs/site.md)", m, h.Name, err)
	}
	return b, nil
}

// canReplicateBack refuses, before anything is done, a plan with a
// machine on a remote host that cannot replicate it back.
func (r *run) canReplicateBack(ctx context.Context, plan *protection.Plan) error {
	specs, hosts, err := r.replicationOf(ctx, plan)
	if err != nil {
		return err
	}
	for k, h := range hosts {
		if _, err := backReplicatorOf(ctx, h, specs[k].Machines[0].Name); err != nil {
			return err
		}
	}
	return nil
}

// ensureReplicator builds the plan's replication back if this process
// has none: its own agent for the machines here, an ensure on each
// remote host for the machines there (idempotent: the host may hold it
// already, from before this server's restart).
func (r *run) ensureReplicator(ctx context.Context, plan *protection.Plan) (*planReplication, error) {
	if rep := r.o.replicatorFor(plan.Name); rep != nil {
		return rep, nil
	}
	specs, hosts, err := r.replicationOf(ctx, plan)
	if err != nil {
		return nil, err
	}
	rep := &planReplication{parts: map[string]replicator{}, of: map[string]string{}, groups: map[string]map[string]bool{}}
	for k, spec := range specs {
		part, err := r.replicatorOn(ctx, plan.Name, k, hosts[k], spec)
		if err != nil {
			return nil, err
		}
		rep.parts[k], rep.groups[k] = part, map[string]bool{}
		for _, m := range spec.Machines {
			rep.of[m.Name] = k
			rep.groups[k][m.Group] = true
		}
	}
	o := r.o
	o.reps.mu.Lock()
	defer o.reps.mu.Unlock()
	if o.reps.m == nil {
		o.reps.m = map[string]*planReplication{}
	}
	if had := o.reps.m[plan.Name]; had != nil {
		return had, nil // built at the same time by another caller
	}
	o.reps.m[plan.Name] = rep
	return rep, nil
}

func (r *run) replicatorOn(ctx context.Context, plan, k string, h SiteHost, spec host.Replication) (replicator, error) {
	if k == "" {
		dir := filepath.Join(r.o.DiskDir, r.out.DiskJob)
		p, err := backrep.New(backrep.AgentConfig(spec, filepath.Join(dir, ".agent"), filepath.Join(dir, ".clones")), r.o.Vault)
		if err != nil {
			return nil, err
		}
		return localReplicator{p}, nil
	}
	b, err := backReplicatorOf(ctx, h, spec.Machines[0].Name)
	if err != nil {
		return nil, err
	}
	if err := b.EnsureReplication(ctx, plan, spec); err != nil {
		return nil, hostCall(h, fmt.Errorf("replication back of %s: %w", plan, err))
	}
	return &remoteReplicator{h: h, b: b, plan: plan}, nil
}

// dropReplication stops replication back of plan and forgets it, here
// and on every remote host its machines run on (including one this
// process never ordered since its start: the host keeps its order).
func (r *run) dropReplication(ctx context.Context, plan *protection.Plan) error {
	o := r.o
	var errs []error
	if rep := o.replicatorFor(plan.Name); rep != nil {
		errs = append(errs, rep.each(func(x replicator) error { return x.drop(ctx) }))
	}
	_, hosts, err := r.replicationOf(ctx, plan)
	if err != nil {
		// A host the server no longer knows cannot be told: the failback
		// must not wait for it forever (docs/orchestrator.md).
		r.warn("replication back of %s not dropped on its remote hosts: %v", plan.Name, err)
	}
	for _, h := range hosts {
		errs = append(errs, dropOn(ctx, h, plan.Name))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	o.reps.mu.Lock()
	delete(o.reps.m, plan.Name)
	o.reps.mu.Unlock()
	return nil
}

// dropOn drops plan's replication back on a remote host. A host that
// does not answer fails the drop (retry): it keeps the order and would
// take it up again when it comes back, writing points of disks nobody
// runs any more. A host that answers and cannot replicate back holds no
// order to drop.
func dropOn(ctx context.Context, h SiteHost, plan string) error {
	b, ok := h.Host.(host.BackReplicator)
	if !ok {
		return nil
	}
	if p, ok := h.Host.(Pinger); ok {
		if err := p.Ping(ctx); err != nil {
			return hostCall(h, fmt.Errorf("replication back of %s not dropped: %w", plan, err))
		}
	}
	if b.ReplicationReady(ctx) != nil {
		return nil
	}
	return hostCall(h, b.DropReplication(ctx, plan))
}

// dropReplicationNamed is dropReplication of a plan of the job's config.
func (r *run) dropReplicationNamed(ctx context.Context, name string) error {
	p := r.cfg.Plan(name)
	if p == nil {
		return fmt.Errorf("no plan %q in the job's config", name)
	}
	return r.dropReplication(ctx, p)
}
