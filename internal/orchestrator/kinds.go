package orchestrator

import (
	"fmt"
	"slices"

	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
)

// JobType names a kind of job; it is stored with the job, so a value never
// changes once released.
type JobType = store.JobType

// Job types.
const (
	TestFailover      JobType = "test-failover"
	TestCleanup       JobType = "test-cleanup"
	PlannedFailover   JobType = "planned-failover"
	UnplannedFailover JobType = "unplanned-failover"
	ChangePoint       JobType = "change-point"
	Commit            JobType = "commit"
	CancelFailover    JobType = "cancel-failover"
	Reprotect         JobType = "reprotect"
	Failback          JobType = "failback"
)

// Phase is where a plan's machines run (store.PlanState.Phase).
type Phase = store.Phase

// Plan phases.
const (
	PhaseProtected   Phase = "protected"
	PhaseFailedOver  Phase = "failed-over"
	PhaseCommitted   Phase = "committed"
	PhaseReprotected Phase = "reprotected"
)

// Site names on the recovery host.
const (
	SiteRecovery = "rec"
	SiteTest     = "test"
)

// param is one field of Params a kind may take.
type param uint8

const (
	takesPoint param = 1 << iota
	takesNoStandby
	takesForce
	takesDisasterTime
	takesNote
)

// kind is everything the engine knows of one job type. Each kind lives in
// its own file (job_*.go) and is listed once in kinds: Submit, load,
// cancel and the CLI ask the kind instead of switching on the type (the
// data-loss report and the shared-machine guard still name types).
type kind struct {
	// takes is the Params fields the kind accepts; others are refused.
	takes param
	// precondition says whether the plan, in state st, may run the kind.
	precondition func(st *store.PlanState) error
	// steps lists the job's steps from its type, params and config
	// snapshot only, so a resumed job gets the same list.
	steps func(r *run, plan *protection.Plan) []step
	// onFailoverDisks: the job works on the disks of the plan's failover
	// job (change of point, reprotect, failback).
	onFailoverDisks bool
	// noReturn names the step from which the job cannot be undone (it
	// removes what it replaces): once it began, cancel is refused and
	// the job goes on.
	noReturn string
	// submitted, if set, changes the plan's state in the transaction
	// that creates the job.
	submitted func(st *store.PlanState, j *store.Job)
}

// kinds is the registry of job kinds. It is filled in init because the
// kinds' steps reach back to the registry (a job loads the failover job it
// acts on), a cycle Go's variable initialisation refuses; nothing changes
// it afterwards.
var kinds map[JobType]*kind

func init() {
	kinds = map[JobType]*kind{
		TestFailover:      testFailoverKind,
		TestCleanup:       testCleanupKind,
		PlannedFailover:   plannedFailoverKind,
		UnplannedFailover: unplannedFailoverKind,
		ChangePoint:       changePointKind,
		Commit:            commitKind,
		CancelFailover:    cancelFailoverKind,
		Reprotect:         reprotectKind,
		Failback:          failbackKind,
		RecoverMachines:   recoverMachinesKind,
	}
}

// Kinds lists the job types in a stable order.
func Kinds() []JobType {
	out := make([]JobType, 0, len(kinds))
	for t := range kinds {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Takes says which options a job of typ accepts, so a client offers
// exactly those (the CLI's flags come from here).
type Takes struct {
	Point, NoStandby, Force, DisasterTime, Note bool
}

// TakesOf is the options of job type typ (none for an unknown type).
func TakesOf(typ JobType) Takes {
	k := kinds[typ]
	if k == nil {
		return Takes{}
	}
	return Takes{Point: k.takes&takesPoint != 0, NoStandby: k.takes&takesNoStandby != 0, Force: k.takes&takesForce != 0,
		DisasterTime: k.takes&takesDisasterTime != 0, Note: k.takes&takesNote != 0}
}

func kindOf(typ JobType) (*kind, error) {
	k := kinds[typ]
	if k == nil {
		return nil, fmt.Errorf("%w: unknown job type %q", ErrBadRequest, typ)
	}
	return k, nil
}

// check refuses the Params fields k does not take.
func (k *kind) check(typ JobType, p Params) error {
	set := []struct {
		on   bool
		bit  param
		flag string
	}{
		{p.Point != "", takesPoint, "--point"},
		{p.NoStandby, takesNoStandby, "--no-standby"},
		{p.Force, takesForce, "--force"},
		{p.DisasterTime != nil, takesDisasterTime, "--disaster-time"},
		{p.Note != "", takesNote, "--note"},
	}
	for _, f := range set {
		if f.on && k.takes&f.bit == 0 {
			return fmt.Errorf("%w: %s is not an option of %s", ErrBadRequest, f.flag, typ)
		}
	}
	return nil
}

// pastNoReturn is the step of j past which it cannot be undone, if it
// began it.
func pastNoReturn(j *store.Job) (string, bool) {
	k := kinds[j.Type]
	if k == nil || k.noReturn == "" {
		return "", false
	}
	for _, s := range j.Steps {
		if s.Name == k.noReturn && s.State != store.StepPending {
			return s.Name, true
		}
	}
	return "", false
}

// need makes a precondition error naming the plan's state.
func need(st *store.PlanState, ok bool, why string) error {
	if ok {
		return nil
	}
	return fmt.Errorf("%w: plan %s is %s%s: %s", ErrPrecondition, st.Plan, st.Phase, testNote(st), why)
}

func testNote(st *store.PlanState) string {
	if st.Test != "" {
		return " (test copy " + st.Test + " up)"
	}
	return ""
}

// RerunAll marks every step of j to run again: for a job in flight when
// its control plane was lost, taken over by one rebuilt from the vault
// without the host it ran on. Each step is a reconcile, so running a done
// one again does on the new host what is missing there. The step past
// which the job cannot be undone stays begun, so cancel is still refused.
func RerunAll(j *store.Job) {
	nr, past := pastNoReturn(j)
	for i := range j.Steps {
		s := &j.Steps[i]
		s.Ended, s.Error = nil, ""
		if past && s.Name == nr {
			s.State = store.StepRunning
		} else {
			s.State, s.Started = store.StepPending, nil
		}
	}
}
