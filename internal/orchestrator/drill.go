package orchestrator

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
)

// Scheduled drills. A plan with `drill:` gets its test failover run by the
// server at each instant of its schedule, then the drill's checks, the
// copy kept up for `keep`, and the cleanup, which records the drill as
// any cleanup does. The scheduler holds no state of its own: each plan's
// store.DrillSchedule says which instant was handled last and which
// drill is in flight, and every change to it is a compare-and-set in the
// same transaction as what it records (the test failover's job, a skip),
// so a server killed anywhere resumes, and two servers never both start
// one instant's drill. Only the leader calls RunDrills; its store is
// fenced like every job's.

// defaultDrillGrace is how late a drill may start before it counts as
// missed (Options.DrillGrace).
const defaultDrillGrace = 10 * time.Minute

// maxSlots bounds the schedule instants one look walks over (an @every 1s
// schedule after a month down): the rest count as missed all the same.
const maxSlots = 100000

// RunDrills starts the drills that are due and moves the ones in flight
// on (cleanup once the test failover ended and its keep passed). It is
// called every few seconds by the leader; each call does one step per
// plan, so it may be cut anywhere.
func (o *Orchestrator) RunDrills(ctx context.Context, now time.Time) error {
	cfg, _, err := o.Config(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	var errs []error
	for i := range cfg.Plans {
		p := &cfg.Plans[i]
		if err := o.drillStep(ctx, p, now); err != nil {
			errs = append(errs, fmt.Errorf("drill of plan %s: %w", p.Name, err))
		}
	}
	return errors.Join(errs...)
}

// NextDrill is the first schedule instant of plan not handled yet (nil
// without a schedule, or before the scheduler first looked at it), and
// the drill in flight: an instant long past with none started is a
// drill overdue.
func (o *Orchestrator) NextDrill(ctx context.Context, p *protection.Plan) (*time.Time, *store.DrillRun, error) {
	if p.Drill == nil {
		return nil, nil, nil
	}
	sched, err := protection.ParseSchedule(p.Drill.Schedule)
	if err != nil {
		return nil, nil, err
	}
	ds, err := o.Store.DrillSchedule(ctx, p.Name)
	if err != nil || ds.Last.IsZero() {
		return nil, nil, err
	}
	next := sched.Next(ds.Last).UTC()
	return &next, ds.Run, nil
}

func (o *Orchestrator) drillStep(ctx context.Context, p *protection.Plan, now time.Time) error {
	ds, err := o.Store.DrillSchedule(ctx, p.Name)
	if err != nil {
		return err
	}
	if ds.Run != nil {
		return o.advanceDrill(ctx, p, ds, now)
	}
	if p.Drill == nil {
		return nil
	}
	if ds.Last.IsZero() {
		// The schedule starts counting when the server first sees it:
		// instants before the plan had a schedule are not missed.
		ds.Last = now
		return o.Store.PutDrillSchedule(ctx, ds)
	}
	sched, err := protection.ParseSchedule(p.Drill.Schedule)
	if err != nil {
		return err
	}
	var due []time.Time
	for t := sched.Next(ds.Last); !t.After(now) && !t.IsZero(); t = sched.Next(t) {
		due = append(due, t.UTC())
		if len(due) == maxSlots {
			break
		}
	}
	if len(due) == 0 {
		return nil
	}
	grace := cmp.Or(o.DrillGrace, defaultDrillGrace)
	newest := due[len(due)-1]
	late := slices.IndexFunc(due, func(t time.Time) bool { return now.Sub(t) <= grace })
	if late < 0 {
		return o.recordMissed(ctx, ds, due, newest)
	}
	if missed := due[:late]; len(missed) > 0 {
		// Older instants beyond the grace are missed; the newest one in
		// it still runs, in the same step once the misses are recorded.
		if err := o.recordMissed(ctx, ds, missed, missed[len(missed)-1]); err != nil {
			return err
		}
	}
	return o.startDrill(ctx, p, ds, newest)
}

// recordMissed records instants the scheduler let pass unstarted and
// moves the schedule past them.
func (o *Orchestrator) recordMissed(ctx context.Context, ds *store.DrillSchedule, missed []time.Time, last time.Time) error {
	first := missed[0]
	why := fmt.Sprintf("missed %d scheduled drill(s) from %s to %s: no server was leading then, or the previous drill still ran",
		len(missed), first.Format(time.RFC3339), missed[len(missed)-1].Format(time.RFC3339))
	d := store.Drill{JobID: scheduledID(ds.Plan, first), Plan: ds.Plan, Started: first, CleanedUp: first,
		Scheduled: &first, Skipped: why, Missed: true}
	return o.skipTx(ctx, ds, last, d)
}

// skipTx records d and moves the schedule to last, if the schedule is
// still at the version ds was read at.
func (o *Orchestrator) skipTx(ctx context.Context, ds *store.DrillSchedule, last time.Time, d store.Drill) error {
	err := o.Store.InTx(ctx, func(tx store.Tx) error {
		cur, err := tx.DrillSchedule(ctx, ds.Plan)
		if err != nil {
			return err
		}
		if cur.Version != ds.Version {
			return fmt.Errorf("%w: drill schedule %s changed", store.ErrStale, ds.Plan)
		}
		if err := tx.AddDrill(ctx, d); err != nil {
			return err
		}
		cur.Last = last
		if err := tx.PutDrillSchedule(ctx, cur); err != nil {
			return err
		}
		ds.Last, ds.Version = cur.Last, cur.Version
		return nil
	})
	if err == nil {
		o.log.Warn("scheduled drill not run", "plan", d.Plan, "why", d.Skipped)
		o.changed()
	}
	return err
}

func scheduledID(plan string, slot time.Time) string {
	return "scheduled:" + plan + ":" + slot.UTC().Format(time.RFC3339)
}

// startDrill submits the test failover of slot, claiming the slot in the
// job's own transaction; a plan that may not drill now gets the slot
// recorded as skipped, with why.
func (o *Orchestrator) startDrill(ctx context.Context, p *protection.Plan, ds *store.DrillSchedule, slot time.Time) error {
	params := Params{Point: p.Drill.Point, Drill: &slot}
	j, err := o.submit(ctx, TestFailover, p.Name, params, func(tx store.Tx, cfg *protection.Config, st *store.PlanState, j *store.Job) error {
		if err := drillAllowed(ctx, tx, cfg, st); err != nil {
			return err
		}
		claim := *ds
		claim.Last, claim.Run = slot, &store.DrillRun{Slot: slot, TestJob: j.ID}
		return tx.PutDrillSchedule(ctx, &claim)
	})
	var conflict *store.ConflictError
	switch {
	case err == nil:
		o.log.Info("scheduled drill started", "plan", p.Name, "slot", slot, "job", j.ID)
		return nil
	case errors.As(err, &conflict), errors.Is(err, ErrPrecondition):
		d := store.Drill{JobID: scheduledID(p.Name, slot), Plan: p.Name, Started: slot, CleanedUp: slot,
			Scheduled: &slot, Skipped: err.Error()}
		return o.skipTx(ctx, ds, slot, d)
	}
	return err
}

// drillAllowed refuses a scheduled drill while the plan is not protected
// at its primary, or a plan sharing its machines has them anywhere else
// or a job in flight. (An operator's test failover is allowed in every
// phase; a drill nobody watches is not.)
func drillAllowed(ctx context.Context, tx store.Tx, cfg *protection.Config, st *store.PlanState) error {
	if st.Phase != PhaseProtected {
		return fmt.Errorf("%w: plan %s is %s: no drill while it is not protected at its primary", ErrPrecondition, st.Plan, st.Phase)
	}
	mine := machinesOf(cfg.Plan(st.Plan))
	for _, other := range cfg.Plans {
		if other.Name == st.Plan || !slices.ContainsFunc(machinesOf(&other), func(m string) bool { return slices.Contains(mine, m) }) {
			continue
		}
		ost, err := tx.PlanState(ctx, other.Name)
		if err != nil {
			return err
		}
		active, err := tx.Jobs(ctx, store.JobFilter{Plan: other.Name, Active: true})
		if err != nil {
			return err
		}
		if ost.Phase != PhaseProtected || len(active) > 0 {
			return fmt.Errorf("%w: plan %s shares machines with plan %s, which is %s%s or has a job in flight",
				ErrPrecondition, st.Plan, other.Name, ost.Phase, testNote(ost))
		}
	}
	return nil
}

// advanceDrill moves the drill in flight one step: its test failover
// ended (and kept its copy up for keep) → cleanup; its cleanup ended →
// done (the cleanup recorded the drill).
func (o *Orchestrator) advanceDrill(ctx context.Context, p *protection.Plan, ds *store.DrillSchedule, now time.Time) error {
	run := ds.Run
	if run.CleanupJob != "" {
		cj, err := o.Store.Job(ctx, run.CleanupJob)
		if errors.Is(err, store.ErrNotFound) {
			return o.dropRun(ctx, ds, run.CleanupJob)
		} else if err != nil {
			return err
		}
		switch cj.State {
		case store.Succeeded:
			ds.Run = nil
		case store.Canceled:
			run.CleanupJob = "" // submitted again next time
		default:
			return nil // running, or failed: an alert, and the operator's
		}
		return o.Store.PutDrillSchedule(ctx, ds)
	}
	tj, err := o.Store.Job(ctx, run.TestJob)
	if errors.Is(err, store.ErrNotFound) {
		return o.dropRun(ctx, ds, run.TestJob)
	} else if err != nil {
		return err
	}
	st, err := o.Store.PlanState(ctx, p.Name)
	if err != nil {
		return err
	}
	switch {
	case tj.State == store.Running || tj.State == store.Waiting || tj.State == store.Canceling:
		return nil
	case st.Test != tj.ID && !store.Active(tj.State):
		// Someone else cleaned the copy up (an operator's cleanup, which
		// recorded the drill, or a cancel of the test failover).
		return o.closeForeign(ctx, ds, tj)
	case tj.State == store.Succeeded:
		if run.TestEnded == nil {
			// The scheduler's clock, not the job's: keep is counted on
			// the clock the schedule runs by.
			run.TestEnded = &now
			return o.Store.PutDrillSchedule(ctx, ds)
		}
		// A schedule removed meanwhile: the drill in flight still ends,
		// its copy kept no longer.
		if p.Drill != nil && now.Before(run.TestEnded.Add(p.Drill.Keep)) {
			return nil
		}
	}
	return o.cleanupDrill(ctx, ds, run)
}

// dropRun forgets a drill whose job the store does not have (a state
// rebuilt without it): there is nothing to clean up or record, and the
// schedule goes on.
func (o *Orchestrator) dropRun(ctx context.Context, ds *store.DrillSchedule, job string) error {
	o.log.Warn("scheduled drill dropped: its job is not in the state", "plan", ds.Plan, "job", job)
	ds.Run = nil
	return o.Store.PutDrillSchedule(ctx, ds)
}

// cleanupDrill submits the cleanup of the drill's test copy, recording
// its job in the schedule in the same transaction.
func (o *Orchestrator) cleanupDrill(ctx context.Context, ds *store.DrillSchedule, run *store.DrillRun) error {
	note := "scheduled drill " + run.Slot.Format(time.RFC3339)
	_, err := o.submit(ctx, TestCleanup, ds.Plan, Params{Note: note}, func(tx store.Tx, _ *protection.Config, _ *store.PlanState, j *store.Job) error {
		next := *ds
		r := *run
		r.CleanupJob = j.ID
		next.Run = &r
		return tx.PutDrillSchedule(ctx, &next)
	})
	var conflict *store.ConflictError
	if errors.As(err, &conflict) {
		return nil // another job holds the plan (an operator's cleanup): next time
	}
	return err
}

// closeForeign ends a drill whose copy someone else removed. A cleanup
// recorded it; a cancel of the test failover did not, so it is recorded
// here as failed.
func (o *Orchestrator) closeForeign(ctx context.Context, ds *store.DrillSchedule, tj *store.Job) error {
	ds2, err := o.Store.Drills(ctx, ds.Plan)
	if err != nil {
		return err
	}
	recorded := slices.ContainsFunc(ds2, func(d store.Drill) bool { return d.JobID == tj.ID })
	return o.Store.InTx(ctx, func(tx store.Tx) error {
		if !recorded {
			d := store.Drill{JobID: tj.ID, Plan: tj.Plan, Started: tj.Created, CleanedUp: *cmp.Or(tj.Ended, &tj.Updated),
				Scheduled: &ds.Run.Slot, Error: "the test failover was " + string(tj.State) + " before the drill finished"}
			if err := tx.AddDrill(ctx, d); err != nil {
				return err
			}
		}
		next := *ds
		next.Run = nil
		return tx.PutDrillSchedule(ctx, &next)
	})
}

// withDrillChecks adds a scheduled drill's checks to its test failover,
// after the plan's own actions and before the copy is marked up: a check
// that fails fails the test failover, and so the drill.
func (r *run) withDrillChecks(plan *protection.Plan, steps []step) []step {
	if r.p.Drill == nil || plan.Drill == nil || len(plan.Drill.Checks) == 0 {
		return steps
	}
	checks := r.actionSteps("drill check", plan.Drill.Checks, "test", "failover", machinesOf(plan), SiteTest)
	last := len(steps) - 1 // "finish"
	return append(steps[:last:last], append(checks, steps[last])...)
}

// drillFacts completes a drill's record from its test failover: the
// schedule instant it ran for and the age of each machine's point.
func drillFacts(d *store.Drill, tj *store.Job, rep *Report) {
	var p Params
	if json.Unmarshal(tj.Params, &p) == nil {
		d.Scheduled = p.Drill
	}
	for _, pr := range rep.Points {
		if d.PointAges == nil {
			d.PointAges = map[string]float64{}
		}
		d.PointAges[pr.Machine] = pr.AgeSeconds
	}
}
