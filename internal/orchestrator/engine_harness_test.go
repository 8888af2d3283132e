package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/dns"
	"github.com/haven-dr/haven/internal/orchestrator/orchtest"
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
)

// twoPlans protects four machines on one agent in two plans of two
// groups each; each plan cuts its own DNS profile over on failover and
// back on failback.
const twoPlans = `
sites: {primary: dc1, recovery: dc2}
networks:
  primary: [{name: prod, subnet: 10.1.0.0/24, gateway: 10.1.0.1}]
  recovery: [{name: rec, subnet: 10.1.0.0/24, gateway: 10.1.0.1}]
  test: [{name: drill, subnet: 10.1.0.0/24, gateway: 10.1.0.1}]
mapping: {recovery: {prod: rec}, test: {prod: drill}}
agents: [{name: dc1-agent, url: "http://127.0.0.1:1"}]
traffic: {api: "http://127.0.0.1:1"}
machines:
%s
plans:
%s
`

const machineDoc = `  - name: %[1]s-db
    agent: dc1-agent
    group: %[1]s-data
    disks: [{name: root, path: /p/%[1]s-db-root.img}, {name: data, path: /p/%[1]s-db-data.img}]
    nics: [{name: eth0, network: prod, address: 10.1.0.%[2]d/24}]
    health: {tcp_port: 5432}
  - name: %[1]s-web
    agent: dc1-agent
    disks: [{name: root, path: /p/%[1]s-web-root.img}]
    nics: [{name: eth0, network: prod, address: 10.1.0.%[3]d/24}]
    health: {tcp_port: 80}
    publish: [{port: 80, on: "198.51.100.%[4]d:443"}]
`

const planDoc = `  - name: %[1]s
    groups:
      - name: data
        machines: [%[1]s-db]
        after: [{type: wait-health}]
      - name: front
        machines: [%[1]s-web]
        after:
          - {name: cut-over, type: dns, profile: %[1]s, endpoint: dc2, types: [planned, unplanned], directions: [failover]}
          - {name: cut-back, type: dns, profile: %[1]s, endpoint: dc1, directions: [failback]}
`

var planNames = []string{"alpha", "beta"}

func twoPlansConfig() string {
	var ms, ps string
	for i, p := range planNames {
		ms += fmt.Sprintf(machineDoc, p, 10+2*i, 11+2*i, i+1)
		ps += fmt.Sprintf(planDoc, p)
	}
	return fmt.Sprintf(twoPlans, ms, ps)
}

func parseTwoPlans() (*protection.Config, error) {
	return protection.Parse([]byte(twoPlansConfig()))
}

var errCrashed = errors.New("server crashed (test)")

// hookStore is the real store seen through hooks: afterSave runs after
// each successful SaveJob, beforeCreate before CreateJob, and once dead
// every write fails, as if the process had died right there.
type hookStore struct {
	store.Store
	mu           sync.Mutex
	dead         bool
	afterSave    func(j *store.Job)
	beforeCreate func(j *store.Job)
}

func (s *hookStore) isDead() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dead
}

func (s *hookStore) setDead(d bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dead = d
}

func (s *hookStore) hooks() (func(*store.Job), func(*store.Job)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.afterSave, s.beforeCreate
}

func (s *hookStore) SaveJob(ctx context.Context, j *store.Job) error {
	if s.isDead() {
		return errCrashed
	}
	if err := s.Store.SaveJob(ctx, j); err != nil {
		return err
	}
	if after, _ := s.hooks(); after != nil {
		after(j)
	}
	return nil
}

func (s *hookStore) CreateJob(ctx context.Context, j *store.Job) error {
	if s.isDead() {
		return errCrashed
	}
	if _, before := s.hooks(); before != nil {
		before(j)
	}
	return s.Store.CreateJob(ctx, j)
}

// InTx runs fn on the real store's transaction seen through the same
// hooks, so the engine's transactional writes crash and hook like the
// single ones.
func (s *hookStore) InTx(ctx context.Context, fn func(tx store.Tx) error) error {
	if s.isDead() {
		return errCrashed
	}
	return s.Store.InTx(ctx, func(tx store.Tx) error { return fn(&hookTx{Tx: tx, s: s}) })
}

type hookTx struct {
	store.Tx
	s *hookStore
}

func (t *hookTx) SaveJob(ctx context.Context, j *store.Job) error {
	if t.s.isDead() {
		return errCrashed
	}
	if err := t.Tx.SaveJob(ctx, j); err != nil {
		return err
	}
	if after, _ := t.s.hooks(); after != nil {
		after(j)
	}
	return nil
}

func (t *hookTx) CreateJob(ctx context.Context, j *store.Job) error {
	if t.s.isDead() {
		return errCrashed
	}
	if _, before := t.s.hooks(); before != nil {
		before(j)
	}
	return t.Tx.CreateJob(ctx, j)
}

func (t *hookTx) PutPlanState(ctx context.Context, st *store.PlanState) error {
	if t.s.isDead() {
		return errCrashed
	}
	return t.Tx.PutPlanState(ctx, st)
}

func (s *hookStore) PutPlanState(ctx context.Context, st *store.PlanState) error {
	if s.isDead() {
		return errCrashed
	}
	return s.Store.PutPlanState(ctx, st)
}

func (s *hookStore) AppendLog(ctx context.Context, id string, l store.LogLine) error {
	if s.isDead() {
		return errCrashed
	}
	return s.Store.AppendLog(ctx, id, l)
}

func (s *hookStore) AddDrill(ctx context.Context, d store.Drill) error {
	if s.isDead() {
		return errCrashed
	}
	return s.Store.AddDrill(ctx, d)
}

func (s *hookStore) PutConfig(ctx context.Context, doc []byte) (int64, error) {
	if s.isDead() {
		return 0, errCrashed
	}
	return s.Store.PutConfig(ctx, doc)
}

// world is one engine under test: a real vault and store, fake host,
// agents and traffic manager, and the orchestrator (remade on restart).
type world struct {
	t       testing.TB
	env     *orchtest.Env
	cfg     *protection.Config
	st      *hookStore
	host    *orchtest.Host
	agents  *orchtest.Agents
	traffic *orchtest.Traffic
	// dial replaces the one traffic manager (several servers).
	dial TrafficDialer
	// hosts, when set, are the recovery hosts instead of host alone
	// (hosts_test.go); standby turns standby images on.
	hosts   []SiteHost
	standby bool
	diskDir string // "" is the default under env.Dir
	// back, when set, is host replicating back itself (a remote host,
	// remote_replication_test.go).
	back *orchtest.BackHost
	o    *Orchestrator
	// seed is the instant of the first points (change-point goes back to it).
	seed time.Time
}

// golden is a seeded world (vault with one point per group, store with
// the config applied, primary disks) built once and copied by newWorld.
var golden struct {
	once sync.Once
	dir  string
	seed time.Time
	err  error
}

func TestMain(m *testing.M) {
	// The replication back (reprotect) runs the agent's code, which logs
	// through the default logger.
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	code := m.Run()
	if golden.dir != "" {
		os.RemoveAll(golden.dir)
	}
	os.Exit(code)
}

func buildGolden() error {
	ctx := context.Background()
	dir, err := orchtest.MkdirTemp()
	if err != nil {
		return err
	}
	golden.dir = dir
	env, err := orchtest.CreateEnv(ctx, dir)
	if err != nil {
		return err
	}
	defer env.Close()
	doc := twoPlansConfig()
	cfg, err := parseTwoPlans()
	if err != nil {
		return err
	}
	agents, err := orchtest.NewAgents(env.Vault, cfg, filepath.Join(dir, "primary"))
	if err != nil {
		return err
	}
	if err := agents.Seed(ctx); err != nil {
		return err
	}
	golden.seed = time.Now().UTC()
	o := New(Options{Store: env.Store, Vault: env.Vault, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	_, _, err = o.Apply(ctx, []byte(doc))
	return err
}

func newWorld(t testing.TB) *world {
	t.Helper()
	golden.once.Do(func() { golden.err = buildGolden() })
	if golden.err != nil {
		t.Fatal(golden.err)
	}
	env := orchtest.CopyEnv(t, golden.dir)
	w := &world{t: t, env: env, st: &hookStore{Store: env.Store}, host: orchtest.NewHost(env.Vault),
		traffic: orchtest.NewTraffic(), seed: golden.seed}
	cfg, err := parseTwoPlans()
	if err != nil {
		t.Fatal(err)
	}
	w.cfg = cfg
	if w.agents, err = orchtest.NewAgents(env.Vault, cfg, filepath.Join(env.Dir, "primary")); err != nil {
		t.Fatal(err)
	}
	for i, p := range planNames {
		w.traffic.AddProfile(p,
			dns.EndpointStatus{Name: "dc1", Target: fmt.Sprintf("192.0.2.%d", i+1), Enabled: true, Priority: 1},
			dns.EndpointStatus{Name: "dc2", Target: fmt.Sprintf("198.51.100.%d", i+1), Enabled: true, Priority: 2})
	}
	w.start()
	t.Cleanup(func() { w.o.Close() })
	return w
}

// start makes a new orchestrator on the world's store and vault (a
// server start) and resumes its jobs.
func (w *world) start() {
	if w.diskDir == "" {
		w.diskDir = filepath.Join(w.env.Dir, "disks")
	}
	w.o = New(Options{Store: w.st, Host: w.host, Hosts: w.hosts, StandbyEnabled: w.standby, Vault: w.env.Vault,
		Agents:  func(a protection.Agent) (AgentClient, error) { return w.agents.Dial(a) },
		Traffic: w.dialTraffic,
		DiskDir: w.diskDir, Edge: "fake-edge",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := w.o.Start(context.Background()); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) dialTraffic(t *protection.Traffic) (Traffic, error) {
	if w.dial != nil {
		return w.dial(t)
	}
	return w.traffic, nil
}

// restart stops the orchestrator where it is and starts a new one.
func (w *world) restart() {
	w.o.Close()
	w.st.setDead(false)
	w.start()
}

func (w *world) submit(typ JobType, plan string, p Params) *store.Job {
	w.t.Helper()
	j, err := w.o.Submit(context.Background(), typ, plan, p)
	if err != nil {
		w.t.Fatalf("submit %s of %s: %v", typ, plan, err)
	}
	return j
}

// wait returns the job once no goroutine of this orchestrator runs it.
func (w *world) wait(id string) *store.Job {
	w.t.Helper()
	done := make(chan struct{})
	go func() { w.o.Wait(id); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		w.t.Fatalf("job %s still runs after 20s", id)
	}
	j, err := w.env.Store.Job(context.Background(), id)
	if err != nil {
		w.t.Fatal(err)
	}
	return j
}

// run submits a job and waits for it to succeed.
func (w *world) run(typ JobType, plan string, p Params) *store.Job {
	w.t.Helper()
	j := w.wait(w.submit(typ, plan, p).ID)
	if j.State != store.Succeeded {
		w.t.Fatalf("%s of %s: %s: %s", typ, plan, j.State, j.Error)
	}
	return j
}

func (w *world) plan(name string) *store.PlanState {
	w.t.Helper()
	st, err := w.env.Store.PlanState(context.Background(), name)
	if err != nil {
		w.t.Fatal(err)
	}
	return st
}

// jobKind is one kind of job under test: how to bring a plan to where it
// may run, its params, and where it leaves the plan.
type jobKind struct {
	typ    JobType
	setup  []JobType // jobs run before, in order
	phase  Phase     // the plan's phase after it succeeded
	test   bool      // the plan holds a test copy after it
	params func(w *world) Params
}

var jobKinds = []jobKind{
	{typ: TestFailover, phase: PhaseProtected, test: true},
	{typ: TestCleanup, setup: []JobType{TestFailover}, phase: PhaseProtected},
	{typ: PlannedFailover, phase: PhaseFailedOver},
	{typ: UnplannedFailover, phase: PhaseFailedOver},
	{typ: ChangePoint, setup: []JobType{PlannedFailover}, phase: PhaseFailedOver,
		params: func(w *world) Params { return Params{Point: w.seed.Format(time.RFC3339Nano)} }},
	{typ: Commit, setup: []JobType{PlannedFailover}, phase: PhaseCommitted},
	{typ: CancelFailover, setup: []JobType{PlannedFailover}, phase: PhaseProtected},
	{typ: Reprotect, setup: []JobType{PlannedFailover, Commit}, phase: PhaseReprotected},
	{typ: Failback, setup: []JobType{PlannedFailover, Commit, Reprotect}, phase: PhaseProtected},
}

func (k jobKind) paramsFor(w *world) Params {
	if k.params == nil {
		return Params{}
	}
	return k.params(w)
}

// prepare brings plan to where a job of kind k may run.
func (w *world) prepare(k jobKind, plan string) {
	w.t.Helper()
	for _, typ := range k.setup {
		w.run(typ, plan, Params{})
	}
}

// checkEnd asserts that job ended succeeded and left plan where k says.
func (w *world) checkEnd(k jobKind, j *store.Job) {
	w.t.Helper()
	if j.State != store.Succeeded {
		w.t.Fatalf("job %s ended %s: %s", j.Type, j.State, j.Error)
	}
	st := w.plan(j.Plan)
	if st.Phase != k.phase || (st.Test != "") != k.test {
		w.t.Fatalf("after %s, plan %s is %q (test copy %q); want %q, test copy %v", j.Type, j.Plan, st.Phase, st.Test, k.phase, k.test)
	}
}

// worldState is everything a job changes outside the store, names
// normalized (job IDs, temporary directories) so two runs compare.
type worldState struct {
	Host        orchtest.World
	Primaries   map[string]bool
	DNS         map[string][]dns.EndpointStatus
	Replicating []string
	// HostReplicating: the plans a remote host replicates back.
	HostReplicating []string
}

func (w *world) state() worldState {
	ws := worldState{Host: w.host.World(), Primaries: w.agents.RunningSet(), DNS: map[string][]dns.EndpointStatus{}}
	for i, d := range ws.Host.Disks {
		ws.Host.Disks[i] = w.norm(d)
	}
	sort.Strings(ws.Host.Disks)
	for _, p := range planNames {
		ws.DNS[p] = w.traffic.Endpoints(p)
	}
	w.o.reps.mu.Lock()
	for name, rep := range w.o.reps.m {
		if rep.running() {
			ws.Replicating = append(ws.Replicating, name)
		}
	}
	w.o.reps.mu.Unlock()
	if w.back != nil {
		for _, p := range planNames {
			if w.back.Back.Running(p) {
				ws.HostReplicating = append(ws.HostReplicating, p)
			}
		}
	}
	sort.Strings(ws.Replicating)
	return ws
}

var jobIDRE = regexp.MustCompile(`\d{8}T\d{6}-[a-z0-9]{6}`)

func (w *world) norm(s string) string {
	return jobIDRE.ReplaceAllLiteralString(strings.ReplaceAll(s, w.env.Dir, "$DIR"), "$JOB")
}

// creations are the host's creation counts, normalized.
func (w *world) creations() map[string]int {
	out := map[string]int{}
	for k, v := range w.host.Creations() {
		out[w.norm(k)] += v
	}
	return out
}

// delta is after minus before, without zeros.
func delta(before, after map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// diffState names the parts of the world that differ.
func (w *world) diffState(want, got worldState) string {
	var b strings.Builder
	part := func(name string, x, y any) {
		if !reflect.DeepEqual(x, y) {
			fmt.Fprintf(&b, "\n %s: want %v\n %s: got  %v", name, x, name, y)
		}
	}
	part("sites", want.Host.Sites, got.Host.Sites)
	part("running", want.Host.Running, got.Host.Running)
	part("disks", want.Host.Disks, got.Host.Disks)
	part("primaries running", want.Primaries, got.Primaries)
	for _, p := range planNames {
		part("dns "+p, want.DNS[p], got.DNS[p])
	}
	part("replicating back", want.Replicating, got.Replicating)
	return b.String()
}

// calls are every fake's calls so far.
func (w *world) calls() []orchtest.Call {
	var out []orchtest.Call
	out = append(out, w.host.Calls()...)
	out = append(out, w.agents.Calls()...)
	return append(out, w.traffic.Calls()...)
}

func (w *world) resetCalls() {
	w.host.ResetCalls()
	w.agents.ResetCalls()
	w.traffic.ResetCalls()
}

// fakeOf returns the fake that serves method.
func (w *world) fakeOf(method string) *orchtest.Faults {
	switch {
	case strings.HasPrefix(method, "Agent."):
		return &w.agents.Faults
	case strings.HasPrefix(method, "Traffic."):
		return &w.traffic.Faults
	}
	return &w.host.Faults
}

// afterStep calls fn (in the job's goroutine) right after step i of the
// job match selects is saved done or skipped, once.
func (w *world) afterStep(match func(*store.Job) bool, i int, fn func()) {
	var once sync.Once
	w.st.mu.Lock()
	defer w.st.mu.Unlock()
	w.st.afterSave = func(j *store.Job) {
		if !match(j) || i >= len(j.Steps) {
			return
		}
		if s := j.Steps[i].State; s == store.StepDone || s == store.StepSkipped {
			once.Do(fn)
		}
	}
}

func (w *world) clearHooks() {
	w.st.mu.Lock()
	defer w.st.mu.Unlock()
	w.st.afterSave, w.st.beforeCreate = nil, nil
}

// cancelRunning cancels job id's context as an operator's cancel does,
// without waiting (it is called from the job's own goroutine).
func (w *world) cancelRunning(id string) {
	w.o.mu.Lock()
	defer w.o.mu.Unlock()
	if rj := w.o.running[id]; rj != nil {
		rj.cancel()
	}
}

// machinesOfPlan are the plan's machine names.
func (w *world) machinesOfPlan(plan string) []string {
	return machinesOf(w.cfg.Plan(plan))
}

func touches(c orchtest.Call, machines []string) bool {
	return slices.Contains(machines, c.Machine)
}

// crashThrough runs a job of typ on plan with the server dying right
// after each of its steps (restarted on the same store each time) until
// it ends; it fails the test unless the job succeeded after a crash at
// every step.
func (w *world) crashThrough(typ JobType, plan string) *store.Job {
	w.t.Helper()
	crashes := 0
	crash := func() {
		if !w.st.isDead() {
			crashes++
			w.st.setDead(true)
			w.o.stop()
		}
	}
	match := func(j *store.Job) bool { return j.Type == typ }
	w.afterStep(match, 0, crash)
	j := w.submit(typ, plan, Params{})
	for range 50 {
		if j = w.wait(j.ID); !store.Active(j.State) {
			break
		}
		w.afterStep(match, firstUndone(j), crash)
		w.restart()
	}
	w.clearHooks()
	if j.State != store.Succeeded || crashes < len(j.Steps) {
		w.t.Fatalf("%s ended %s (%s) after %d crashes over %d steps", typ, j.State, j.Error, crashes, len(j.Steps))
	}
	return j
}
