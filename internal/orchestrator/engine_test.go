package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/orchestrator/orchtest"
	"github.com/haven-dr/haven/internal/store"
)

// knownBroken lists the engine test cases that fail on today's code, with
// the issue item that fixes them. With HAVEN_KNOWN_BROKEN=skip they are
// skipped; without it they run (and fail). Empty it as the fixes land.
var knownBroken = map[string]string{}

// gate skips a known-broken case when asked to.
func gate(t *testing.T, name string) {
	t.Helper()
	if why, ok := knownBroken[name]; ok && os.Getenv("HAVEN_KNOWN_BROKEN") == "skip" {
		t.Skipf("known broken (%s): %s", name, why)
	}
}

// ends says where a plan's machines, primaries and DNS are after a job.
type ends struct {
	site        string // "recovery" (the failover's site), "test" (the drill's) or "" (none)
	primaries   bool   // the plan's primary machines run
	dns         string // "orig" (untouched), or the endpoint customers get: "dc1", "dc2"
	replicating bool   // replication back runs
}

var kindEnds = map[JobType]ends{
	TestFailover:      {site: "test", primaries: true, dns: "orig"},
	TestCleanup:       {primaries: true, dns: "orig"},
	PlannedFailover:   {site: "recovery", dns: "dc2"},
	UnplannedFailover: {site: "recovery", dns: "dc2"},
	ChangePoint:       {site: "recovery", dns: "dc2"},
	Commit:            {site: "recovery", dns: "dc2"},
	CancelFailover:    {primaries: true, dns: "orig"},
	Reprotect:         {site: "recovery", dns: "dc2", replicating: true},
	Failback:          {primaries: true, dns: "dc1"},
}

// checkWorld asserts that plan's part of the world is as e says.
func (w *world) checkWorld(plan string, e ends) {
	w.t.Helper()
	st := w.plan(plan)
	var where string
	switch e.site {
	case "recovery":
		where = w.outputs(st.Failover).Site
	case "test":
		where = w.outputs(st.Test).Site
	}
	running := w.host.World().Running
	for _, m := range w.machinesOfPlan(plan) {
		for _, k := range running {
			if site, name, _ := strings.Cut(k, "/"); name == m && site != where {
				w.t.Errorf("%s runs on site %s; want only on %q", m, site, where)
			}
		}
		if where != "" && !w.host.Running(where, m) {
			w.t.Errorf("%s does not run on site %s", m, where)
		}
		if got := w.agents.Running(m); got != e.primaries {
			w.t.Errorf("primary %s running=%v, want %v", m, got, e.primaries)
		}
	}
	w.checkDNS(plan, e.dns)
	w.checkPublished(plan, e.site == "recovery")
	rep := w.o.replicatorFor(plan)
	if got := rep != nil && rep.running(); got != e.replicating {
		w.t.Errorf("plan %s replicating back=%v, want %v", plan, got, e.replicating)
	}
	if w.back != nil && w.back.Back.Running(plan) != e.replicating {
		w.t.Errorf("plan %s replicating back on the remote host=%v, want %v", plan, w.back.Back.Running(plan), e.replicating)
	}
}

// checkPublished: a plan's web server is published on the recovery
// site exactly while the plan is failed over there (never for a drill).
func (w *world) checkPublished(plan string, want bool) {
	w.t.Helper()
	var got []string
	for _, p := range w.host.World().Published {
		if strings.HasPrefix(p, SiteRecovery+"/"+plan+"-web ") {
			got = append(got, p)
		}
		if !strings.HasPrefix(p, SiteRecovery+"/") {
			w.t.Errorf("published on a site other than the recovery site: %s", p)
		}
	}
	if want != (len(got) == 1) || len(got) > 1 {
		w.t.Errorf("plan %s published %v, want published=%v", plan, got, want)
	}
}

func (w *world) checkDNS(plan, want string) {
	w.t.Helper()
	eps := w.traffic.Endpoints(plan)
	if want == "orig" {
		if !eps[0].Enabled || eps[0].Priority != 1 || !eps[1].Enabled || eps[1].Priority != 2 {
			w.t.Errorf("DNS of %s changed: %+v", plan, eps)
		}
		return
	}
	ans := w.traffic.Answer(plan)
	for _, e := range eps {
		if e.Name == want && (len(ans) != 1 || ans[0] != e.Target) {
			w.t.Errorf("DNS of %s answers %v, want only %s (%s)", plan, ans, want, e.Target)
		}
	}
}

func (w *world) outputs(id string) *Outputs {
	w.t.Helper()
	j, err := w.env.Store.Job(context.Background(), id)
	if err != nil {
		w.t.Fatalf("job %q: %v", id, err)
	}
	r, _, err := w.o.load(j)
	if err != nil {
		w.t.Fatal(err)
	}
	return r.out
}

// checkOnce asserts that nothing was made twice since before.
func (w *world) checkOnce(before map[string]int, when string) {
	w.t.Helper()
	for k, n := range delta(before, w.creations()) {
		if n > 1 {
			w.t.Errorf("%s: %s created %d times", when, k, n)
		}
	}
}

// A server that dies anywhere, restarted on the same store and vault,
// finishes the job: it dies right after each step was saved, and just
// before each side effect (after the step recorded what it is about to
// create, before the host, agent or DNS call), once at each such point,
// and is resumed each time. One world per kind for all the crashes: the
// same resumes as one world per crash, in a fraction of the time (the
// package must test in under a minute). Nothing is created twice and the
// job ends where an uninterrupted one does (kindEnds).
func TestEngineCrashAnywhereResumes(t *testing.T) {
	for _, k := range jobKinds {
		t.Run(string(k.typ), func(t *testing.T) {
			// Not parallel: the known race of a resumed failback (knownBroken)
			// would be reported on whatever test runs beside it.
			gate(t, "crash "+string(k.typ))
			crashAnywhere(t, k, newWorld)
		})
	}
}

// crashAnywhere crashes a job of kind k in a world mk makes after each
// step and before each side effect, resuming it each time.
func crashAnywhere(t *testing.T, k jobKind, mk func(testing.TB) *world) {
	w := mk(t)
	w.prepare(k, "alpha")
	before := w.creations()
	var mu sync.Mutex
	var stepCrashes, callCrashes int
	crash := func(steps bool) {
		mu.Lock()
		defer mu.Unlock()
		if w.st.isDead() {
			return
		}
		if steps {
			stepCrashes++
		} else {
			callCrashes++
		}
		w.st.setDead(true)
		w.o.stop()
	}
	match := func(j *store.Job) bool { return j.Type == k.typ && j.Plan == "alpha" }
	w.afterStep(match, 0, func() { crash(true) })
	w.onEachCallOnce(func(orchtest.Call) error { crash(false); return errCrashed })
	j := w.submit(k.typ, "alpha", k.paramsFor(w))
	for n := 0; n < 200; n++ {
		if j = w.wait(j.ID); !store.Active(j.State) {
			break
		}
		next := firstUndone(j)
		w.afterStep(match, next, func() { crash(true) })
		w.restart()
		w.checkOnce(before, fmt.Sprintf("resumed at step %d", next+1))
	}
	w.clearHooks()
	w.onEachCallOnce(nil)
	if stepCrashes < len(j.Steps) || (callCrashes == 0 && k.typ != Commit && k.typ != Reprotect) {
		t.Errorf("crashed after %d of %d steps, before %d calls", stepCrashes, len(j.Steps), callCrashes)
	}
	w.checkEnd(k, j)
	w.checkOnce(before, "after every crash")
	w.checkWorld("alpha", kindEnds[k.typ])
}

func firstUndone(j *store.Job) int {
	for i, s := range j.Steps {
		if s.State != store.StepDone && s.State != store.StepSkipped {
			return i
		}
	}
	return len(j.Steps)
}

// onEachCallOnce makes the first call of each distinct side effect (by
// what it acts on; status probes aside) return fn's error after fn ran;
// nil fn removes the hooks.
func (w *world) onEachCallOnce(fn func(orchtest.Call) error) {
	fakes := []*orchtest.Faults{&w.host.Faults, &w.agents.Faults, &w.traffic.Faults}
	if fn == nil {
		for _, f := range fakes {
			f.SetHook(nil)
		}
		return
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	hook := func(ctx context.Context, c orchtest.Call) error {
		if c.Method == "Agent.Status" {
			return nil
		}
		key := w.norm(c.Method + "|" + c.Site + "|" + c.Machine + "|" + c.Disk + "|" + c.Path + "|" + c.Point + "|" + c.Agent)
		mu.Lock()
		defer mu.Unlock()
		if seen[key] {
			return nil
		}
		seen[key] = true
		return fn(c)
	}
	for _, f := range fakes {
		f.SetHook(hook)
	}
}

// Each side effect of a job (host, agent, DNS calls; status probes
// aside) fails once; the operator retries the failed job each time. It
// ends as an uninterrupted job does and nothing is created twice.
func TestEngineFailEachSideEffectOnceRetry(t *testing.T) {
	for _, k := range jobKinds {
		t.Run(string(k.typ), func(t *testing.T) {
			t.Parallel()
			gate(t, "fail once "+string(k.typ))
			w := newWorld(t)
			w.prepare(k, "alpha")
			before := w.creations()
			var fails int
			w.onEachCallOnce(func(c orchtest.Call) error {
				fails++ // under the hook's lock
				return fmt.Errorf("%w: %s", orchtest.ErrInjected, c.Method)
			})
			j := w.wait(w.submit(k.typ, "alpha", k.paramsFor(w)).ID)
			for n := 0; j.State == store.Failed && n < 100; n++ {
				if !strings.Contains(j.Error, orchtest.ErrInjected.Error()) {
					t.Fatalf("failed on its own: %s", j.Error)
				}
				if _, err := w.o.Retry(context.Background(), j.ID); err != nil {
					t.Fatal(err)
				}
				j = w.wait(j.ID)
			}
			w.onEachCallOnce(nil)
			// Commit and reprotect call no fake (reprotect replicates
			// with the real agent code into the real vault).
			if fails == 0 && k.typ != Commit && k.typ != Reprotect {
				t.Error("no side effect failed")
			}
			w.checkEnd(k, j)
			w.checkOnce(before, "after every failure")
			w.checkWorld("alpha", kindEnds[k.typ])
		})
	}
}

// A job canceled right after any of its steps (but the last, after which
// it has ended) puts the world back as it was before it: machines,
// sites, disks, DNS, the primaries and replication, and the plan's state.
func TestEngineCancelAfterEachStep(t *testing.T) {
	for _, k := range jobKinds {
		t.Run(string(k.typ), func(t *testing.T) {
			t.Parallel()
			cancelEachStep(t, k, newWorld)
		})
	}
}

// cancelEachStep cancels a job of kind k in a world mk makes after each
// of its steps and checks the world is put back.
func cancelEachStep(t *testing.T, k jobKind, mk func(testing.TB) *world) {
	// One world for every case while cancels put it back; a
	// new one after a case failed. It lives as long as the
	// parent test.
	parent := t
	var w *world
	var pre worldState
	var prePlan *store.PlanState
	fresh := func(t *testing.T) {
		w = mk(parent)
		w.t = t
		w.prepare(k, "alpha")
		pre, prePlan = w.state(), w.plan("alpha")
	}
	steps := len(w0Steps(t, k))
	for i := 0; i < steps-1; i++ {
		name := fmt.Sprintf("cancel %s after step %d", k.typ, i+1)
		t.Run(fmt.Sprintf("after step %d", i+1), func(t *testing.T) {
			gate(t, name)
			if w == nil {
				fresh(t)
			}
			w.t = t
			defer func() {
				if t.Failed() {
					w = nil // next case starts from a clean world
				}
			}()
			if steps := w0Steps(t, k); pastNoReturnAt(k.typ, steps, i) {
				// Past the step that removes what the job
				// replaces, cancel is refused and the job
				// finishes as if never interrupted.
				j := w.cancelAfter(k, i, true)
				w.checkEnd(k, j)
				w.checkWorld("alpha", kindEnds[k.typ])
				w = nil
				return
			}
			w.cancelAfter(k, i, false)
			if got := w.state(); w.diffState(pre, got) != "" {
				t.Errorf("world after the cancel differs from before the job:%s", w.diffState(pre, got))
			}
			if st := w.plan("alpha"); st.Phase != prePlan.Phase || st.Test != prePlan.Test || st.Failover != prePlan.Failover {
				t.Errorf("plan after the cancel: %+v; before the job: %+v", st, prePlan)
			}
		})
	}
}

// w0Steps are the steps a job of kind k has on plan alpha.
func w0Steps(t *testing.T, k jobKind) []step {
	cfg, err := parseTwoPlans()
	if err != nil {
		t.Fatal(err)
	}
	r := &run{job: &store.Job{Type: k.typ, Plan: "alpha"}, cfg: cfg, out: &Outputs{}}
	s, err := r.steps()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// cancelAfter runs a job of kind k on alpha, cancels it right after its
// step i was saved and waits for the cancel to end.
// pastNoReturnAt: once step i of a job of typ ended, the job has begun
// its step of no return.
func pastNoReturnAt(typ JobType, steps []step, i int) bool {
	nr := kinds[typ].noReturn
	for n := 0; n <= i && nr != ""; n++ {
		if steps[n].name == nr {
			return true
		}
	}
	return false
}

func (w *world) cancelAfter(k jobKind, i int, refused bool) *store.Job {
	w.t.Helper()
	fired := make(chan struct{})
	var id string
	var idMu sync.Mutex
	w.afterStep(func(j *store.Job) bool { return j.Type == k.typ && j.Plan == "alpha" }, i, func() {
		idMu.Lock()
		defer idMu.Unlock()
		w.cancelRunning(id)
		close(fired)
	})
	defer w.clearHooks()
	idMu.Lock()
	j, err := w.o.Submit(context.Background(), k.typ, "alpha", k.paramsFor(w))
	if err != nil {
		idMu.Unlock()
		w.t.Fatal(err)
	}
	id = j.ID
	idMu.Unlock()
	select {
	case <-fired:
	case <-time.After(20 * time.Second):
		w.t.Fatalf("step %d of %s never ended", i+1, k.typ)
	}
	_, err = w.o.Cancel(context.Background(), id)
	if refused {
		if !errors.Is(err, ErrPrecondition) {
			w.t.Fatalf("cancel after step %d, past the point of no return: %v, want it refused", i+1, err)
		}
		return w.wait(id)
	}
	if err != nil {
		w.t.Fatalf("cancel after step %d: %v", i+1, err)
	}
	if j = w.wait(id); j.State != store.Canceled {
		w.t.Fatalf("canceled after step %d (%s): job ends %s: %s", i+1, j.Steps[i].Name, j.State, j.Error)
	}
	return j
}

// planWorld is what a plan has outside the store: its machines wherever
// they run, its disks, its primaries and its DNS profile.
func (w *world) planWorld(plan string) string {
	ms := w.machinesOfPlan(plan)
	var b strings.Builder
	hw := w.host.World()
	for _, k := range hw.Running {
		if _, name, _ := strings.Cut(k, "/"); slices.Contains(ms, name) {
			fmt.Fprintf(&b, "running %s\n", k)
		}
	}
	for _, d := range hw.Disks {
		for _, m := range ms {
			if strings.Contains(d, "/"+m+"/") {
				fmt.Fprintf(&b, "disk %s\n", w.norm(d))
			}
		}
	}
	for _, m := range ms {
		fmt.Fprintf(&b, "primary %s %v\n", m, w.agents.Running(m))
	}
	fmt.Fprintf(&b, "dns %+v\n", w.traffic.Endpoints(plan))
	return b.String()
}

// untouched asserts that no call since the record was reset named one
// of plan's machines.
func (w *world) untouched(plan string) {
	w.t.Helper()
	ms := w.machinesOfPlan(plan)
	for _, c := range w.calls() {
		if touches(c, ms) || strings.HasPrefix(c.Machine, plan+"/") {
			w.t.Errorf("a job of another plan called %s", c)
		}
	}
}

// Jobs on plan alpha never touch plan beta's machines, disks, primaries,
// DNS or its sites, while beta is failed over or in a drill.
func TestEngineTwoPlansApart(t *testing.T) {
	cases := []struct {
		name  string
		beta  []JobType // beta's jobs first
		alpha func(w *world)
	}{
		{"cancel alpha's failover while beta is failed over", []JobType{PlannedFailover}, func(w *world) {
			w.run(PlannedFailover, "alpha", Params{})
			w.run(CancelFailover, "alpha", Params{})
		}},
		{"cancel alpha's running failover while beta is failed over", []JobType{PlannedFailover}, func(w *world) {
			w.cancelAfter(jobKind{typ: PlannedFailover}, 4, false)
		}},
		{"clean up alpha's drill while beta is in a drill", []JobType{TestFailover}, func(w *world) {
			w.run(TestFailover, "alpha", Params{})
			w.run(TestCleanup, "alpha", Params{})
		}},
		{"cancel alpha's drill while beta is in a drill", []JobType{TestFailover}, func(w *world) {
			w.cancelAfter(jobKind{typ: TestFailover}, 3, false)
		}},
		{"fail alpha over and back while beta is failed over", []JobType{PlannedFailover}, func(w *world) {
			for _, typ := range []JobType{PlannedFailover, Commit, Reprotect, Failback} {
				w.run(typ, "alpha", Params{})
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			gate(t, "two plans: "+c.name)
			w := newWorld(t)
			for _, typ := range c.beta {
				w.run(typ, "beta", Params{})
			}
			before, beforePlan := w.planWorld("beta"), w.plan("beta")
			w.resetCalls()
			c.alpha(w)
			w.untouched("beta")
			if got := w.planWorld("beta"); got != before {
				t.Errorf("beta's world changed:\nbefore:\n%s\nafter:\n%s", before, got)
			}
			if st := w.plan("beta"); st.Phase != beforePlan.Phase || st.Test != beforePlan.Test || st.Failover != beforePlan.Failover {
				t.Errorf("beta's state changed: %+v -> %+v", beforePlan, st)
			}
		})
	}
}

// holdFirst submits a job of typ on alpha held at its first call of
// method until the returned release is called.
func (w *world) holdFirst(typ JobType, method string) (*store.Job, *orchtest.Blocker) {
	b := w.fakeOf(method).Block(method)
	j := w.submit(typ, "alpha", Params{})
	select {
	case <-b.Entered:
	case <-time.After(20 * time.Second):
		w.t.Fatalf("%s never called %s", typ, method)
	}
	return j, b
}

// endBeforeCreate makes the next job creation wait until job first has
// ended (at most 3s: a store that creates jobs in a transaction holding
// the only SQLite connection would otherwise never see it end).
func (w *world) endBeforeCreate(first *store.Job, b *orchtest.Blocker) {
	var once sync.Once
	w.st.mu.Lock()
	defer w.st.mu.Unlock()
	w.st.beforeCreate = func(j *store.Job) {
		once.Do(func() {
			b.Release()
			done := make(chan struct{})
			go func() { w.o.Wait(first.ID); close(done) }()
			select {
			case <-done:
			case <-time.After(3 * time.Second):
			}
		})
	}
}

// A failover submitted while another failover of the plan ends between
// Submit's check and its write is refused: exactly one is accepted.
func TestSubmitRaceTwoFailovers(t *testing.T) {
	gate(t, "submit race: two failovers")
	w := newWorld(t)
	first, b := w.holdFirst(PlannedFailover, "Agent.Stop")
	w.endBeforeCreate(first, b)
	second, err := w.o.Submit(context.Background(), PlannedFailover, "alpha", Params{})
	w.clearHooks()
	if j := w.wait(first.ID); j.State != store.Succeeded {
		t.Fatalf("first failover %s: %s", j.State, j.Error)
	}
	if err == nil {
		w.wait(second.ID)
		t.Fatalf("a second failover of a failed-over plan was accepted (job %s)", second.ID)
	}
	if !errors.Is(err, ErrPrecondition) && !errors.Is(err, store.ErrConflict) {
		t.Errorf("second failover refused with %v", err)
	}
	if st := w.plan("alpha"); st.Phase != PhaseFailedOver || st.Failover != first.ID {
		t.Errorf("plan %+v; want failed-over by %s", st, first.ID)
	}
}

// Two failovers of one plan submitted at once: exactly one is accepted.
func TestSubmitConcurrentFailovers(t *testing.T) {
	gate(t, "submit race: concurrent failovers")
	w := newWorld(t)
	var wg sync.WaitGroup
	jobs := make([]*store.Job, 2)
	errs := make([]error, 2)
	for i := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			jobs[i], errs[i] = w.o.Submit(context.Background(), PlannedFailover, "alpha", Params{})
		}()
	}
	wg.Wait()
	accepted := 0
	for i := range jobs {
		if errs[i] == nil {
			accepted++
			w.wait(jobs[i].ID)
		}
	}
	if accepted != 1 {
		t.Fatalf("%d failovers accepted (errors %v)", accepted, errs)
	}
}

// A drill submitted while a failover of the plan ends in the middle of
// Submit does not undo the failover's change of the plan's state.
func TestSubmitRaceKeepsEndingJobsPhase(t *testing.T) {
	gate(t, "submit race: ending job's phase kept")
	w := newWorld(t)
	first, b := w.holdFirst(PlannedFailover, "Agent.Stop")
	w.endBeforeCreate(first, b)
	drill, err := w.o.Submit(context.Background(), TestFailover, "alpha", Params{})
	w.clearHooks()
	if j := w.wait(first.ID); j.State != store.Succeeded {
		t.Fatalf("failover %s: %s", j.State, j.Error)
	}
	if err == nil {
		w.wait(drill.ID)
	}
	st := w.plan("alpha")
	if st.Phase != PhaseFailedOver || st.Failover != first.ID {
		t.Errorf("the failover ended during the drill's submit, and the plan reads %q (failover %q): its change was undone", st.Phase, st.Failover)
	}
	if err == nil && st.Test != drill.ID {
		t.Errorf("accepted drill %s not recorded: test copy %q", drill.ID, st.Test)
	}
}
