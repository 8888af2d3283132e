package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/agent"
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
)

// probeConfig is the full example config with its one agent at url and a
// third machine on it, so several machines share one agent.
func probeConfig(t *testing.T, url string) *protection.Config {
	t.Helper()
	b, err := os.ReadFile("../protection/testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc := regexp.MustCompile(`url: http://127.0.0.1:7480\n\s+token_file: \S+\n`).ReplaceAllString(string(b), "url: "+url+"\n    timeout: 2s\n")
	doc = regexp.MustCompile(`(?m)^machines:\n`).ReplaceAllString(doc, `machines:
  - name: cache
    agent: dc1-agent
    disks: [{name: root, path: /var/lib/haven/cache.img}]
    nics: [{name: eth0, network: prod, address: 10.1.0.30/24}]
    health: {tcp_port: 6379}
`)
	cfg, err := protection.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func probeRun(t *testing.T, cfg *protection.Config, agents AgentDialer) *run {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	o := New(Options{Store: st, Agents: agents})
	t.Cleanup(o.Close)
	j := &store.Job{ID: newJobID(), Plan: "shop", Type: UnplannedFailover, State: store.Running, Created: time.Now().UTC()}
	if err := st.CreateJob(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	return &run{o: o, job: j, cfg: cfg, out: &Outputs{Started: j.Created}}
}

// refusingAddr is a loopback address where nothing listens: connections
// are refused at once, as on a host that is up while Haven's agent is not.
func refusingAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// Issue 23: a dead agent serving several machines must be taken as down
// every time. The probe of each agent used to be overwritten with "answers"
// by the next machine of the same agent, depending on goroutine timing.
func TestCheckPrimaryDeadAgentSeveralMachines(t *testing.T) {
	cfg := probeConfig(t, refusingAddr(t))
	if n := len(cfg.Machines); n < 3 {
		t.Fatalf("config has %d machines, want 3 on one agent", n)
	}
	all := []string{"cache", "db", "web"}
	for i := range 100 {
		r := probeRun(t, cfg, HTTPAgents)
		if err := r.checkPrimary(context.Background(), all); err != nil {
			t.Fatalf("run %d: a dead primary failed the check: %v", i, err)
		}
		if len(r.out.Fenced) != 0 || len(r.out.Resources) != 0 {
			t.Fatalf("run %d: fenced %v (resources %v) on a dead agent", i, r.out.Fenced, r.out.Resources)
		}
		if len(r.out.Disasters) != len(all) {
			t.Fatalf("run %d: disaster moments %v, want one per machine", i, r.out.Disasters)
		}
	}
}

// fakeAgent is a primary agent for the fencing logic: status and stop
// answer or fail as set, snapshots name points.
type fakeAgent struct {
	statusErr func(n int) error
	stopErr   error
	statusN   atomic.Int32
	stops     atomic.Int32
}

func (f *fakeAgent) Status(ctx context.Context) (*agent.Report, error) {
	n := int(f.statusN.Add(1))
	if f.statusErr != nil {
		return nil, f.statusErr(n)
	}
	return &agent.Report{}, nil
}
func (f *fakeAgent) Stop(ctx context.Context, m string) error {
	f.stops.Add(1)
	return f.stopErr
}
func (f *fakeAgent) Start(ctx context.Context, m string) error { return nil }
func (f *fakeAgent) Snapshot(ctx context.Context, m string) (map[string]string, error) {
	return nil, errors.New("no snapshots here")
}
func (f *fakeAgent) Restore(ctx context.Context, m string, req agent.RestoreRequest) (*agent.RestoreResult, error) {
	return nil, errors.New("no restores here")
}

// An agent that answers the probe but is unreachable when asked to fence
// (the primary died in between) leaves the primary taken as down; one that
// answers and refuses to stop fails the step.
func TestCheckPrimaryFenceOutcomes(t *testing.T) {
	unreachable := &UnreachableError{Agent: "dc1-agent", Err: errors.New("connection refused")}
	cases := []struct {
		name      string
		agent     *fakeAgent
		wantErr   bool
		wantFence int
	}{
		{"answers and stops", &fakeAgent{}, false, 3},
		{"dies before the stop", &fakeAgent{stopErr: unreachable, statusErr: func(n int) error {
			if n == 1 {
				return nil
			}
			return unreachable
		}}, false, 0},
		{"answers and refuses", &fakeAgent{stopErr: fmt.Errorf("agent dc1-agent: 500: stop hook failed")}, true, 0},
		{"unreachable on stop but answers again", &fakeAgent{stopErr: unreachable}, true, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := probeConfig(t, "http://127.0.0.1:1")
			r := probeRun(t, cfg, func(protection.Agent) (AgentClient, error) { return c.agent, nil })
			err := r.checkPrimary(context.Background(), []string{"cache", "db", "web"})
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v, want error %v", err, c.wantErr)
			}
			if len(r.out.Fenced) != c.wantFence {
				t.Errorf("fenced %v, want %d machines", r.out.Fenced, c.wantFence)
			}
			if !c.wantErr && len(r.out.Resources) != c.wantFence {
				t.Errorf("resources %v: want one primary-stopped per fenced machine", r.out.Resources)
			}
		})
	}
}

// A fenced machine whose agent cannot snapshot fails over from the newest
// point with a warning; the step does not fail.
func TestFencedPointsFallBack(t *testing.T) {
	cfg := probeConfig(t, "http://127.0.0.1:1")
	r := probeRun(t, cfg, func(protection.Agent) (AgentClient, error) { return &fakeAgent{}, nil })
	r.out.Fenced = []string{"db"}
	if err := r.fencedPoints(context.Background(), []string{"cache", "db", "web"}); err != nil {
		t.Fatal(err)
	}
	if len(r.out.Points) != 0 || len(r.out.Warnings) != 1 {
		t.Errorf("points %v warnings %q: want none and one warning naming db", r.out.Points, r.out.Warnings)
	}
}

// Item 11: an unplanned failover that finds the primary answering fences
// it and then takes final points after the stop, so it loses nothing; the
// report marks them final with no data loss. With fencing forced off, the
// newest points are used and the loss is counted per machine.
func TestUnplannedFencedUsesFinalPoints(t *testing.T) {
	w := newWorld(t)
	w.agents.ResetCalls()
	j := w.run(UnplannedFailover, "alpha", Params{})
	var stops, snaps []string
	for _, c := range w.agents.Calls() {
		switch c.Method {
		case "Agent.Stop":
			stops = append(stops, c.Machine)
		case "Agent.Snapshot":
			if len(stops) < 2 {
				t.Fatalf("a final point of %s was taken before both primaries were fenced (stops %v)", c.Machine, stops)
			}
			snaps = append(snaps, c.Machine)
		}
	}
	if len(stops) != 2 || len(snaps) == 0 {
		t.Fatalf("fence stops %v, snapshots %v: want both machines fenced, then final points", stops, snaps)
	}
	rep, err := BuildReport(j)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Points {
		if !p.Final || p.DataLossSeconds == nil || *p.DataLossSeconds != 0 {
			t.Errorf("%s: point %s final=%v loss=%v: want a final point with no data loss", p.Machine, p.Point, p.Final, p.DataLossSeconds)
		}
	}

	w2 := newWorld(t)
	j = w2.run(UnplannedFailover, "alpha", Params{Force: true})
	rep, err = BuildReport(j)
	if err != nil {
		t.Fatal(err)
	}
	out := w2.outputs(j.ID)
	for _, p := range rep.Points {
		if p.Final || p.DataLossSeconds == nil {
			t.Errorf("forced: %s final=%v loss=%v: want the newest point and a loss window", p.Machine, p.Final, p.DataLossSeconds)
		}
		if _, ok := out.Disasters[p.Machine]; !ok {
			t.Errorf("forced: no disaster moment of %s's own", p.Machine)
		}
	}
}
