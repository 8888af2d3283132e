package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/placement"
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/vault"
)

// The recovery site is one or more hosts. Each machine is placed on one
// (package placement): its standby image is kept there and a failover
// starts it there. The placement is one record in the store, written by
// compare-and-set: apply places new machines, the standby loop and a
// failover place again the machines of a host that does not answer. A
// job records in its outputs where it prepared and started each machine,
// so its later steps, its undo, and the jobs that act on its machines
// (change of point, failback) go to that host, whatever the store says
// by then.

// LocalHostName is the name of the one host of a server that names none.
const LocalHostName = "local"

// SiteHost is one recovery host: its name (in placements and job
// records), the host, and its capacity.
type SiteHost struct {
	Name string
	Host host.Host
	// Capacity: zero fields are not limited.
	CPUs      int
	MemoryMB  int
	DiskBytes int64
	// Edge: the site's uplink (Options.Edge) is on this host; machines
	// that publish services are placed on such a host.
	Edge bool
	// Remote: a `haven host` on another machine, whose disk files this
	// server cannot open: the host replicates them back itself
	// (host.BackReplicator, replicator.go).
	Remote bool
}

// Pinger is a host that can tell whether it answers (a remote `haven
// host`); a host without it (in process) always answers.
type Pinger interface {
	Ping(ctx context.Context) error
}

// HostError is a host call that failed, naming the host, so a failed
// step says which host it lost.
type HostError struct {
	Host string
	Err  error
}

func (e *HostError) Error() string { return "host " + e.Host + ": " + e.Err.Error() }
func (e *HostError) Unwrap() error { return e.Err }

// pingTimeout bounds how long a host may take to say it is there.
const pingTimeout = 5 * time.Second

// hosts returns the recovery hosts (one named local when only
// Options.Host was given).
func (o *Orchestrator) hosts() []SiteHost {
	if len(o.Hosts) == 0 && o.Host != nil {
		return []SiteHost{{Name: LocalHostName, Host: o.Host, Edge: true}}
	}
	return o.Hosts
}

func (o *Orchestrator) hostNamed(name string) (SiteHost, bool) {
	i := slices.IndexFunc(o.hosts(), func(h SiteHost) bool { return h.Name == name })
	if i < 0 {
		return SiteHost{}, false
	}
	return o.hosts()[i], true
}

// edgeHost is the first host with the uplink (scripts run from its site
// namespace), else the first host.
func (o *Orchestrator) edgeHost() SiteHost {
	hs := o.hosts()
	if i := slices.IndexFunc(hs, func(h SiteHost) bool { return h.Edge }); i >= 0 {
		return hs[i]
	}
	return hs[0]
}

// HostHealth asks every host whether it answers, all at once: nil for a
// host that does (or cannot tell).
func (o *Orchestrator) HostHealth(ctx context.Context) map[string]error {
	out := map[string]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, h := range o.hosts() {
		p, ok := h.Host.(Pinger)
		if !ok {
			out[h.Name] = nil
			continue
		}
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, pingTimeout)
			defer cancel()
			err := p.Ping(pctx)
			mu.Lock()
			out[h.Name] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

func capacities(hs []SiteHost, down map[string]error) []placement.Host {
	var out []placement.Host
	for _, h := range hs {
		if down[h.Name] == nil {
			out = append(out, placement.Host{Name: h.Name, CPUs: h.CPUs, MemoryMB: h.MemoryMB, DiskBytes: h.DiskBytes, Edge: h.Edge})
		}
	}
	return out
}

// requirements is what each machine of cfg needs of its host; the disk
// is the size of its newest point's disks, as the standby image will be
// (0 before the first point).
func (o *Orchestrator) requirements(ctx context.Context, cfg *protection.Config) []placement.Machine {
	var out []placement.Machine
	for _, m := range cfg.Machines {
		pm := placement.Machine{Name: m.Name, CPUs: m.CPUs, MemoryMB: m.MemoryMB,
			AntiAffinity: m.AntiAffinity, NeedsEdge: len(m.Publish) > 0}
		if o.Vault != nil {
			if ps, err := o.Vault.Points(ctx, m.Name); err == nil && len(ps) > 0 {
				newest := slices.MaxFunc(ps, func(a, b *vault.Point) int { return a.Time.Compare(b.Time) })
				for _, d := range newest.Disks {
					pm.DiskBytes += d.Size
				}
			}
		}
		out = append(out, pm)
	}
	return out
}

// placeAll places every machine of cfg on the hosts that answer (down
// lists those that do not), keeping each where the store has it if it
// still fits, and records the result. The returned placement holds every
// machine that fits; the error names those that do not.
func (o *Orchestrator) placeAll(ctx context.Context, cfg *protection.Config, down map[string]error) (placement.Placement, error) {
	reqs := o.requirements(ctx, cfg)
	var got placement.Placement
	var fitErr error
	err := o.Store.InTx(ctx, func(tx store.Tx) error {
		prev, err := tx.Placements(ctx)
		if err != nil {
			return err
		}
		got, fitErr = placement.Place(capacities(o.hosts(), down), reqs, prev.Hosts)
		return putPlacements(ctx, tx, prev, got)
	})
	if err != nil {
		return nil, err
	}
	return got, fitErr
}

// putPlacements writes next over prev when a machine moved or came; a
// machine that fits nowhere keeps its old record (it is still there, or
// its host is lost and it waits for room).
func putPlacements(ctx context.Context, tx store.Tx, prev *store.Placements, next placement.Placement) error {
	merged := maps.Clone(prev.Hosts)
	if merged == nil {
		merged = map[string]string{}
	}
	maps.Copy(merged, next)
	if maps.Equal(merged, prev.Hosts) {
		return nil
	}
	prev.Hosts = merged
	return tx.PutPlacements(ctx, prev)
}

// Fit is what apply learns of a document's machines on the hosts: where
// each runs, and the N+1 warnings (the hosts whose loss leaves machines
// nowhere to go).
type Fit struct {
	Placement placement.Placement
	Warnings  []string
}

// fit places cfg's machines with every host up, in tx, refusing a
// document that does not fit, and records the placement.
func (o *Orchestrator) fit(ctx context.Context, tx store.Tx, reqs []placement.Machine) (*Fit, error) {
	prev, err := tx.Placements(ctx)
	if err != nil {
		return nil, err
	}
	caps := capacities(o.hosts(), nil)
	if len(caps) == 0 {
		return &Fit{}, nil // a server without a recovery host (tests of the API alone)
	}
	p, err := placement.Place(caps, reqs, prev.Hosts)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPrecondition, err)
	}
	// Machines the document dropped leave the record.
	next := &store.Placements{Hosts: map[string]string{}, Version: prev.Version}
	if !maps.Equal(map[string]string(p), prev.Hosts) {
		maps.Copy(next.Hosts, p)
		if err := tx.PutPlacements(ctx, next); err != nil {
			return nil, err
		}
	}
	return &Fit{Placement: p, Warnings: placement.NPlus1(caps, reqs, p)}, nil
}

// placeFor makes sure each of machines has a host for this job that
// answers: the one the job recorded, else the store's; a machine whose
// host does not answer is placed again on the others (recorded in the
// store too, so its standby image is rebuilt there) and said so. The
// job's record is saved before the caller acts on it.
func (r *run) placeFor(ctx context.Context, machines []string) error {
	r.loadDiskJobPlacement(ctx)
	down := r.o.downHosts(ctx)
	var need []string
	for _, m := range machines {
		h := r.out.Placement[m]
		if h == "" || down[h] != nil {
			need = append(need, m)
		}
	}
	if len(need) == 0 {
		return nil
	}
	if len(r.o.hosts()) == 0 {
		return fmt.Errorf("no recovery host configured")
	}
	p, fitErr := r.o.placeAll(ctx, r.cfg, down)
	if p == nil {
		return fitErr
	}
	if r.out.Placement == nil {
		r.out.Placement = map[string]string{}
	}
	var lost []string
	for _, m := range need {
		to, ok := p[m]
		if !ok {
			lost = append(lost, m)
			continue
		}
		if was := r.out.Placement[m]; was != "" && was != to {
			r.warn("%s: host %s does not answer (%v): %s is placed on host %s instead (full restore where no standby image is there)", m, was, down[was], m, to)
		} else {
			r.logf("info", "%s placed on host %s", m, to)
		}
		r.out.Placement[m] = to
	}
	if err := r.save(ctx); err != nil {
		return err
	}
	if err := r.sharePlacement(ctx, nil); err != nil {
		return err
	}
	if len(lost) > 0 {
		return fmt.Errorf("no answering recovery host has room for %v: %w", lost, errors.Join(fitErr, downErr(down)))
	}
	return nil
}

func downErr(down map[string]error) error {
	names := slices.Sorted(maps.Keys(down))
	var errs []error
	for _, n := range names {
		errs = append(errs, &HostError{Host: n, Err: down[n]})
	}
	return errors.Join(errs...)
}

// loadDiskJobPlacement takes over where the failover this job acts on
// (change of point, failback) put its machines.
func (r *run) loadDiskJobPlacement(ctx context.Context) {
	if r.out.DiskJob == "" || r.out.Placement != nil {
		return
	}
	if _, fo, err := r.jobOutputs(ctx, r.out.DiskJob); err == nil && fo.Placement != nil {
		r.out.Placement = maps.Clone(fo.Placement)
	}
}

// hostOf is the host machine m runs on for this job: the one the job
// recorded, the one its failover recorded, the store's, or the only one.
func (r *run) hostOf(ctx context.Context, m string) (SiteHost, error) {
	r.loadDiskJobPlacement(ctx)
	name := r.out.Placement[m]
	if name == "" {
		if p, err := r.o.Store.Placements(ctx); err == nil {
			name = p.Hosts[m]
		}
	}
	if name == "" && len(r.o.hosts()) == 1 {
		return r.o.hosts()[0], nil
	}
	h, ok := r.o.hostNamed(name)
	if !ok {
		return SiteHost{}, fmt.Errorf("%s: placed on host %q, which the server does not know", m, name)
	}
	return h, nil
}

// hostOfRes is the host a recorded resource is on (its own record, else
// where its machine runs).
func (r *run) hostOfRes(ctx context.Context, x Resource) (SiteHost, error) {
	if x.Host != "" {
		if h, ok := r.o.hostNamed(x.Host); ok {
			return h, nil
		}
	}
	return r.hostOf(ctx, x.Name)
}

// hostCall wraps a host's error with its name.
func hostCall(h SiteHost, err error) error {
	if err == nil || len(h.Name) == 0 {
		return err
	}
	var he *HostError
	if errors.As(err, &he) {
		return err
	}
	return &HostError{Host: h.Name, Err: err}
}

// Placements is where each machine of the applied config is placed.
func (o *Orchestrator) Placements(ctx context.Context) (map[string]string, error) {
	p, err := o.Store.Placements(ctx)
	if err != nil {
		return nil, err
	}
	return p.Hosts, nil
}

// rehome places the machines whose host does not answer on another and
// prepares their disks there; the caller then starts them (a step that
// finds a machine not running starts it).
func (r *run) rehome(ctx context.Context, machines []string) error {
	before := maps.Clone(r.out.Placement)
	if err := r.placeFor(ctx, machines); err != nil {
		return err
	}
	var moved []string
	for _, m := range machines {
		if was := before[m]; was != "" && was != r.out.Placement[m] {
			moved = append(moved, m)
		}
	}
	if len(moved) == 0 {
		return nil
	}
	return r.prepareDisks(ctx, moved)
}

// recoverLost brings up elsewhere those of machines this job started on
// a host that no longer answers: placed again, their disks prepared on
// the new host from the job's points, started and waited for.
func (r *run) recoverLost(ctx context.Context, site string, machines []string, test bool) error {
	down := r.o.HostHealth(ctx)
	var lost []string
	for _, m := range machines {
		if h := r.out.Placement[m]; h != "" && down[h] != nil {
			lost = append(lost, m)
		}
	}
	if len(lost) == 0 {
		return nil
	}
	r.warn("host lost: %v ran on a host that no longer answers: starting them on the others", lost)
	if err := r.waitHealthy(ctx, site, lost, test); err != nil {
		return err
	}
	if test || !publishes(r.cfg, lost) {
		return nil
	}
	return r.publish(ctx, site, lost)
}

// stopMachine stops m on site on the host it runs on for this job.
func (r *run) stopMachine(ctx context.Context, site, m string) error {
	h, err := r.hostOf(ctx, m)
	if err != nil {
		return err
	}
	return hostCall(h, h.Host.StopMachine(ctx, site, m))
}

// onHost runs fn on the host of a recorded resource. A host that does
// not answer is skipped: what the job made there went with it (its
// machines are brought up elsewhere and recorded there). Once found
// silent, a host is not asked again by this run: an undo of many
// resources on a dead host would wait out each ping.
func (r *run) onHost(ctx context.Context, x Resource, fn func(h host.Host) error) error {
	h, err := r.hostOfRes(ctx, x)
	if err != nil {
		return err
	}
	if p, ok := h.Host.(Pinger); ok {
		perr, asked := r.silent[h.Name]
		if !asked {
			perr = p.Ping(ctx)
			if perr != nil {
				if r.silent == nil {
					r.silent = map[string]error{}
				}
				r.silent[h.Name] = perr // not asked again for its other resources
			}
		}
		if perr != nil {
			r.warn("host %s does not answer (%v): %s %s %s there is left as it is", h.Name, perr, x.Kind, x.Name, x.Path)
			return nil
		}
	}
	return hostCall(h, fn(h.Host))
}

// downHosts is the hosts that do not answer, with why.
func (o *Orchestrator) downHosts(ctx context.Context) map[string]error {
	down := o.HostHealth(ctx)
	maps.DeleteFunc(down, func(_ string, err error) bool { return err == nil })
	return down
}

// LostHost is a recovery host that does not answer, with the plans whose
// recovered machines ran there.
type LostHost struct {
	Name  string
	Err   error
	Plans []string
}

// LostHosts asks every host whether it answers and, for each that does
// not, which plans at the recovery site had machines there.
func (o *Orchestrator) LostHosts(ctx context.Context) []LostHost {
	down := o.downHosts(ctx)
	if len(down) == 0 {
		return nil
	}
	var out []LostHost
	cfg, _, err := o.Config(ctx)
	for _, name := range slices.Sorted(maps.Keys(down)) {
		lh := LostHost{Name: name, Err: down[name]}
		if err == nil {
			lh.Plans = o.plansOn(ctx, cfg, name)
		}
		out = append(out, lh)
	}
	return out
}

// plansOn lists the plans whose failover placed machines on host.
func (o *Orchestrator) plansOn(ctx context.Context, cfg *protection.Config, hostName string) []string {
	var out []string
	for _, p := range cfg.Plans {
		st, err := o.Store.PlanState(ctx, p.Name)
		if err != nil || st.Phase == PhaseProtected || st.Failover == "" {
			continue
		}
		j, err := o.Store.Job(ctx, st.Failover)
		if err != nil {
			continue
		}
		r, _, err := o.load(j)
		if err == nil && slices.Contains(slices.Collect(maps.Values(r.out.Placement)), hostName) {
			out = append(out, p.Name)
		}
	}
	return out
}
