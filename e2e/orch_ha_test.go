package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/server/client"
	"github.com/haven-dr/haven/internal/testenv"
)

// slowStep is a script action at the start of the web group that notes
// each run in a file and then takes a while, so a failover has a step
// long enough to be cut in the middle.
func (s *drSite) slowStep(seconds int) (doc, runs string) {
	runs = filepath.Join(s.dir, "script-runs")
	return s.protectionWith(fmt.Sprintf(`{type: script, run: "echo run >> %s; sleep %d", types: [unplanned], timeout: 1m}`, runs, seconds), ""), runs
}

func lines(path string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), "\n")
}

// haLease is the servers' lease: the unit of how fast a follower takes
// over.
const haLease = 4 * time.Second

// haPair is two `haven server` processes on one PostgreSQL, sharing the
// recovery host's state (one machine runs both), or each on a machine
// of its own (apart).
type haPair struct {
	s       *drSite
	db      string
	ports   [2]int
	clients [2]*client.Client
	apart   *haMachines
}

// haMachines puts each server of a pair in a network namespace of its
// own, at its own address, with its own state directory; extra is the
// rest of both configs (vault, hosts:, the shared token files).
type haMachines struct {
	ns, addr, state [2]string
	extra, token    string
	db              string // the test's own way to the database: its unix socket
	dial            func(ctx context.Context, network, addr string) (net.Conn, error)
}

func newHAPair(t *testing.T, s *drSite) *haPair {
	pg := testenv.StartPostgres(t, "fsync=off")
	if _, err := pg.Query(t.Context(), "CREATE DATABASE hvha"); err != nil {
		t.Fatal(err)
	}
	// The fixture's own server (SQLite) makes way; the first HA server
	// takes its port, which the agent reports to.
	s.kill("server", syscall.SIGTERM)
	p := &haPair{s: s, db: pg.URL("hvha"), ports: [2]int{s.serverPort, freePort(t)}}
	p.start(0)
	p.eventuallyLeader(0, time.Minute)
	p.start(1)
	s.client = p.clients[0]
	return p
}

func (p *haPair) name(i int) string { return fmt.Sprintf("ha%d", i) }

func (p *haPair) listen(i int) string {
	if p.apart != nil {
		return fmt.Sprintf("%s:%d", p.apart.addr[i], p.ports[i])
	}
	return fmt.Sprintf("127.0.0.1:%d", p.ports[i])
}

func (p *haPair) start(i int) {
	s := p.s
	state, ns, token := s.serverState, "", filepath.Join(s.serverState, "admin.token")
	extra := fmt.Sprintf("vault: %s\nedge: %s\nstandby_interval: 1s\n", s.vaultURL, s.inet)
	if a := p.apart; a != nil {
		state, ns, token, extra = a.state[i], a.ns[i], a.token, a.extra
	}
	cfg := fmt.Sprintf("listen: %s\nstate_dir: %s\nstate: %q\nha: {lease: %s}\n%s", p.listen(i), state, p.db, haLease, extra)
	path := s.write(p.name(i)+".yaml", cfg)
	s.start(p.name(i), ns, "server", "--config", path)
	s.eventually(time.Minute, p.name(i)+" up", func() error {
		b, err := os.ReadFile(token)
		if err != nil {
			return err
		}
		p.clients[i] = client.New(p.listen(i), strings.TrimSpace(string(b)), 10*time.Second)
		if p.apart != nil {
			p.clients[i].DialWith(p.apart.dial)
		}
		_, err = p.clients[i].Jobs(context.Background(), "", false, 1)
		return err
	})
}

// leader reads the lease from PostgreSQL: which server holds it and its
// fencing epoch.
func (p *haPair) leader() (int, int64, error) {
	ctx := context.Background()
	db := p.db
	if p.apart != nil {
		db = p.apart.db
	}
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		return -1, 0, err
	}
	defer conn.Close(ctx)
	var addr string
	var epoch int64
	var live bool
	if err := conn.QueryRow(ctx, `SELECT addr, epoch, expires > now() FROM leader`).Scan(&addr, &epoch, &live); err != nil {
		return -1, 0, err
	}
	for i := range p.ports {
		if live && addr == "http://"+p.listen(i) {
			return i, epoch, nil
		}
	}
	return -1, epoch, fmt.Errorf("lease held by %s (live %v)", addr, live)
}

func (p *haPair) eventuallyLeader(i int, d time.Duration) int64 {
	var epoch int64
	p.s.eventually(d, p.name(i)+" leads", func() error {
		l, e, err := p.leader()
		if err == nil && l != i {
			err = fmt.Errorf("%s leads", p.name(l))
		}
		epoch = e
		return err
	})
	return epoch
}

// TestHALeaderKilledMidFailover runs two servers on one PostgreSQL,
// submits unplanned failovers through the follower (which forwards them),
// and SIGKILLs the leader at random moments of each: the follower takes
// over within a few leases and finishes the job, no step runs more than
// the once it was cut and once more, and each machine runs once.
func TestHALeaderKilledMidFailover(t *testing.T) {
	s := newDRSite(t)
	p := newHAPair(t, s)
	ctx := context.Background()
	doc, _ := s.slowStep(1)
	s.applyDoc(doc)
	s.waitPoints(1)
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 3))

	failover := func(via int) *api.Job {
		t.Helper()
		j, err := p.clients[via].Submit(ctx, "shop", string(orchestrator.UnplannedFailover), api.Params{Force: true})
		if err != nil {
			t.Fatalf("submit through %s (follower): %v", p.name(via), err)
		}
		return j
	}
	cancel := func(via int) {
		t.Helper()
		j, err := p.clients[via].Submit(ctx, "shop", string(orchestrator.CancelFailover), api.Params{})
		if err != nil {
			t.Fatalf("cancel through %s: %v", p.name(via), err)
		}
		if end, err := p.clients[via].Watch(ctx, j.ID, nil); err != nil || end.State != api.JobSucceeded {
			t.Fatalf("cancel failover: %+v %v\n%s", end, err, s.log(p.name(via)))
		}
		if runs := s.machineRuns(orchestrator.SiteRecovery); len(runs) != 0 {
			t.Fatalf("recovery machines after cancel: %v", runs)
		}
	}

	// How long a failover takes here, to spread the kills over it; the
	// follower forwards it to the leader, which alone runs it.
	j := failover(1)
	end, err := p.clients[1].Watch(ctx, j.ID, nil)
	if err != nil || end.State != api.JobSucceeded {
		t.Fatalf("calibration failover: %+v %v\n%s", end, err, s.log("ha0"))
	}
	length := end.Ended.Sub(end.Created)
	if !strings.Contains(s.log("ha0"), j.ID) || strings.Contains(s.log("ha1"), j.ID) {
		t.Fatalf("job %s did not run on the leader alone", j.ID)
	}
	cancel(1)
	t.Logf("a failover takes %s", length)

	rounds, hits := 4, 0
	for round := range rounds {
		ldr, epoch, err := p.leader()
		if err != nil {
			t.Fatal(err)
		}
		fol := 1 - ldr
		j := failover(fol)
		delay := time.Duration(rng.Int64N(int64(length)))
		time.Sleep(delay)
		s.kill(p.name(ldr), syscall.SIGKILL)
		killed := time.Now()
		newEpoch := p.eventuallyLeader(fol, 4*haLease)
		if newEpoch <= epoch {
			t.Fatalf("round %d: epoch %d after takeover, was %d: no new fencing epoch", round, newEpoch, epoch)
		}
		t.Logf("round %d: killed %s after %s; %s led after %s", round, p.name(ldr), delay.Round(time.Millisecond),
			p.name(fol), time.Since(killed).Round(time.Millisecond))

		end, err := p.clients[fol].Watch(ctx, j.ID, nil)
		if err != nil || end.State != api.JobSucceeded {
			t.Fatalf("round %d: job after takeover: %+v %v\n%s", round, end, err, s.log(p.name(fol)))
		}
		for _, st := range end.Steps {
			if st.Tries > 2 {
				t.Fatalf("round %d: step %q ran %d times", round, st.Name, st.Tries)
			}
		}
		if end.Ended.After(killed) {
			hits++
		}
		if runs := s.machineRuns(orchestrator.SiteRecovery); len(runs) != 2 || runs["db"] != 1 || runs["web"] != 1 {
			t.Fatalf("round %d: machines after takeover: %v (want db and web once each)", round, runs)
		}
		if err := s.expectDNS("10.2.0.20"); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		p.start(ldr) // back as a follower
		cancel(ldr)
		s.eventually(30*time.Second, "DNS back on the primary", func() error { return s.expectDNS("10.1.0.20") })
	}
	if hits < rounds/2 {
		t.Fatalf("only %d of %d kills landed while the failover ran", hits, rounds)
	}
}

// TestHALeaderPausedIsFenced freezes the leader (SIGSTOP) mid-failover
// until the follower has taken over and finished the job, then lets it
// run again: the deposed leader saves nothing more (the job and its
// steps are as the new leader left them), stops and exits.
func TestHALeaderPausedIsFenced(t *testing.T) {
	s := newDRSite(t)
	p := newHAPair(t, s)
	ctx := context.Background()
	doc, runs := s.slowStep(2)
	s.applyDoc(doc)
	s.waitPoints(1)

	cmd := s.procs["ha0"]
	j, err := p.clients[1].Submit(ctx, "shop", string(orchestrator.UnplannedFailover), api.Params{Force: true})
	if err != nil {
		t.Fatalf("submit through the follower: %v", err)
	}
	// Frozen inside the script step: only the server process stops, so
	// its script ends while it is frozen and it wakes with a finished
	// step to save and more steps to run, on a lease another took.
	s.eventually(30*time.Second, "leader runs the script step", func() error {
		if n := lines(runs); n != 1 {
			return fmt.Errorf("%d runs", n)
		}
		return nil
	})
	syscall.Kill(cmd.Process.Pid, syscall.SIGSTOP)
	frozen := true
	defer func() {
		if frozen {
			syscall.Kill(cmd.Process.Pid, syscall.SIGCONT)
		}
	}()
	p.eventuallyLeader(1, 4*haLease)
	end, err := p.clients[1].Watch(ctx, j.ID, nil)
	if err != nil || end.State != api.JobSucceeded {
		t.Fatalf("job after takeover: %+v %v\n%s", end, err, s.log("ha1"))
	}

	time.Sleep(2 * time.Second) // the frozen leader's script ends meanwhile
	syscall.Kill(cmd.Process.Pid, syscall.SIGCONT)
	frozen = false
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		delete(s.procs, "ha0")
		if err == nil || !strings.Contains(s.log("ha0"), "lost the leader lease") {
			t.Fatalf("deposed leader exited with %v, want lost lease:\n%s", err, s.log("ha0"))
		}
	case <-time.After(4 * haLease):
		t.Fatalf("deposed leader still runs %s after resuming:\n%s", 4*haLease, s.log("ha0"))
	}
	after, err := p.clients[1].Job(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !after.Updated.Equal(end.Updated) || after.State != api.JobSucceeded {
		t.Fatalf("job changed after the deposed leader resumed: %+v, was %+v", after, end)
	}
	if a, b := stepsOf(after), stepsOf(end); a != b {
		t.Fatalf("steps after the deposed leader resumed:\n%s\nwere:\n%s", a, b)
	}
	if m := s.machineRuns(orchestrator.SiteRecovery); len(m) != 2 || m["db"] != 1 || m["web"] != 1 {
		t.Fatalf("machines: %v (want db and web once each)", m)
	}
	if n := lines(runs); n != 2 {
		t.Fatalf("script step ran %d times, want 2 (cut on the frozen leader, again on the new one)", n)
	}
}

func stepsOf(j *api.Job) string {
	b, _ := json.Marshal(j.Steps)
	return string(b)
}
