package orchestrator

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
)

// step is one reconcile step: safe to run again after a crash or a retry.
type step struct {
	name string
	run  func(ctx context.Context, r *run) error
}

// run is a job in progress: the job record, its config snapshot and the
// outputs its steps recorded.
type run struct {
	o   *Orchestrator
	job *store.Job
	cfg *protection.Config
	out *Outputs
	p   Params
	// ttlDrain: when answers cached under a lowered TTL have expired
	// (lowerTTL); the stop of a planned failover waits for it.
	ttlDrain time.Time
	// silent: hosts onHost found not answering, with why.
	silent map[string]error
}

func newJobID() string {
	return time.Now().UTC().Format("20060102T150405") + "-" + strings.ToLower(rand.Text()[:6])
}

// Submit checks that a job of typ may run on plan now, records it and
// starts it. A second job on a busy plan is refused naming the job. The
// checks and the writes they guard (the job, the plan's state) are one
// store transaction, so two submits, or a submit and a job ending, cannot
// both act on the state they read.
func (o *Orchestrator) Submit(ctx context.Context, typ JobType, plan string, p Params) (*store.Job, error) {
	if p.Drill != nil {
		return nil, fmt.Errorf("%w: drill is set by the server's drill scheduler only", ErrBadRequest)
	}
	return o.submit(ctx, typ, plan, p, nil)
}

// submit is Submit; also, if set, runs in its transaction before the job
// is created, with the plan's state and the new job, and may refuse it
// (the drill scheduler claims its schedule instant there).
func (o *Orchestrator) submit(ctx context.Context, typ JobType, plan string, p Params,
	also func(tx store.Tx, cfg *protection.Config, st *store.PlanState, j *store.Job) error) (*store.Job, error) {
	k, err := kindOf(typ)
	if err != nil {
		return nil, err
	}
	if err := k.check(typ, p); err != nil {
		return nil, err
	}
	var j *store.Job
	err = o.Store.InTx(ctx, func(tx store.Tx) error {
		cfg, _, err := configIn(ctx, tx)
		if err != nil {
			return err
		}
		if cfg.Plan(plan) == nil {
			return fmt.Errorf("%w: no plan %q in the applied config", ErrBadRequest, plan)
		}
		st, err := tx.PlanState(ctx, plan)
		if err != nil {
			return err
		}
		if err := k.precondition(st); err != nil {
			return err
		}
		if err := sharedMachinesFree(ctx, tx, cfg, typ, plan); err != nil {
			return err
		}
		if j, err = o.newJob(k, typ, cfg, st, p); err != nil {
			return err
		}
		if also != nil {
			if err := also(tx, cfg, st, j); err != nil {
				return err
			}
		}
		if typ == TestCleanup {
			if err := takeOverFailedDrill(ctx, tx, st); err != nil {
				return err
			}
		}
		if err := tx.CreateJob(ctx, j); err != nil {
			return err
		}
		if k.submitted == nil {
			return nil
		}
		k.submitted(st, j)
		return tx.PutPlanState(ctx, st)
	})
	if err != nil {
		return nil, err
	}
	// The catalog then holds the job whole while it runs: a control
	// plane lost mid-failover is rebuilt with it, to retry or cancel.
	o.changed()
	o.metrics.jobsStarted.WithLabelValues(string(typ)).Inc()
	o.launch(j)
	return j, nil
}

// configIn reads the applied config through tx (the Store is a Tx too).
func configIn(ctx context.Context, tx store.Tx) (*protection.Config, int64, error) {
	v, doc, err := tx.Config(ctx)
	if err != nil {
		return nil, 0, err
	}
	var c protection.Config
	if err := json.Unmarshal(doc, &c); err != nil {
		return nil, 0, fmt.Errorf("stored config %d: %w", v, err)
	}
	return &c, v, nil
}

// sharedMachinesFree refuses to bring up a plan's machines while another
// plan holding one of them has them up (or a job in flight): two copies of
// one machine would collide on the recovery host, and a failover of one
// plan would stop primaries the other still counts as protected.
func sharedMachinesFree(ctx context.Context, tx store.Tx, cfg *protection.Config, typ JobType, plan string) error {
	if typ != TestFailover && typ != PlannedFailover && typ != UnplannedFailover {
		return nil
	}
	mine := machinesOf(cfg.Plan(plan))
	for _, other := range cfg.Plans {
		shared := slices.ContainsFunc(machinesOf(&other), func(m string) bool { return slices.Contains(mine, m) })
		if other.Name == plan || !shared {
			continue
		}
		st, err := tx.PlanState(ctx, other.Name)
		if err != nil {
			return err
		}
		active, err := tx.Jobs(ctx, store.JobFilter{Plan: other.Name, Active: true})
		if err != nil {
			return err
		}
		failingOver := slices.ContainsFunc(active, func(j *store.Job) bool {
			return j.Type == PlannedFailover || j.Type == UnplannedFailover
		})
		// A test copy runs on the test site, a failover on the recovery
		// site: only the same kind collides.
		busy := st.Phase != PhaseProtected || failingOver
		if typ == TestFailover {
			busy = st.Test != ""
		}
		if busy {
			return fmt.Errorf("%w: plan %s shares machines with plan %s, which is %s%s or has a job in flight: one plan at a time may bring them up", ErrPrecondition, plan, other.Name, st.Phase, testNote(st))
		}
	}
	return nil
}

// newJob makes the record of a job of kind k, its steps all pending.
func (o *Orchestrator) newJob(k *kind, typ JobType, cfg *protection.Config, st *store.PlanState, p Params) (*store.Job, error) {
	j := &store.Job{ID: newJobID(), Plan: st.Plan, Type: typ, State: store.Running, Created: time.Now().UTC()}
	j.Params, _ = json.Marshal(p)
	j.Config, _ = json.Marshal(cfg)
	out := &Outputs{Started: j.Created, From: st}
	if k.onFailoverDisks {
		out.DiskJob = st.Failover
	}
	r := &run{o: o, job: j, cfg: cfg, out: out, p: p}
	steps, err := r.steps()
	if err != nil {
		return nil, err
	}
	for _, s := range steps {
		j.Steps = append(j.Steps, store.Step{Name: s.name, State: store.StepPending})
	}
	j.Outputs, _ = json.Marshal(out)
	return j, nil
}

// takeOverFailedDrill ends a drill that stopped at a failed step, so the
// cleanup (which removes its copy and records it as failed) may hold the
// plan; retry is no longer possible once cleanup was asked for.
func takeOverFailedDrill(ctx context.Context, tx store.Tx, st *store.PlanState) error {
	if st.Test == "" {
		return nil
	}
	tj, err := tx.Job(ctx, st.Test)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil || tj.State != store.Failed {
		return err
	}
	now := time.Now().UTC()
	tj.State, tj.Ended = store.Canceled, &now
	return tx.SaveJob(ctx, tj)
}

// load rebuilds a run from a stored job.
func (o *Orchestrator) load(j *store.Job) (*run, []step, error) {
	var cfg protection.Config
	if err := json.Unmarshal(j.Config, &cfg); err != nil {
		return nil, nil, fmt.Errorf("job %s: config snapshot: %w", j.ID, err)
	}
	r := &run{o: o, job: j, cfg: &cfg, out: &Outputs{}}
	if err := json.Unmarshal(j.Outputs, r.out); err != nil {
		return nil, nil, fmt.Errorf("job %s: outputs: %w", j.ID, err)
	}
	if len(j.Params) > 0 {
		if err := json.Unmarshal(j.Params, &r.p); err != nil {
			return nil, nil, err
		}
	}
	steps, err := r.steps()
	if err != nil {
		return nil, nil, err
	}
	if j.Steps, err = matchSteps(j.ID, j.Steps, steps); err != nil {
		return nil, nil, err
	}
	return r, steps, nil
}

// matchSteps lines the recorded steps up with the kind's steps of this
// version by name, so a version that reorders or adds steps resumes each
// recorded step where it was and never skips one; a recorded step this
// version does not know is refused rather than dropped.
func matchSteps(id string, recorded []store.Step, steps []step) ([]store.Step, error) {
	// Two steps of one name (two identical actions of a group) are told
	// apart by their order among the steps of that name.
	type key struct {
		name string
		nth  int
	}
	seen := map[string]int{}
	byKey := make(map[key]store.Step, len(recorded))
	for _, s := range recorded {
		byKey[key{s.Name, seen[s.Name]}] = s
		seen[s.Name]++
	}
	clear(seen)
	out := make([]store.Step, len(steps))
	for i, s := range steps {
		k := key{s.name, seen[s.name]}
		seen[s.name]++
		rec, ok := byKey[k]
		if !ok {
			rec = store.Step{Name: s.name, State: store.StepPending}
		}
		delete(byKey, k)
		out[i] = rec
	}
	for k, s := range byKey {
		if s.State != store.StepPending {
			return nil, fmt.Errorf("job %s: step %q (%s) is unknown to this haven version: finish or cancel the job with the version that made it", id, k.name, s.State)
		}
	}
	return out, nil
}

func (o *Orchestrator) launch(j *store.Job) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if prev := o.running[j.ID]; prev != nil {
		// Its goroutine is on its way out (it just stopped at a manual
		// step or a failure, and approve or retry came at once): start
		// again once it is gone, from what it saved. Wait counts the
		// relaunch as running meanwhile.
		o.wg.Add(1)
		o.relaunching[j.ID]++
		go func() {
			defer o.wg.Done()
			<-prev.done
			if o.ctx.Err() == nil {
				o.launch(j)
			}
			o.mu.Lock()
			if o.relaunching[j.ID]--; o.relaunching[j.ID] == 0 {
				delete(o.relaunching, j.ID)
			}
			o.mu.Unlock()
		}()
		return
	}
	ctx, cancel := context.WithCancel(o.ctx)
	rj := &runningJob{cancel: cancel, done: make(chan struct{})}
	o.running[j.ID] = rj
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		defer close(rj.done)
		defer func() {
			o.mu.Lock()
			delete(o.running, j.ID)
			o.mu.Unlock()
		}()
		o.execute(ctx, j.ID)
	}()
}

// execute runs the job's remaining steps (or its undo when canceling).
func (o *Orchestrator) execute(ctx context.Context, id string) {
	j, err := o.Store.Job(ctx, id)
	if err != nil {
		o.log.Error("load job", "job", id, "err", err)
		return
	}
	if j.State != store.Running && j.State != store.Canceling {
		return // ended, failed or waiting meanwhile: nothing to run
	}
	r, steps, err := o.load(j)
	if err != nil {
		o.finish(ctx, j, store.Failed, err.Error())
		return
	}
	if j.State == store.Canceling {
		o.undo(ctx, r)
		return
	}
	for i, s := range steps {
		if st := j.Steps[i].State; st == store.StepDone || st == store.StepSkipped {
			continue
		}
		if err := o.runStep(ctx, r, i, s); err != nil {
			return
		}
	}
	r.finishReport()
	o.finish(ctx, j, store.Succeeded, "")
	o.metrics.observeJob(j)
	r.logf("info", "job %s succeeded", j.Type)
}

// runStep persists the step as running, runs it and records the outcome.
// A non-nil return stops the job (failed, waiting or server shutdown).
func (o *Orchestrator) runStep(ctx context.Context, r *run, i int, s step) error {
	if err := ctx.Err(); err != nil {
		return err // stopped or canceled before the step began: it stays as it was
	}
	j := r.job
	now := time.Now().UTC()
	st := &j.Steps[i]
	if st.State != store.StepRunning || st.Started == nil {
		st.Started = &now
	}
	st.State, st.Error = store.StepRunning, ""
	st.Tries++
	if err := r.save(ctx); err != nil {
		return err
	}
	if st.Tries > 1 {
		r.logf("info", "step %q: try %d (resumed or retried)", s.name, st.Tries)
	}
	err := s.run(ctx, r)
	end := time.Now().UTC()
	switch {
	case err == nil:
		st.State, st.Ended = store.StepDone, &end
		o.metrics.stepSeconds.WithLabelValues(string(j.Type), stepKind(s.name)).Observe(end.Sub(*st.Started).Seconds())
		return r.save(ctx)
	case errors.Is(err, errSkipped):
		st.State, st.Ended = store.StepSkipped, &end
		return r.save(ctx)
	case errors.Is(err, errWaiting):
		j.State = store.Waiting
		r.save(context.WithoutCancel(ctx))
		return err
	case ctx.Err() != nil:
		// Server shutting down or the job canceled: the step stays
		// "running" and is run again on resume.
		return ctx.Err()
	default:
		st.State, st.Error, st.Ended = store.StepFailed, err.Error(), &end
		r.logf("error", "step %q failed: %v", s.name, err)
		o.finish(ctx, j, store.Failed, fmt.Sprintf("step %q: %v", s.name, err))
		o.metrics.observeJob(j)
		return err
	}
}

var errSkipped = errors.New("skipped")

func stepKind(name string) string {
	if i := strings.Index(name, ": "); i >= 0 {
		return name[i+2:]
	}
	return name
}

func (r *run) save(ctx context.Context) error {
	r.job.Outputs, _ = json.Marshal(r.out)
	return r.o.Store.SaveJob(context.WithoutCancel(ctx), r.job)
}

func (o *Orchestrator) finish(ctx context.Context, j *store.Job, state store.JobState, msg string) {
	now := time.Now().UTC()
	j.State, j.Error = state, msg
	if !store.Active(state) {
		j.Ended = &now
	}
	if err := o.Store.SaveJob(context.WithoutCancel(ctx), j); err != nil {
		o.log.Error("save job", "job", j.ID, "err", err)
	}
	o.changed()
}

// endCanceled puts the plan back where it was before the canceled job and
// ends the job, in one transaction: a crash between the two cannot leave
// the plan naming a job that is gone, nor a job canceled with the plan
// still pointing at it.
func (o *Orchestrator) endCanceled(ctx context.Context, j *store.Job) {
	now := time.Now().UTC()
	err := o.Store.InTx(context.WithoutCancel(ctx), func(tx store.Tx) error {
		st, err := tx.PlanState(ctx, j.Plan)
		if err != nil {
			return err
		}
		if st.Test == j.ID || st.Failover == j.ID {
			if st.Test == j.ID {
				st.Test = ""
			}
			if st.Failover == j.ID {
				st.Phase, st.Failover = PhaseProtected, ""
			}
			if err := tx.PutPlanState(ctx, st); err != nil {
				return err
			}
		}
		j.State, j.Error, j.Ended = store.Canceled, "", &now
		return tx.SaveJob(ctx, j)
	})
	if err != nil {
		o.log.Error("end canceled job", "job", j.ID, "err", err)
		return
	}
	o.changed()
	o.metrics.observeJob(j)
}

// logf appends a line to the job's log and the server's log.
func (r *run) logf(level, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.o.log.Info(msg, "job", r.job.ID, "plan", r.job.Plan, "level", level)
	r.o.Store.AppendLog(context.Background(), r.job.ID, store.LogLine{Time: time.Now().UTC(), Level: level, Msg: msg})
}

// Approve lets a job waiting at a manual step go on.
func (o *Orchestrator) Approve(ctx context.Context, id string) (*store.Job, error) {
	j, err := o.Store.Job(ctx, id)
	if err != nil {
		return nil, err
	}
	if j.State != store.Waiting {
		return nil, fmt.Errorf("%w: job %s is %s, not waiting for approval", ErrPrecondition, id, j.State)
	}
	r, _, err := o.load(j)
	if err != nil {
		return nil, err
	}
	for _, s := range j.Steps {
		if s.State == store.StepRunning {
			if r.out.Approved == nil {
				r.out.Approved = map[string]bool{}
			}
			r.out.Approved[s.Name] = true
			r.logf("info", "step %q approved", s.Name)
		}
	}
	j.State = store.Running
	if err := r.save(ctx); err != nil {
		return nil, err
	}
	o.launch(j)
	return j, nil
}

// Retry runs a failed job again from its failed step.
func (o *Orchestrator) Retry(ctx context.Context, id string) (*store.Job, error) {
	j, err := o.Store.Job(ctx, id)
	if err != nil {
		return nil, err
	}
	if j.State != store.Failed {
		return nil, fmt.Errorf("%w: job %s is %s; only a failed job can be retried", ErrPrecondition, id, j.State)
	}
	j.State, j.Error, j.Ended = store.Running, "", nil
	if err := o.Store.SaveJob(ctx, j); err != nil {
		return nil, err
	}
	o.Store.AppendLog(ctx, id, store.LogLine{Time: time.Now().UTC(), Level: "info", Msg: "retry requested"})
	o.launch(j)
	return j, nil
}

// Cancel stops a job and removes what it created (machines, disks,
// networks, DNS changes), newest first.
func (o *Orchestrator) Cancel(ctx context.Context, id string) (*store.Job, error) {
	for try := 0; ; try++ {
		j, err := o.cancel(ctx, id)
		// A job saved by its own goroutine, an approve or a retry
		// since it was read: read it again and decide again, never
		// overwrite what they wrote.
		if !errors.Is(err, store.ErrStale) || try == 4 {
			return j, err
		}
	}
}

func (o *Orchestrator) cancel(ctx context.Context, id string) (*store.Job, error) {
	j, err := o.Store.Job(ctx, id)
	if err != nil {
		return nil, err
	}
	if !store.Active(j.State) {
		return nil, fmt.Errorf("%w: job %s is %s; an ended failover is undone with `haven failover cancel`", ErrPrecondition, id, j.State)
	}
	if step, ok := pastNoReturn(j); ok {
		return nil, o.noReturn(j, step)
	}
	o.mu.Lock()
	rj := o.running[id]
	o.mu.Unlock()
	if rj != nil {
		rj.cancel()
		<-rj.done
		if j, err = o.Store.Job(ctx, id); err != nil {
			return nil, err
		}
		if step, ok := pastNoReturn(j); ok {
			return nil, o.noReturn(j, step) // it crossed while we stopped it
		}
	}
	j.State = store.Canceling
	if err := o.Store.SaveJob(ctx, j); err != nil {
		return nil, err
	}
	o.launch(j)
	return j, nil
}

// noReturn refuses the cancel of job j, which began step, past which it
// cannot be undone; a running job that nothing runs now (stopped for the
// cancel) is started again so it finishes.
func (o *Orchestrator) noReturn(j *store.Job, step string) error {
	if j.State == store.Running {
		o.launch(j) // after the goroutine that still runs it, if any, is gone
	}
	return fmt.Errorf("%w: job %s began %q, which removes what it replaces and cannot be undone: let it finish (haven job retry %s if it failed)", ErrPrecondition, j.ID, step, j.ID)
}

// Wait blocks until job id is no longer running in this process, nor
// about to run again (a relaunch waiting for its previous goroutine).
func (o *Orchestrator) Wait(id string) {
	for {
		o.mu.Lock()
		rj, relaunch := o.running[id], o.relaunching[id] > 0
		o.mu.Unlock()
		switch {
		case rj != nil:
			<-rj.done
		case relaunch:
			time.Sleep(10 * time.Millisecond)
		default:
			return
		}
	}
}
