// Package orchestrator runs recovery plans: test, planned and unplanned
// failover, change of point, commit, reprotect and failback, each as a job
// of reconcile steps persisted in the store. A step looks at what exists
// (networks, disks, machines, DNS) and does only what is missing, so a
// server killed at any moment resumes its jobs on restart without creating
// anything twice. It sits above the parts it drives (vault, host, agents,
// the traffic manager); none of them imports it.
package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/vault"
	"github.com/haven-dr/haven/internal/vnet"
)

// Errors a caller can tell apart.
var (
	ErrPrecondition = errors.New("not possible now")
	ErrBadRequest   = errors.New("bad request")
	errWaiting      = errors.New("waiting for approval")
)

// Params are what an operator passes to a job.
type Params struct {
	// Point: latest (a consistency group at the newest instant all its
	// members have), latest-per-machine, latest-app, latest-consistent,
	// last-clean (before an open encryption alert, points.go),
	// an RFC 3339 time (newest at or before it) or a point ID.
	Point     string `json:"point,omitempty"`
	NoStandby bool   `json:"no_standby,omitempty"`
	// Force: unplanned failover without fencing a primary that answers.
	Force bool `json:"force,omitempty"`
	// DisasterTime overrides the agent's last heartbeat as the moment
	// of the disaster in the data-loss report.
	DisasterTime *time.Time `json:"disaster_time,omitempty"`
	Note         string     `json:"note,omitempty"`
	// Drill is the schedule instant of a drill the server started by
	// itself (drill.go); its test failover then runs the drill's checks.
	Drill *time.Time `json:"drill,omitempty"`
}

// Options wire an Orchestrator.
type Options struct {
	Store store.Store
	// Host is the one recovery host, named local, when Hosts is empty.
	Host host.Host
	// Hosts are the recovery hosts machines are placed on (hosts.go).
	Hosts  []SiteHost
	Vault  *vault.Vault
	Agents AgentDialer
	// Traffic connects to the traffic manager of the config.
	Traffic TrafficDialer
	// DiskDir holds the disks of recovered machines, one directory per job.
	DiskDir string
	// Edge is the namespace the recovery site is joined to (where
	// customers and the traffic manager are); "" for none.
	Edge string
	// Islands: sites on several hosts get no overlay (overlay.go), so
	// machines on different hosts do not reach each other.
	Islands bool
	// StandbyEnabled: RefreshStandby keeps standby images (else it only
	// tracks RPO).
	StandbyEnabled bool
	// Alloc records addresses of NICs in allocate mode.
	Alloc  *vnet.Allocator
	Logger *slog.Logger
	// DrillGrace: a scheduled drill not started within this long of its
	// instant is missed, not run late (default 10m; drill.go).
	DrillGrace time.Duration
	// OnChange, if set, is called after a new config is applied and after
	// a job ends (a drill is recorded by its cleanup job), so the server
	// can save its catalog. It must not block.
	OnChange func()
}

// Orchestrator runs jobs.
type Orchestrator struct {
	Options
	log     *slog.Logger
	metrics *metrics

	mu      sync.Mutex
	running map[string]*runningJob
	// relaunching counts launches waiting for a job's previous goroutine
	// to end (launch), so Wait does not return in between.
	relaunching map[string]int
	reps        replicators
	wg          sync.WaitGroup
	ctx         context.Context
	stop        context.CancelFunc

	// siteMu orders making and removing sites shared by plans (sites.go).
	siteMu sync.Mutex
	// history is the points recorded for SLA reports (history.go).
	history pointHistory
}

type runningJob struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// New makes an orchestrator; Start resumes unfinished jobs.
func New(o Options) *Orchestrator {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	ctx, stop := context.WithCancel(context.Background())
	return &Orchestrator{Options: o, log: o.Logger, metrics: newMetrics(),
		running: map[string]*runningJob{}, relaunching: map[string]int{}, ctx: ctx, stop: stop}
}

// Start resumes every job that was running or being canceled when the
// server stopped; jobs waiting for approval or stopped at a failure wait
// for the operator.
func (o *Orchestrator) Start(ctx context.Context) error {
	jobs, err := o.Store.Jobs(ctx, store.JobFilter{Active: true})
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if j.State == store.Running || j.State == store.Canceling {
			o.log.Info("resuming job", "job", j.ID, "type", j.Type, "plan", j.Plan, "state", j.State)
			o.launch(j)
		}
	}
	o.resumeReplication(ctx)
	return nil
}

// Close stops running jobs where they are (they resume on next Start).
func (o *Orchestrator) Close() {
	o.stop()
	o.wg.Wait()
	o.reps.mu.Lock()
	defer o.reps.mu.Unlock()
	for _, rep := range o.reps.m {
		rep.each(func(x replicator) error { x.release(); return nil })
	}
}

// Config returns the applied protection config.
func (o *Orchestrator) Config(ctx context.Context) (*protection.Config, int64, error) {
	return configIn(ctx, o.Store)
}

// Apply validates a protection document and stores it atomically.
// Nothing changes when it is refused. A plan with a job in flight keeps
// running against the config its job started with.
func (o *Orchestrator) Apply(ctx context.Context, yamlDoc []byte) (int64, *protection.Config, error) {
	a, err := o.ApplyDoc(ctx, yamlDoc)
	if err != nil {
		return 0, nil, err
	}
	return a.Version, a.Config, nil
}

// Applied is what an apply stored: the config's version, the config, and
// where its machines are placed with the N+1 warnings.
type Applied struct {
	Version int64
	Config  *protection.Config
	Fit
}

// ApplyDoc is Apply, also placing the machines on the recovery hosts: a
// document whose machines do not fit every host up is refused, naming
// them; one that does not fit with a host down is stored with warnings.
func (o *Orchestrator) ApplyDoc(ctx context.Context, yamlDoc []byte) (*Applied, error) {
	c, err := protection.Parse(yamlDoc)
	if err != nil {
		return nil, err
	}
	doc, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	reqs := o.requirements(ctx, c) // vault reads, outside the transaction
	var fit *Fit
	// The check of the plans the document drops and the write are one
	// transaction: a job submitted meanwhile waits for it, then runs
	// against the new config or is refused.
	var v int64
	var same bool
	err = o.Store.InTx(ctx, func(tx store.Tx) error {
		if fit, err = o.fit(ctx, tx, reqs); err != nil {
			return err
		}
		cv, cur, err := tx.Config(ctx)
		if err == nil && string(cur) == string(doc) {
			v, same = cv, true
			return nil // idempotent: the same document is no new version
		}
		if err := checkDropped(ctx, tx, c); err != nil {
			return err
		}
		v, err = tx.PutConfig(ctx, doc)
		return err
	})
	if err != nil {
		return nil, err
	}
	if !same {
		o.changed()
	}
	return &Applied{Version: v, Config: c, Fit: *fit}, nil
}

// checkDropped refuses a document that drops a plan which is anywhere
// but protected at the primary, has an active job or a test copy up: the
// plan would vanish with machines running for it, and could no longer be
// committed, canceled, cleaned up or failed back.
func checkDropped(ctx context.Context, tx store.Tx, next *protection.Config) error {
	cur, _, err := configIn(ctx, tx)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	var refused []string
	for _, p := range cur.Plans {
		if next.Plan(p.Name) != nil {
			continue
		}
		why, err := dropBlocker(ctx, tx, p.Name)
		if err != nil {
			return err
		}
		if why != "" {
			refused = append(refused, fmt.Sprintf("plan %s %s", p.Name, why))
		}
	}
	if len(refused) > 0 {
		return fmt.Errorf("%w: the document drops %s; finish or cancel that first, then apply again",
			ErrPrecondition, strings.Join(refused, "; "))
	}
	return nil
}

// dropBlocker is why plan may not be dropped now, or "".
func dropBlocker(ctx context.Context, tx store.Tx, plan string) (string, error) {
	js, err := tx.Jobs(ctx, store.JobFilter{Plan: plan, Active: true})
	if err != nil {
		return "", err
	}
	if len(js) > 0 {
		return fmt.Sprintf("has an active job %s (%s, %s)", js[0].ID, js[0].Type, js[0].State), nil
	}
	st, err := tx.PlanState(ctx, plan)
	if err != nil {
		return "", err
	}
	switch {
	case st.Phase != PhaseProtected:
		return "is " + string(st.Phase) + ", not protected", nil
	case st.Test != "":
		return "has a test copy up (job " + st.Test + "; haven failover cleanup)", nil
	}
	return "", nil
}

func (o *Orchestrator) changed() {
	if o.OnChange != nil {
		o.OnChange()
	}
}
