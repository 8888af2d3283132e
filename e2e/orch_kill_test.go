package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/orchestrator"
)

// machineRuns counts the `haven machine run` processes of a recovery
// site's machines, by machine: more than one is a duplicated machine.
func (s *drSite) machineRuns(site string) map[string]int {
	dir := filepath.Join(s.serverState, "host", "machines", site, "detached")
	out := map[string]int{}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		args := strings.Split(string(b), "\x00")
		if len(args) > 4 && args[1] == "machine" && args[2] == "run" && strings.HasPrefix(args[4], dir) {
			out[strings.TrimSuffix(filepath.Base(args[4]), ".json")]++
		}
	}
	return out
}

// killAndResume submits a job, SIGKILLs the server at a random moment
// within about the job's length, restarts it and waits for the job.
// hits counts kills that landed while the job was still running, so the
// test cannot pass with every kill after the job ended.
var hits int

// jobLength learns how long each job type takes (from jobs the kill
// missed), so kills spread over the whole job rather than after it.
var jobLength = map[string]time.Duration{}

func (s *drSite) killAndResume(t *testing.T, rng *rand.Rand, typ string, p api.Params, length time.Duration) *api.Job {
	ctx := context.Background()
	j, err := s.client.Submit(ctx, "shop", typ, p)
	if err != nil {
		t.Fatalf("submit %s: %v", typ, err)
	}
	if l, ok := jobLength[typ]; ok {
		length = l
	}
	delay := time.Duration(rng.Int64N(int64(length)))
	time.Sleep(delay)
	s.kill("server", syscall.SIGKILL)
	killed := time.Now()
	s.startServer()
	end, err := s.client.Watch(ctx, j.ID, nil)
	if err != nil {
		t.Fatalf("watch %s after restart: %v", j.ID, err)
	}
	rep, _ := s.client.Report(ctx, j.ID)
	if end.State != api.JobSucceeded {
		t.Fatalf("%s killed after %s: ended %s: %s\nreport steps: %+v\nserver log:\n%s", typ, delay, end.State, end.Error, rep.Steps, s.log("server"))
	}
	resumed := 0
	for _, st := range end.Steps {
		if st.Tries > 1 {
			resumed++
		}
	}
	hit := end.Ended != nil && end.Ended.After(killed)
	if hit {
		hits++
	} else if end.Ended != nil {
		jobLength[typ] = end.Ended.Sub(end.Created)
	}
	t.Logf("%s killed after %s (mid-job: %v): succeeded; %d step(s) ran again", typ, delay.Round(time.Millisecond), hit, resumed)
	return end
}

// TestServerKilledMidJob kills `haven server` with SIGKILL at random
// moments of test failovers and their cleanups, and of unplanned
// failovers and their cancellation: every job resumes to the same end
// state, with one network, one copy of each disk and machine, and no
// leftovers once cleaned up.
func TestServerKilledMidJob(t *testing.T) {
	s := newDRSite(t)
	ctx := context.Background()
	s.apply()
	s.waitPoints(1)
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	base := countResources(t, s)

	// How long a drill takes here, to spread the kills over it.
	rep, r := s.runJob("failover", "test", "--plan", "shop")
	if r.code != 0 {
		t.Fatalf("calibration drill: %s", rep.Error)
	}
	length := rep.Ended.Sub(rep.Started) + 500*time.Millisecond
	if _, r := s.runJob("failover", "cleanup", "--plan", "shop"); r.code != 0 {
		t.Fatal("calibration cleanup failed")
	}
	t.Logf("a drill takes %s", length)

	check := func(site string) {
		t.Helper()
		runs := s.machineRuns(site)
		if len(runs) != 2 || runs["db"] != 1 || runs["web"] != 1 {
			t.Fatalf("machines on %s after resume: %v (want db and web once each)", site, runs)
		}
		ns := 0
		ents, _ := os.ReadDir("/run/netns")
		for _, e := range ents {
			if e.Name() == s.hostID()+"-"+site {
				ns++
			}
		}
		if ns != 1 {
			t.Fatalf("%d namespaces for site %s", ns, site)
		}
	}
	for i := range 10 {
		s.killAndResume(t, rng, string(orchestrator.TestFailover), api.Params{}, length)
		check(orchestrator.SiteTest)
		if out, err := s.http(s.hostID()+"-test", "GET", "http://10.2.0.20/", ""); err != nil || !strings.Contains(out, "web") {
			t.Fatalf("round %d: test copy does not serve: %q %v", i, out, err)
		}
		s.killAndResume(t, rng, string(orchestrator.TestCleanup), api.Params{}, time.Second)
		if left := leftSince(t, s, base); left != "" {
			t.Fatalf("round %d: %s", i, left)
		}
	}
	if hits < 5 {
		t.Fatalf("only %d of 20 kills landed while a job ran", hits)
	}
	ds, err := s.client.Drills(ctx, "shop")
	if err != nil || len(ds) != 11 {
		t.Fatalf("drills: %d, %v", len(ds), err)
	}

	// Unplanned failovers with DNS cut-over, killed at random moments,
	// then canceled (also killed): DNS changes are made once and undone.
	for i := range 10 {
		j := s.killAndResume(t, rng, string(orchestrator.UnplannedFailover), api.Params{Force: true}, length+time.Second)
		check(orchestrator.SiteRecovery)
		if err := s.expectDNS("10.2.0.20"); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		s.killAndResume(t, rng, string(orchestrator.CancelFailover), api.Params{}, time.Second)
		s.eventually(30*time.Second, "DNS back on the primary", func() error { return s.expectDNS("10.1.0.20") })
		if left := leftSince(t, s, base); left != "" {
			t.Fatalf("round %d (%s): %s", i, j.ID, left)
		}
	}
}

// TestServerKilledMidFailback kills the server at random moments of
// planned failovers and of failbacks: each resumes, no acknowledged write
// is lost either way, and the primary ends serving with the recovery
// site's writes.
func TestServerKilledMidFailback(t *testing.T) {
	s := newDRSite(t)
	ctx := context.Background()
	s.apply()
	s.waitPoints(1)
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 2))
	hits = 0
	rounds := 10
	for i := range rounds {
		var failover *api.Job
		acked := s.writeWhile(t, "10.1.0.20", fmt.Sprintf("p%d-", i), func() {
			failover = s.killAndResume(t, rng, string(orchestrator.PlannedFailover), api.Params{}, 4*time.Second)
		})
		s.checkWrites(t, "10.2.0.20", acked)
		for _, typ := range []string{string(orchestrator.Commit), string(orchestrator.Reprotect)} {
			j, err := s.client.Submit(ctx, "shop", typ, api.Params{})
			if err != nil {
				t.Fatal(err)
			}
			if end, err := s.client.Watch(ctx, j.ID, nil); err != nil || end.State != api.JobSucceeded {
				t.Fatalf("%s after %s: %v %v", typ, failover.ID, end, err)
			}
		}
		var atRecovery []string
		for k := range 5 {
			name := fmt.Sprintf("r%d-%d", i, k)
			if _, err := s.http(s.inet, "POST", "http://10.2.0.20/write?path=/"+name, name); err != nil {
				t.Fatal(err)
			}
			atRecovery = append(atRecovery, name)
		}
		s.killAndResume(t, rng, string(orchestrator.Failback), api.Params{}, 6*time.Second)
		s.eventually(time.Minute, "DNS back on the primary", func() error { return s.expectDNS("10.1.0.20") })
		s.checkWrites(t, "10.1.0.20", append(acked, atRecovery...))
		if runs := s.machineRuns(orchestrator.SiteRecovery); len(runs) != 0 {
			t.Fatalf("round %d: recovery machines left after failback: %v", i, runs)
		}
	}
	if hits < rounds/2 {
		t.Fatalf("only %d of %d kills landed while a job ran", hits, 2*rounds)
	}
}
