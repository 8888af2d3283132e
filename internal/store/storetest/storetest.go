// Package storetest is the conformance suite every store.Store
// implementation must pass, so the orchestrator can rely on the contract
// (one active job per plan, ordered logs, persisted job snapshots) whatever
// database is behind it.
package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/store"
)

// Run runs the suite. open must return a new, empty store on every call;
// the suite closes it.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"ConfigVersions", testConfigVersions},
		{"JobConflict", testJobConflict},
		{"JobConflictConcurrent", testJobConflictConcurrent},
		{"JobRoundTrip", testJobRoundTrip},
		{"JobNotFound", testJobNotFound},
		{"JobsFilterOrder", testJobsFilterOrder},
		{"JobsOrderSubSecond", testJobsOrderSubSecond},
		{"Logs", testLogs},
		{"LogsConcurrent", testLogsConcurrent},
		{"PlanState", testPlanState},
		{"Heartbeats", testHeartbeats},
		{"Drills", testDrills},
		{"Audit", testAudit},
	}
	tests = append(tests, historyTests...)
	for _, tc := range append(tests, casTests...) {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

// RunReopen checks that what one store wrote is there after Close and a
// new open. reopen must open the same database on every call.
func RunReopen(t *testing.T, reopen func(t *testing.T) store.Store) {
	ctx := t.Context()
	s := reopen(t)
	v, err := s.PutConfig(ctx, []byte("sites: {}\n"))
	must(t, err)
	j := newJob("j1", "shop", "test", store.Running, base)
	j.Config = json.RawMessage(`{"plans":["shop"]}`)
	must(t, s.CreateJob(ctx, j))
	must(t, s.AppendLog(ctx, "j1", store.LogLine{Time: base, Level: "info", Msg: "booting db"}))
	must(t, s.PutPlanState(ctx, &store.PlanState{Plan: "shop", Phase: "failed-over", Failover: "j1"}))
	must(t, s.PutHeartbeat(ctx, store.Heartbeat{Agent: "a1", Time: base, Report: json.RawMessage(`{"ok":true}`)}))
	must(t, s.AddDrill(ctx, store.Drill{JobID: "j0", Plan: "shop", Started: base, Passed: true}))
	must(t, s.Close())

	s = reopen(t)
	defer s.Close()
	gv, doc, err := s.Config(ctx)
	must(t, err)
	if gv != v || string(doc) != "sites: {}\n" {
		t.Errorf("config after reopen = %d %q, want %d %q", gv, doc, v, "sites: {}\n")
	}
	got, err := s.Job(ctx, "j1")
	must(t, err)
	if !jsonEqual(got.Config, j.Config) || got.State != store.Running {
		t.Errorf("job after reopen: state %q config %s", got.State, got.Config)
	}
	// The active job must still hold its plan after a restart.
	err = s.CreateJob(ctx, newJob("j2", "shop", "planned", store.Running, base.Add(time.Second)))
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateJob after reopen on a held plan: err = %v, want ErrConflict", err)
	}
	logs, err := s.Logs(ctx, "j1", 0)
	must(t, err)
	if len(logs) != 1 || logs[0].Msg != "booting db" {
		t.Errorf("logs after reopen = %+v", logs)
	}
	// Sequences continue rather than restart, so a watcher that saw seq 1
	// does not miss the next line.
	must(t, s.AppendLog(ctx, "j1", store.LogLine{Time: base, Level: "info", Msg: "db healthy"}))
	logs, err = s.Logs(ctx, "j1", 1)
	must(t, err)
	if len(logs) != 1 || logs[0].Seq != 2 {
		t.Errorf("log appended after reopen = %+v, want seq 2", logs)
	}
	st, err := s.PlanState(ctx, "shop")
	must(t, err)
	if st.Phase != "failed-over" || st.Failover != "j1" {
		t.Errorf("plan state after reopen = %+v", st)
	}
	hb, err := s.Heartbeats(ctx)
	must(t, err)
	if len(hb) != 1 || hb[0].Agent != "a1" {
		t.Errorf("heartbeats after reopen = %+v", hb)
	}
	dr, err := s.Drills(ctx, "shop")
	must(t, err)
	if len(dr) != 1 || dr[0].JobID != "j0" || !dr[0].Passed {
		t.Errorf("drills after reopen = %+v", dr)
	}
}

// base is a fixed instant so expected values do not depend on the clock.
var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newJob(id, plan string, typ store.JobType, state store.JobState, created time.Time) *store.Job {
	return &store.Job{ID: id, Plan: plan, Type: typ, State: state, Created: created, Updated: created,
		Steps: []store.Step{{Name: "prepare", State: store.StepPending}}}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// jsonEqual compares documents, not bytes: a database may re-encode JSON.
func jsonEqual(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func ids(jobs []*store.Job) []string {
	out := []string{}
	for _, j := range jobs {
		out = append(out, j.ID)
	}
	return out
}

func testConfigVersions(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, _, err := s.Config(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Config before any: err = %v, want ErrNotFound", err)
	}
	var last int64
	for i := range 3 {
		doc := []byte(fmt.Sprintf("# version %d\nsites: {primary: a, recovery: b}\n", i))
		v, err := s.PutConfig(ctx, doc)
		must(t, err)
		if v <= last {
			t.Fatalf("PutConfig #%d returned version %d, not above %d", i, v, last)
		}
		last = v
		gv, got, err := s.Config(ctx)
		must(t, err)
		if gv != v || !bytes.Equal(got, doc) {
			t.Fatalf("Config = %d %q, want the newest %d %q", gv, got, v, doc)
		}
	}
}

func testJobConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := newJob("j1", "shop", "test", store.Running, base)
	must(t, s.CreateJob(ctx, first))
	// Every active state holds the plan, a failed job included: it waits
	// for retry or cancel.
	for i, state := range []store.JobState{store.Running, store.Waiting, store.Failed, store.Canceling} {
		first.State = state
		must(t, s.SaveJob(ctx, first))
		id := fmt.Sprintf("x%d", i)
		err := s.CreateJob(ctx, newJob(id, "shop", "planned", store.Running, base.Add(time.Second)))
		var ce *store.ConflictError
		if !errors.As(err, &ce) || !errors.Is(err, store.ErrConflict) {
			t.Fatalf("second job while the first is %s: err = %v, want *ConflictError", state, err)
		}
		if ce.Plan != "shop" || ce.JobID != "j1" || ce.Type != "test" {
			t.Errorf("conflict = %+v, want plan shop held by j1 (test)", ce)
		}
		if _, err := s.Job(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("refused job %s was stored: err = %v", id, err)
		}
	}
	// Another plan is independent.
	must(t, s.CreateJob(ctx, newJob("other", "crm", "test", store.Running, base)))

	for i, end := range []store.JobState{store.Succeeded, store.Canceled} {
		holder := "j1"
		if i > 0 {
			holder = "j2"
		}
		j, err := s.Job(ctx, holder)
		must(t, err)
		j.State = end
		must(t, s.SaveJob(ctx, j))
		next := fmt.Sprintf("j%d", i+2)
		if err := s.CreateJob(ctx, newJob(next, "shop", "planned", store.Running, base.Add(time.Duration(i+2)*time.Second))); err != nil {
			t.Fatalf("CreateJob after the holder is %s: %v", end, err)
		}
	}
}

func testJobConflictConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = s.CreateJob(ctx, newJob(fmt.Sprintf("c%02d", i), "shop", "test", store.Running, base))
		})
	}
	close(start)
	wg.Wait()
	winner := ""
	for i, err := range errs {
		switch {
		case err == nil && winner != "":
			t.Errorf("both %s and c%02d were created on one plan", winner, i)
		case err == nil:
			winner = fmt.Sprintf("c%02d", i)
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("c%02d: err = %v, want ErrConflict", i, err)
		}
	}
	if winner == "" {
		t.Fatal("no job was created")
	}
	active, err := s.Jobs(ctx, store.JobFilter{Plan: "shop", Active: true})
	must(t, err)
	if got := ids(active); len(got) != 1 || got[0] != winner {
		t.Errorf("active jobs = %v, want only %s", got, winner)
	}
	for i, err := range errs {
		var ce *store.ConflictError
		if errors.As(err, &ce) && ce.JobID != winner {
			t.Errorf("c%02d was refused naming %s, but %s holds the plan", i, ce.JobID, winner)
		}
	}
}

func testJobRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	j := newJob("j1", "shop", "unplanned", store.Running, base)
	j.Params = json.RawMessage(`{"point": "latest"}`)
	j.Config = json.RawMessage(`{"plans": [{"name": "shop"}]}`)
	must(t, s.CreateJob(ctx, j))
	got, err := s.Job(ctx, "j1")
	must(t, err)
	if !jsonEqual(got.Config, j.Config) || !jsonEqual(got.Params, j.Params) {
		t.Fatalf("created job: config %s params %s, want %s %s", got.Config, got.Params, j.Config, j.Params)
	}

	started, ended := base.Add(time.Second), base.Add(3*time.Second)
	j.State = store.Failed
	j.Steps = []store.Step{
		{Name: "network", State: store.StepDone, Started: &started, Ended: &ended, Tries: 1},
		{Name: "boot db", State: store.StepFailed, Started: &ended, Error: "health: connection refused", Tries: 2},
		{Name: "boot web", State: store.StepPending},
	}
	j.Outputs = json.RawMessage(`{"db": {"point": "p7", "age_s": 12.5}}`)
	j.Report = json.RawMessage(`{"rto_s": 8}`)
	j.Error = "boot db: health: connection refused"
	j.Ended = &ended
	must(t, s.SaveJob(ctx, j))

	got, err = s.Job(ctx, "j1")
	must(t, err)
	if got.ID != "j1" || got.Plan != "shop" || got.Type != "unplanned" || got.State != store.Failed || got.Error != j.Error {
		t.Errorf("saved job = %+v", got)
	}
	if !got.Created.Equal(base) || got.Ended == nil || !got.Ended.Equal(ended) || got.Updated.IsZero() {
		t.Errorf("times: created %v ended %v updated %v", got.Created, got.Ended, got.Updated)
	}
	// The snapshot is hidden from the API (json:"-") yet must survive
	// SaveJob: a resumed job runs against the config it started with.
	if !jsonEqual(got.Config, j.Config) {
		t.Errorf("config snapshot = %s, want %s", got.Config, j.Config)
	}
	for name, pair := range map[string][2]json.RawMessage{"params": {got.Params, j.Params},
		"outputs": {got.Outputs, j.Outputs}, "report": {got.Report, j.Report}} {
		if !jsonEqual(pair[0], pair[1]) {
			t.Errorf("%s = %s, want %s", name, pair[0], pair[1])
		}
	}
	checkSteps(t, got.Steps, j.Steps)
}

func checkSteps(t *testing.T, got, want []store.Step) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("steps = %+v, want %+v", got, want)
	}
	sameTime := func(a, b *time.Time) bool { return (a == nil) == (b == nil) && (a == nil || a.Equal(*b)) }
	for i := range want {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.State != w.State || g.Error != w.Error || g.Tries != w.Tries ||
			!sameTime(g.Started, w.Started) || !sameTime(g.Ended, w.Ended) {
			t.Errorf("step %d = %+v, want %+v", i, g, w)
		}
	}
}

func testJobNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.Job(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Job(unknown): err = %v, want ErrNotFound", err)
	}
	err := s.SaveJob(ctx, newJob("nope", "shop", "test", store.Running, base))
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SaveJob(unknown): err = %v, want ErrNotFound", err)
	}
	// SaveJob must not have created it as a side effect.
	if _, err := s.Job(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Job after a refused SaveJob: err = %v, want ErrNotFound", err)
	}
}

func testJobsFilterOrder(t *testing.T, s store.Store) {
	ctx := t.Context()
	// b is inserted before c but created after it, so order must come
	// from Created, not insertion. Ended jobs go first: an active one
	// holds its plan.
	for _, j := range []*store.Job{
		newJob("e", "crm", "test", store.Succeeded, base.Add(30*time.Second)),
		newJob("a", "shop", "test", store.Succeeded, base.Add(1*time.Minute)),
		newJob("b", "shop", "test", store.Canceled, base.Add(3*time.Minute)),
		newJob("c", "shop", "planned", store.Running, base.Add(2*time.Minute)),
		newJob("d", "crm", "test", store.Waiting, base.Add(4*time.Minute)),
	} {
		must(t, s.CreateJob(ctx, j))
	}
	for _, tc := range []struct {
		f    store.JobFilter
		want []string
	}{
		{store.JobFilter{}, []string{"d", "b", "c", "a", "e"}},
		{store.JobFilter{Plan: "shop"}, []string{"b", "c", "a"}},
		{store.JobFilter{Active: true}, []string{"d", "c"}},
		{store.JobFilter{Plan: "crm", Active: true}, []string{"d"}},
		{store.JobFilter{Limit: 2}, []string{"d", "b"}},
		{store.JobFilter{Plan: "shop", Limit: 2}, []string{"b", "c"}},
		{store.JobFilter{Plan: "none"}, []string{}},
	} {
		got, err := s.Jobs(ctx, tc.f)
		must(t, err)
		if !reflect.DeepEqual(ids(got), tc.want) {
			t.Errorf("Jobs(%+v) = %v, want %v", tc.f, ids(got), tc.want)
		}
	}
	// Ending a job takes it out of the active set.
	c, err := s.Job(ctx, "c")
	must(t, err)
	c.State = store.Succeeded
	must(t, s.SaveJob(ctx, c))
	got, err := s.Jobs(ctx, store.JobFilter{Active: true})
	must(t, err)
	if !reflect.DeepEqual(ids(got), []string{"d"}) {
		t.Errorf("active after c succeeded = %v, want [d]", ids(got))
	}
}

// testJobsOrderSubSecond: jobs started within one second (a retry, a
// cleanup right after a test) must still list newest first.
func testJobsOrderSubSecond(t *testing.T, s store.Store) {
	ctx := t.Context()
	offsets := []time.Duration{0, 500 * time.Millisecond, 100 * time.Millisecond,
		150 * time.Millisecond, time.Second, 1100 * time.Millisecond}
	for i, d := range offsets {
		must(t, s.CreateJob(ctx, newJob(fmt.Sprintf("j%d", i), fmt.Sprintf("p%d", i), "test", store.Succeeded, base.Add(d))))
	}
	want := []string{"j5", "j4", "j1", "j3", "j2", "j0"}
	got, err := s.Jobs(ctx, store.JobFilter{})
	must(t, err)
	if !reflect.DeepEqual(ids(got), want) {
		t.Errorf("Jobs = %v, want newest first %v", ids(got), want)
	}
}

func testLogs(t *testing.T, s store.Store) {
	ctx := t.Context()
	for i := range 5 {
		// A caller's Seq is ignored: the store numbers lines.
		must(t, s.AppendLog(ctx, "j1", store.LogLine{Seq: 99, Time: base.Add(time.Duration(i) * time.Second),
			Level: "info", Msg: fmt.Sprintf("line %d", i)}))
	}
	must(t, s.AppendLog(ctx, "j2", store.LogLine{Time: base, Level: "error", Msg: "other job"}))
	all, err := s.Logs(ctx, "j1", 0)
	must(t, err)
	if len(all) != 5 {
		t.Fatalf("Logs(j1, 0) = %d lines, want 5", len(all))
	}
	for i, l := range all {
		if i > 0 && l.Seq <= all[i-1].Seq {
			t.Errorf("seq %d after %d: not increasing", l.Seq, all[i-1].Seq)
		}
		if l.Msg != fmt.Sprintf("line %d", i) || l.Level != "info" || !l.Time.Equal(base.Add(time.Duration(i)*time.Second)) {
			t.Errorf("line %d = %+v", i, l)
		}
	}
	later, err := s.Logs(ctx, "j1", all[2].Seq)
	must(t, err)
	if len(later) != 2 || later[0].Msg != "line 3" || later[1].Msg != "line 4" {
		t.Errorf("Logs(after seq of line 2) = %+v, want lines 3 and 4", later)
	}
	none, err := s.Logs(ctx, "j1", all[4].Seq)
	must(t, err)
	if len(none) != 0 {
		t.Errorf("Logs(after the last) = %+v, want none", none)
	}
	other, err := s.Logs(ctx, "j2", 0)
	must(t, err)
	if len(other) != 1 || other[0].Msg != "other job" {
		t.Errorf("Logs(j2) = %+v", other)
	}
}

func testLogsConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 40
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.AppendLog(ctx, "j1", store.LogLine{Time: base, Level: "info", Msg: fmt.Sprint(i)})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("append %d: %v", i, err)
		}
	}
	lines, err := s.Logs(ctx, "j1", 0)
	must(t, err)
	seqs, msgs := map[int64]bool{}, map[string]bool{}
	for _, l := range lines {
		if seqs[l.Seq] {
			t.Errorf("seq %d given twice", l.Seq)
		}
		seqs[l.Seq], msgs[l.Msg] = true, true
	}
	if len(lines) != n || len(msgs) != n {
		t.Errorf("%d lines (%d distinct), want %d", len(lines), len(msgs), n)
	}
}

func testPlanState(t *testing.T, s store.Store) {
	ctx := t.Context()
	st, err := s.PlanState(ctx, "shop")
	must(t, err)
	if st.Plan != "shop" || st.Phase != "protected" || st.Test != "" || st.Failover != "" {
		t.Errorf("default plan state = %+v, want phase protected", st)
	}
	if st.Version != 0 {
		t.Errorf("default plan state at version %d, want 0 (never stored)", st.Version)
	}
	first := &store.PlanState{Plan: "shop", Phase: "protected", Test: "t1",
		Data: json.RawMessage(`{"networks": ["hvab"]}`)}
	must(t, s.PutPlanState(ctx, first))
	must(t, s.PutPlanState(ctx, &store.PlanState{Plan: "crm", Phase: "committed", Failover: "f9"}))
	// A write replaces the whole state: the cleared Test must not linger.
	must(t, s.PutPlanState(ctx, &store.PlanState{Plan: "shop", Phase: "failed-over", Failover: "f1", Version: first.Version}))
	st, err = s.PlanState(ctx, "shop")
	must(t, err)
	if st.Phase != "failed-over" || st.Failover != "f1" || st.Test != "" || len(st.Data) != 0 || st.Updated.IsZero() {
		t.Errorf("shop after upsert = %+v", st)
	}
	st, err = s.PlanState(ctx, "crm")
	must(t, err)
	if st.Plan != "crm" || st.Phase != "committed" || st.Failover != "f9" {
		t.Errorf("crm = %+v", st)
	}
}

func testHeartbeats(t *testing.T, s store.Store) {
	ctx := t.Context()
	hb, err := s.Heartbeats(ctx)
	must(t, err)
	if len(hb) != 0 {
		t.Fatalf("heartbeats of an empty store = %+v", hb)
	}
	must(t, s.PutHeartbeat(ctx, store.Heartbeat{Agent: "a1", Time: base, Report: json.RawMessage(`{"n": 1}`)}))
	must(t, s.PutHeartbeat(ctx, store.Heartbeat{Agent: "a2", Time: base, Report: json.RawMessage(`{"n": 2}`)}))
	must(t, s.PutHeartbeat(ctx, store.Heartbeat{Agent: "a1", Time: base.Add(time.Minute), Report: json.RawMessage(`{"n": 3}`)}))
	hb, err = s.Heartbeats(ctx)
	must(t, err)
	got := map[string]store.Heartbeat{}
	for _, h := range hb {
		got[h.Agent] = h
	}
	if len(hb) != 2 || len(got) != 2 {
		t.Fatalf("heartbeats = %+v, want one per agent", hb)
	}
	if h := got["a1"]; !h.Time.Equal(base.Add(time.Minute)) || !jsonEqual(h.Report, json.RawMessage(`{"n":3}`)) {
		t.Errorf("a1 = %+v, want the newest report", h)
	}
	if h := got["a2"]; !h.Time.Equal(base) || !jsonEqual(h.Report, json.RawMessage(`{"n":2}`)) {
		t.Errorf("a2 = %+v", h)
	}
}

func testDrills(t *testing.T, s store.Store) {
	ctx := t.Context()
	all := []store.Drill{
		{JobID: "t1", Plan: "shop", Started: base, CleanedUp: base.Add(time.Minute), Passed: true, RTOSeconds: 7.5, Note: "q1"},
		{JobID: "t2", Plan: "crm", Started: base.Add(time.Hour), CleanedUp: base.Add(61 * time.Minute), Error: "db unhealthy"},
		{JobID: "t3", Plan: "shop", Started: base.Add(2 * time.Hour), CleanedUp: base.Add(121 * time.Minute), Passed: true, RTOSeconds: 6},
	}
	for _, d := range all {
		must(t, s.AddDrill(ctx, d))
	}
	for _, tc := range []struct {
		plan string
		want []store.Drill
	}{
		{"shop", []store.Drill{all[2], all[0]}},
		{"crm", []store.Drill{all[1]}},
		{"", []store.Drill{all[2], all[1], all[0]}},
		{"none", nil},
	} {
		got, err := s.Drills(ctx, tc.plan)
		must(t, err)
		if len(got) != len(tc.want) {
			t.Errorf("Drills(%q) = %+v, want %+v", tc.plan, got, tc.want)
			continue
		}
		for i, w := range tc.want {
			g := got[i]
			if g.JobID != w.JobID || g.Plan != w.Plan || g.Passed != w.Passed || g.RTOSeconds != w.RTOSeconds ||
				g.Note != w.Note || g.Error != w.Error || !g.Started.Equal(w.Started) || !g.CleanedUp.Equal(w.CleanedUp) {
				t.Errorf("Drills(%q)[%d] = %+v, want %+v", tc.plan, i, g, w)
			}
		}
	}
}

func testAudit(t *testing.T, s store.Store) {
	ctx := t.Context()
	got, err := s.Audit(ctx, 10)
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("Audit on an empty store = %+v", got)
	}
	all := []store.AuditEntry{
		{Time: base, Who: "admin", Remote: "127.0.0.1:1", Action: "apply", Status: 200},
		{Time: base.Add(time.Second), Who: "session:ab12cd34 (viewer)", Remote: "[::1]:2", Action: "job.submit", Target: "shop", Status: 403},
		{Time: base.Add(time.Second), Who: "agent:dc1", Remote: "10.0.0.1:3", Action: "job.cancel", Target: "j-1", Status: 409},
	}
	for _, e := range all {
		must(t, s.AppendAudit(ctx, e))
	}
	for _, tc := range []struct {
		limit int
		want  []store.AuditEntry
	}{
		{0, []store.AuditEntry{all[2], all[1], all[0]}},
		{2, []store.AuditEntry{all[2], all[1]}},
		{10, []store.AuditEntry{all[2], all[1], all[0]}},
	} {
		got, err := s.Audit(ctx, tc.limit)
		must(t, err)
		if len(got) != len(tc.want) {
			t.Errorf("Audit(%d) = %+v, want %+v", tc.limit, got, tc.want)
			continue
		}
		for i, w := range tc.want {
			g := got[i]
			if !g.Time.Equal(w.Time) || g.Who != w.Who || g.Remote != w.Remote || g.Action != w.Action ||
				g.Target != w.Target || g.Status != w.Status {
				t.Errorf("Audit(%d)[%d] = %+v, want %+v", tc.limit, i, g, w)
			}
		}
	}
}
