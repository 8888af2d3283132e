package orchestrator

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/dns"
	"github.com/haven-dr/haven/internal/orchestrator/orchtest"
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
)

// oneGroupShop is the shop with db and web in one consistency group, so
// one agent cycle captures both.
const oneGroupShop = `
sites: {primary: dc1, recovery: dc2}
networks:
  primary: [{name: prod, subnet: 10.1.0.0/24, gateway: 10.1.0.1}]
  recovery: [{name: rec, subnet: 10.2.0.0/24, gateway: 10.2.0.1}]
  test: [{name: drill, subnet: 10.2.0.0/24, gateway: 10.2.0.1}]
mapping: {recovery: {prod: rec}, test: {prod: drill}}
agents: [{name: dc1-agent, url: "http://127.0.0.1:1"}]
traffic: {api: "http://127.0.0.1:1"}
machines:
  - name: db
    agent: dc1-agent
    group: shop
    disks: [{name: root, path: /p/db-root.img}, {name: data, path: /p/db-data.img}]
    nics: [{name: eth0, network: prod, address: 10.1.0.10/24, recovery: static, static: 10.2.0.10}]
    health: {tcp_port: 5432}
  - name: web
    agent: dc1-agent
    group: shop
    disks: [{name: root, path: /p/web-root.img}]
    nics: [{name: eth0, network: prod, address: 10.1.0.20/24, recovery: static, static: 10.2.0.20}]
    health: {tcp_port: 80}
plans:
  - name: shop
    groups:
      - {name: data, machines: [db]}
      - name: front
        machines: [web]
        after: [{name: cut-over, type: dns, profile: shop, endpoint: dc2, directions: [failover]}]
`

// A planned failover with standby images brings every standby to a point
// taken while the machines still run, before it stops them (so the disks
// prepared after the stop differ from the standby by seconds of writes),
// and takes the final points of a consistency group with one agent call
// after the stops: both machines' final points are that call's, at one
// instant, and nothing is lost.
func TestPlannedStandbyBeforeStopOneFinalCallPerGroup(t *testing.T) {
	ctx := context.Background()
	s := newShop(t)
	env, o := s.env, s.o
	var mu sync.Mutex
	var seq []orchtest.Call
	record := func(_ context.Context, c orchtest.Call) error {
		mu.Lock()
		seq = append(seq, c)
		mu.Unlock()
		return nil
	}
	s.agents.SetHook(record)
	s.host.SetHook(record)
	j, err := o.Submit(ctx, PlannedFailover, "shop", Params{})
	if err != nil {
		t.Fatal(err)
	}
	o.Wait(j.ID)
	if j, err = env.Store.Job(ctx, j.ID); err != nil || j.State != store.Succeeded {
		t.Fatalf("planned failover: %v %s: %s", err, j.State, j.Error)
	}

	isStop := func(c orchtest.Call) bool { return c.Method == "Agent.Stop" }
	firstStop, lastStop := slices.IndexFunc(seq, isStop), -1
	for i, c := range seq {
		if isStop(c) {
			lastStop = i
		}
	}
	if firstStop < 0 {
		t.Fatalf("no stop in %v", seq)
	}
	count := func(calls []orchtest.Call, method string) int {
		n := 0
		for _, c := range calls {
			if c.Method == method {
				n++
			}
		}
		return n
	}
	before, after := seq[:firstStop], seq[lastStop+1:]
	if n := count(before, "Agent.Snapshot"); n != 1 {
		t.Errorf("%d snapshots before the stop, want 1 (one group): %v", n, before)
	}
	if n := count(after, "Agent.Snapshot"); n != 1 {
		t.Errorf("%d snapshots after the stops, want 1 (one group): %v", n, after)
	}
	// Every standby disk is brought, before the stop, to the point taken then.
	standby := map[string]string{}
	for _, c := range before {
		if c.Method == "UpdateStandby" {
			standby[c.Machine+"/"+c.Disk] = c.Point
		}
	}
	if len(standby) != 3 {
		t.Fatalf("standby updated before the stop for %v, want db/root, db/data, web/root", standby)
	}
	if n := count(after, "UpdateStandby"); n != 0 {
		t.Errorf("%d standby updates after the stop: the customers would wait for them", n)
	}
	var rep Report
	if err := json.Unmarshal(j.Report, &rep); err != nil {
		t.Fatal(err)
	}
	final := map[string]PointReport{}
	for _, p := range rep.Points {
		final[p.Machine] = p
		if !p.Final || p.DataLossSeconds == nil || *p.DataLossSeconds != 0 {
			t.Errorf("%s: point %+v, want a final point and no data loss", p.Machine, p)
		}
	}
	if len(final) != 2 || !final["db"].Time.Equal(final["web"].Time) {
		t.Fatalf("final points %+v: want db and web at one instant", final)
	}
	for disk, pre := range standby {
		m, _, _ := strings.Cut(disk, "/")
		p, err := env.Vault.FindPoint(ctx, m, pre)
		if err != nil {
			t.Fatalf("standby point %s of %s: %v", pre, disk, err)
		}
		if pre == final[m].Point || !p.Time.Before(final[m].Time) {
			t.Errorf("%s: standby at %s (%s), final %s (%s): want the standby's point taken before the final one", disk, pre, p.Time, final[m].Point, final[m].Time)
		}
	}
	// The pre-stop point is where the standby starts: the same one for
	// the whole group (one cycle).
	if standby["db/root"] != standby["db/data"] {
		t.Errorf("db's disks brought to different points: %v", standby)
	}
}

type shop struct {
	env    *orchtest.Env
	agents *orchtest.Agents
	host   *orchtest.Host
	o      *Orchestrator
}

// newShop is oneGroupShop applied to an orchestrator with standby images,
// fake agents (one point of the group taken), host and DNS.
func newShop(t *testing.T) *shop {
	ctx := context.Background()
	env := orchtest.NewEnv(t)
	cfg, err := protection.Parse([]byte(oneGroupShop))
	if err != nil {
		t.Fatal(err)
	}
	agents, err := orchtest.NewAgents(env.Vault, cfg, filepath.Join(env.Dir, "primary"))
	if err != nil {
		t.Fatal(err)
	}
	if err := agents.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	h := orchtest.NewHost(env.Vault)
	tr := orchtest.NewTraffic()
	tr.AddProfile("shop", dns.EndpointStatus{Name: "dc1", Target: "192.0.2.1", Enabled: true, Priority: 1},
		dns.EndpointStatus{Name: "dc2", Target: "198.51.100.1", Enabled: true, Priority: 2})
	o := New(Options{Store: env.Store, Host: h, Vault: env.Vault, StandbyEnabled: true,
		Agents:  func(a protection.Agent) (AgentClient, error) { return agents.Dial(a) },
		Traffic: func(*protection.Traffic) (Traffic, error) { return tr, nil },
		DiskDir: filepath.Join(env.Dir, "disks"), Edge: "fake-edge", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := o.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	if _, _, err := o.Apply(ctx, []byte(oneGroupShop)); err != nil {
		t.Fatal(err)
	}
	return &shop{env: env, agents: agents, host: h, o: o}
}

// The server's standby refresh leaves the standbys of a plan alone while
// a job holds it (a refresh removes a standby's record while it writes,
// and a failover cloning it then would restore the disk whole), and
// refreshes them again once the job ended.
func TestStandbyRefreshWaitsForPlanJobs(t *testing.T) {
	ctx := context.Background()
	s := newShop(t)
	blk := s.host.Block("StartMachine")
	j, err := s.o.Submit(ctx, TestFailover, "shop", Params{})
	if err != nil {
		t.Fatal(err)
	}
	<-blk.Entered
	if _, err := s.agents.SnapshotAt(ctx, "db", time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	n := s.host.Count("UpdateStandby")
	if err := s.o.RefreshStandby(ctx); err != nil {
		t.Fatal(err)
	}
	if got := s.host.Count("UpdateStandby"); got != n {
		t.Errorf("standby refreshed %d times while a job held the plan", got-n)
	}
	blk.Release()
	s.o.Wait(j.ID)
	if j, err = s.env.Store.Job(ctx, j.ID); err != nil || j.State != store.Succeeded {
		t.Fatalf("test failover: %v %s: %s", err, j.State, j.Error)
	}
	if err := s.o.RefreshStandby(ctx); err != nil {
		t.Fatal(err)
	}
	if got := s.host.Count("UpdateStandby"); got == n {
		t.Error("standby not refreshed after the job ended")
	}
}
