package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/vnet"
	"golang.org/x/sync/errgroup"
)

// intend records a resource and saves the job before the resource is
// created, so a crash in between leaves a record cancel can act on.
func (r *run) intend(ctx context.Context, res Resource) error {
	if r.out.DiskJob != "" && (res.Kind == ResDisk || res.Kind == ResMachine) {
		return nil // the failover job owns them (change-point)
	}
	n := len(r.out.Resources)
	r.record(res)
	if len(r.out.Resources) == n {
		return nil
	}
	return r.save(ctx)
}

func (r *run) agentFor(m string) (AgentClient, *protection.Agent, error) {
	mc := r.cfg.Machine(m)
	if mc == nil || mc.Agent == "" {
		return nil, nil, fmt.Errorf("machine %s has no agent in the config", m)
	}
	a := r.cfg.AgentByName(mc.Agent)
	c, err := r.o.Agents(*a)
	return c, a, err
}

// stopPrimary stops the plan's primary machines through their agents, web
// before database (the reverse of the start order).
func (r *run) stopPrimary(ctx context.Context, plan *protection.Plan) error {
	all := machinesOf(plan)
	for _, m := range slices.Backward(all) {
		c, _, err := r.agentFor(m)
		if err != nil {
			return err
		}
		if err := r.intend(ctx, Resource{Kind: ResPrimaryStopped, Name: m}); err != nil {
			return err
		}
		if err := c.Stop(ctx, m); err != nil {
			return fmt.Errorf("stop primary %s: %w", m, err)
		}
		r.logf("info", "primary %s stopped by its agent", m)
	}
	return nil
}

// finalPoints takes a point of each machine after it stopped: nothing is
// written after it, so the failover loses no data.
func (r *run) finalPoints(ctx context.Context, machines []string) error {
	for _, m := range machines {
		if _, ok := r.out.Points[m]; ok {
			continue // taken with an earlier machine of its group
		}
		if err := r.finalPoint(ctx, m, machines); err != nil {
			return err
		}
	}
	return nil
}

// finalPoint takes a point of m's consistency group and keeps it as the
// final point of m and of every other member in final: one agent cycle
// serves the whole group (a group's members are captured at one instant
// anyway), so a two-machine group costs one cycle, not two.
func (r *run) finalPoint(ctx context.Context, m string, final []string) error {
	c, _, err := r.agentFor(m)
	if err != nil {
		return err
	}
	ids, err := c.Snapshot(ctx, m)
	if err != nil {
		return fmt.Errorf("final point of %s: %w", m, err)
	}
	if r.out.Points == nil {
		r.out.Points = map[string]PointUse{}
	}
	for _, x := range final {
		id := ids[x]
		if _, done := r.out.Points[x]; done || id == "" || (x != m && !r.sameAgent(m, x)) {
			continue
		}
		p, err := r.o.Vault.FindPoint(ctx, x, id)
		if err != nil {
			return fmt.Errorf("final point %s of %s: %w", id, x, err)
		}
		u := use(p)
		u.Final = true
		r.out.Points[x] = u
		r.logf("info", "final point of %s: %s", x, id)
	}
	if _, ok := r.out.Points[m]; !ok {
		return fmt.Errorf("final point of %s: its agent answered none", m)
	}
	return r.save(ctx)
}

// sameAgent: a group's points come from one agent; a machine of another
// agent that happens to share the group's name is not in its answer.
func (r *run) sameAgent(a, b string) bool {
	ma, mb := r.cfg.Machine(a), r.cfg.Machine(b)
	return ma != nil && mb != nil && ma.Agent == mb.Agent
}

// checkPrimary guards against split brain: a primary whose agent still
// answers is fenced (its machines stopped) unless the operator forces. An
// agent that cannot be reached, now or when asked to fence, means the
// primary is down; only one that answers and refuses to stop fails the
// step. It also fixes each machine's disaster moment for the data-loss
// report, from that machine's own agent.
func (r *run) checkPrimary(ctx context.Context, machines []string) error {
	answers := r.probeAgents(ctx, machines)
	for _, m := range machines {
		c, a, err := r.agentFor(m)
		if err != nil {
			r.warn("%s: %v: cannot check the primary", m, err)
			r.setDisaster(ctx, m, "")
			continue
		}
		r.setDisaster(ctx, m, a.Name)
		if err := answers[a.Name]; err != nil {
			r.logf("info", "primary agent %s for %s does not answer (%v): the primary is taken as down", a.Name, m, err)
			continue
		}
		if r.p.Force {
			r.warn("SPLIT-BRAIN RISK: the primary agent %s still answers and --force skipped fencing %s; both sites may take writes", a.Name, m)
			continue
		}
		down, err := r.fence(ctx, c, a.Name, m)
		if err != nil {
			return err
		}
		if down != nil {
			answers[a.Name] = down
		}
	}
	return nil
}

// fence stops m through its agent. It returns a non-nil down when the
// agent turned out to be unreachable (the primary died between the probe
// and the stop, or was never up and the probe raced): then nothing was
// stopped and the failover goes on without fencing.
func (r *run) fence(ctx context.Context, c AgentClient, agentName, m string) (down error, err error) {
	r.warn("primary agent %s still answers: fencing %s (stopping it through the agent) so two sites never take writes", agentName, m)
	if err := r.intend(ctx, Resource{Kind: ResPrimaryStopped, Name: m}); err != nil {
		return nil, err
	}
	serr := c.Stop(ctx, m)
	if serr == nil {
		r.out.Fenced = appendOnce(r.out.Fenced, m)
		return nil, nil
	}
	var ue *UnreachableError
	if errors.As(serr, &ue) {
		// Probe again: unreachable now means the primary is down.
		if _, perr := c.Status(ctx); perr != nil && errors.As(perr, &ue) {
			r.warn("primary agent %s stopped answering while %s was being fenced (%v): the primary is taken as down, failing over without fencing", agentName, m, perr)
			r.out.Resources = slices.DeleteFunc(r.out.Resources, func(x Resource) bool {
				return x.Kind == ResPrimaryStopped && x.Name == m // nothing was stopped: cancel has nothing to start
			})
			return perr, r.save(ctx)
		}
	}
	return nil, fmt.Errorf("fence primary %s: %w (use --force to fail over without fencing)", m, serr)
}

// setDisaster fixes the moment machine m's data loss is counted from: the
// operator's --disaster-time, else the last heartbeat of m's own agent,
// else the failover command.
func (r *run) setDisaster(ctx context.Context, m, agentName string) {
	if r.out.Disasters == nil {
		r.out.Disasters = map[string]time.Time{}
	}
	t, ok := r.out.Started, false
	switch {
	case r.p.DisasterTime != nil:
		t, ok = r.p.DisasterTime.UTC(), true
	case agentName != "":
		t, ok = r.lastHeartbeat(ctx, agentName)
	}
	if !ok {
		t = r.out.Started
		r.warn("no heartbeat from %s's agent: its data loss is counted from the failover command", m)
	}
	r.out.Disasters[m] = t
	if r.out.Disaster == nil || t.Before(*r.out.Disaster) {
		r.out.Disaster = &t
	}
}

// probeAgents asks each agent of the machines once, all at once, so a
// primary whose packets vanish costs one agent timeout, not one per
// machine. The result is each agent's error (nil: it answers). Each agent
// is probed by exactly one goroutine that alone writes its result.
func (r *run) probeAgents(ctx context.Context, machines []string) map[string]error {
	clients := map[string]AgentClient{}
	for _, m := range machines {
		if c, a, err := r.agentFor(m); err == nil && clients[a.Name] == nil {
			clients[a.Name] = c
		}
	}
	var mu sync.Mutex
	out := make(map[string]error, len(clients))
	var wg sync.WaitGroup
	for name, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Status(ctx)
			mu.Lock()
			out[name] = err
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func (r *run) lastHeartbeat(ctx context.Context, agentName string) (time.Time, bool) {
	hbs, err := r.o.Store.Heartbeats(ctx)
	if err != nil {
		return time.Time{}, false
	}
	for _, h := range hbs {
		if h.Agent == agentName {
			return h.Time.UTC(), true
		}
	}
	return time.Time{}, false
}

// fencedPoints takes a final point of each machine the check fenced, after
// its stop: nothing is written after it, so the failover loses nothing.
// An agent that cannot snapshot leaves the machine to the newest point
// there is, and the report says which.
func (r *run) fencedPoints(ctx context.Context, machines []string) error {
	for _, m := range machines {
		if !slices.Contains(r.out.Fenced, m) {
			continue
		}
		if _, ok := r.out.Points[m]; ok {
			continue
		}
		if err := r.finalPoint(ctx, m, r.out.Fenced); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.warn("%s was fenced but its agent could not take a final point (%v): it fails over from the newest point there is", m, err)
		}
	}
	return nil
}

func (r *run) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if !slices.Contains(r.out.Warnings, msg) {
		r.out.Warnings = append(r.out.Warnings, msg)
	}
	r.logf("warn", "%s", msg)
}

func (r *run) choosePoints(ctx context.Context, machines []string) error {
	if len(r.out.Points) == len(machines) {
		return nil // chosen before a crash, or final points of a planned failover
	}
	groups := map[string]string{}
	for _, m := range machines {
		groups[m] = r.cfg.Machine(m).GroupOf()
	}
	pts, notes, err := choosePoints(ctx, r.o.Vault, machines, groups, r.p.Point)
	if err != nil {
		return err
	}
	for m, u := range r.out.Points {
		if u.Final {
			pts[m] = u // a point taken after the machine was fenced loses nothing
		}
	}
	r.out.Points = pts
	r.out.PointChoice = r.p.Point
	if r.out.PointChoice == "" {
		r.out.PointChoice = PointLatest
	}
	r.out.PointNotes = notes
	for _, n := range notes {
		r.logf("info", "%s", n)
	}
	for _, m := range machines {
		p := pts[m]
		r.logf("info", "%s: point %s (%s, %s old)", m, p.ID, p.Consistency, r.out.Started.Sub(p.Time).Round(time.Second))
	}
	return nil
}

func (r *run) networks(test bool) []vnet.Network {
	if test {
		return r.cfg.Networks.Test
	}
	return r.cfg.Networks.Recovery
}

// diskPath is <disk dir>/<job>/<machine>/<disk>.img: a remote host names a
// disk another server recorded by its last three parts (package hostapi).
func (r *run) diskPath(m, disk string) string {
	job := r.job.ID
	if r.out.DiskJob != "" {
		job = r.out.DiskJob
	}
	return filepath.Join(r.o.DiskDir, job, m, disk+".img")
}

// disksPerHost is how many disks one host prepares at once.
const disksPerHost = 4

// prepareDisks makes every disk of the machines hold its chosen point,
// disksPerHost at a time on each host, the hosts at once.
func (r *run) prepareDisks(ctx context.Context, machines []string) error {
	type res struct {
		m, d string
		dr   *host.DiskResult
	}
	var mu sync.Mutex
	var done []res
	if err := r.placeFor(ctx, machines); err != nil {
		return err
	}
	hosts := map[string]SiteHost{}
	for _, m := range machines {
		h, err := r.hostOf(ctx, m)
		if err != nil {
			return err
		}
		hosts[m] = h
		for _, d := range r.cfg.Machine(m).Disks {
			if err := r.intend(ctx, Resource{Kind: ResDisk, Name: m, Path: r.diskPath(m, d.Name), Host: h.Name}); err != nil {
				return err
			}
		}
	}
	// Four disks at a time on each host (its disk and CPUs are the
	// limit), so one host's disks do not wait for another's.
	slots := map[string]chan struct{}{}
	for _, h := range hosts {
		if slots[h.Name] == nil {
			slots[h.Name] = make(chan struct{}, disksPerHost)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, m := range machines {
		pt := r.out.Points[m]
		for _, d := range r.cfg.Machine(m).Disks {
			g.Go(func() error {
				slot := slots[hosts[m].Name]
				select {
				case slot <- struct{}{}:
				case <-gctx.Done():
					return gctx.Err()
				}
				defer func() { <-slot }()
				dr, err := hosts[m].Host.PrepareDisk(gctx, host.DiskRequest{Machine: m, Disk: d.Name, Point: pt.ID,
					Target: r.diskPath(m, d.Name), NoStandby: r.p.NoStandby})
				if err != nil {
					return hostCall(hosts[m], fmt.Errorf("disk %s/%s: %w", m, d.Name, err))
				}
				mu.Lock()
				done = append(done, res{m, d.Name, dr})
				mu.Unlock()
				return nil
			})
		}
	}
	err := g.Wait()
	if r.out.Disks == nil {
		r.out.Disks = map[string]map[string]*host.DiskResult{}
	}
	for _, x := range done {
		if r.out.Disks[x.m] == nil {
			r.out.Disks[x.m] = map[string]*host.DiskResult{}
		}
		if prev := r.out.Disks[x.m][x.d]; prev == nil || x.dr.Method != "existing" {
			r.out.Disks[x.m][x.d] = x.dr
		}
		r.logf("info", "%s/%s: %s, %d bytes written", x.m, x.d, x.dr.Method, x.dr.BytesWritten)
	}
	return err
}

// spec is the machine as it boots at the recovery (or test) site.
func (r *run) spec(m string, test bool) (machine.Spec, error) {
	mc := r.cfg.Machine(m)
	sp := machine.Spec{Name: m, CPUs: mc.CPUs, MemoryMB: mc.MemoryMB, Init: mc.Init, Health: mc.Health, Firmware: mc.Firmware}
	for _, d := range mc.Disks {
		d.Path = r.diskPath(m, d.Name)
		d.Format = "raw" // restored from the vault, whatever its first bytes say
		sp.Disks = append(sp.Disks, d)
	}
	for _, n := range mc.NICs {
		netName, err := r.cfg.Mapping.Resolve(n.Network, test)
		if err != nil {
			return sp, err
		}
		net, _ := r.cfg.Network(netName)
		addr, err := r.address(net, m, n)
		if err != nil {
			return sp, err
		}
		sp.NICs = append(sp.NICs, vnet.NIC{Name: n.Name, Network: netName, Addr: addr})
		// The disk's OS holds the primary address: any other one needs
		// the guest re-addressed (cloud-init), as clouds do.
		if addr != n.Address {
			sp.Readdress = true
		}
	}
	return sp, nil
}

func (r *run) address(net vnet.Network, m string, n protection.NIC) (netip.Prefix, error) {
	switch n.Recovery {
	case vnet.Static:
		return netip.PrefixFrom(n.Static, net.Subnet.Bits()), nil
	case vnet.Allocate:
		if r.o.Alloc == nil {
			return netip.Prefix{}, fmt.Errorf("%s/%s: allocate needs the server's address record", m, n.Name)
		}
		return r.o.Alloc.Assign(net, m, n.Name, vnet.Request{Mode: vnet.Allocate})
	}
	return netip.PrefixFrom(n.Address.Addr(), net.Subnet.Bits()), nil
}

func (r *run) machineRun(m string) *MachineRun {
	if r.out.Machines == nil {
		r.out.Machines = map[string]*MachineRun{}
	}
	if r.out.Machines[m] == nil {
		r.out.Machines[m] = &MachineRun{}
	}
	return r.out.Machines[m]
}

func (r *run) startMachines(ctx context.Context, site string, machines []string, test bool) error {
	if err := r.rehome(ctx, machines); err != nil {
		return err
	}
	// Another plan's undo may have removed the site since this job's
	// network step, when nothing ran there: make sure of it, under the
	// lock that undo takes, so it cannot go between this and the start.
	// A site of several hosts is made on all of them with its overlay:
	// a site made again there has lost it.
	var down map[string]error
	if r.o.overlayOn() {
		down = r.o.HostHealth(ctx)
	}
	r.o.siteMu.Lock()
	defer r.o.siteMu.Unlock()
	if r.o.overlayOn() {
		if err := r.siteOnHosts(ctx, site, test, down); err != nil {
			return err
		}
	}
	byHost, err := r.intendStarts(ctx, site, machines, test)
	if err != nil {
		return err
	}
	// Each host starts its machines in the group's order, all hosts at
	// once: a start on one host does not wait for another host's (one
	// at a time, six machines on three hosts took as long as on one;
	// bench/hosts/results.md). A host that fails does not stop the
	// others' starts: a retry finds them running.
	var mu sync.Mutex
	errs := make([]error, len(byHost))
	var wg sync.WaitGroup
	for i, hs := range byHost {
		wg.Go(func() { errs[i] = r.startOn(ctx, hs, site, test, &mu) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// hostStarts is one host's machines of a start step, with their specs.
type hostStarts struct {
	h     SiteHost
	names []string
	specs []machine.Spec
}

// intendStarts records every machine of the step before any starts, and
// groups them by host, hosts in the order of their first machine.
func (r *run) intendStarts(ctx context.Context, site string, machines []string, test bool) ([]*hostStarts, error) {
	var out []*hostStarts
	for _, m := range machines {
		h, err := r.hostOf(ctx, m)
		if err != nil {
			return nil, err
		}
		sp, err := r.spec(m, test)
		if err != nil {
			return nil, err
		}
		if err := r.intend(ctx, Resource{Kind: ResMachine, Site: site, Name: m, Host: h.Name}); err != nil {
			return nil, err
		}
		i := slices.IndexFunc(out, func(x *hostStarts) bool { return x.h.Name == h.Name })
		if i < 0 {
			out, i = append(out, &hostStarts{h: h}), len(out)
		}
		out[i].names, out[i].specs = append(out[i].names, m), append(out[i].specs, sp)
	}
	return out, nil
}

// startOn makes sure of the site on one host and starts its machines
// there in order; mu guards the job's outputs.
func (r *run) startOn(ctx context.Context, hs *hostStarts, site string, test bool, mu *sync.Mutex) error {
	h := hs.h
	if !r.o.overlayOn() {
		if err := hostCall(h, r.makeSite(ctx, h, site, test)); err != nil {
			return err
		}
	}
	for i, m := range hs.names {
		sp := hs.specs[i]
		if err := h.Host.StartMachine(ctx, site, r.cfg.Machine(m).Driver, sp); err != nil {
			return hostCall(h, fmt.Errorf("start %s: %w", m, err))
		}
		now := time.Now().UTC()
		mu.Lock()
		mr := r.machineRun(m)
		mr.Started, mr.Address, mr.Host = &now, sp.NICs[0].Addr.Addr().String(), h.Name
		for _, d := range sp.Disks {
			mr.Disks = appendOnce(mr.Disks, d.Path)
		}
		mu.Unlock()
		r.logf("info", "%s started at %s on %s (host %s)", m, sp.NICs[0].Addr.Addr(), site, h.Name)
	}
	return nil
}

func appendOnce(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

func (r *run) waitHealthy(ctx context.Context, site string, machines []string, test bool) error {
	if err := r.rehome(ctx, machines); err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	var mu sync.Mutex
	for _, m := range machines {
		sp, err := r.spec(m, test)
		if err != nil {
			return err
		}
		h, err := r.hostOf(ctx, m)
		if err != nil {
			return err
		}
		if !h.Host.Running(site, m) {
			// It died (or the server restarted and it died with it):
			// start it again, from the same disks.
			if err := r.startMachines(ctx, site, []string{m}, test); err != nil {
				return err
			}
		}
		g.Go(func() error {
			hctx, cancel := context.WithTimeout(gctx, r.cfg.Machine(m).HealthTimeout)
			defer cancel()
			if err := h.Host.WaitHealthy(hctx, site, sp); err != nil {
				return hostCall(h, err)
			}
			now := time.Now().UTC()
			mu.Lock()
			r.machineRun(m).HealthyAt = &now
			mu.Unlock()
			r.logf("info", "%s healthy after %s", m, now.Sub(r.out.Started).Round(time.Millisecond))
			return nil
		})
	}
	return g.Wait()
}

func (r *run) setPhase(ctx context.Context, phase Phase, failover string) error {
	return r.updatePlan(ctx, func(st *store.PlanState) { st.Phase, st.Failover = phase, failover })
}

func (r *run) setTest(ctx context.Context, id string) error {
	return r.updatePlan(ctx, func(st *store.PlanState) { st.Test = id })
}

// updatePlan changes the plan's state in one transaction with the check
// that this job still holds the plan: a job canceled (or ended by another
// server) meanwhile changes nothing, and a concurrent writer of the plan
// state is never overwritten with what this job read earlier.
func (r *run) updatePlan(ctx context.Context, change func(st *store.PlanState)) error {
	return r.o.Store.InTx(context.WithoutCancel(ctx), func(tx store.Tx) error {
		j, err := tx.Job(ctx, r.job.ID)
		if err != nil {
			return err
		}
		if j.State != store.Running && j.State != store.Canceling {
			return fmt.Errorf("%w: job %s is %s: it no longer holds plan %s", ErrPrecondition, j.ID, j.State, j.Plan)
		}
		st, err := tx.PlanState(ctx, r.job.Plan)
		if err != nil {
			return err
		}
		change(st)
		return tx.PutPlanState(ctx, st)
	})
}

// jobOutputs loads another job's outputs (the failover a later job acts on).
func (r *run) jobOutputs(ctx context.Context, id string) (*store.Job, *Outputs, error) {
	if id == "" {
		return nil, nil, fmt.Errorf("%w: no job recorded for plan %s", ErrPrecondition, r.job.Plan)
	}
	return r.o.outputsOf(ctx, id)
}
