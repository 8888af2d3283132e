package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/store"
)

// waitState waits until job id is in state want.
func (s *drSite) waitState(t *testing.T, id string, want store.JobState) *api.Job {
	t.Helper()
	var j *api.Job
	s.eventually(2*time.Minute, "job "+id+" "+string(want), func() error {
		var err error
		if j, err = s.client.Job(context.Background(), id); err != nil {
			return err
		}
		if j.State != string(want) {
			return &stateErr{j.State}
		}
		return nil
	})
	return j
}

type stateErr struct{ s string }

func (e *stateErr) Error() string { return "state " + e.s }

func jobID(t *testing.T, out string) string {
	t.Helper()
	f := strings.Fields(out)
	if len(f) < 2 || f[0] != "job" {
		t.Fatalf("no job ID in %q", out)
	}
	return strings.TrimSuffix(f[1], ":")
}

// TestOrchestratorOperatorPaths: a manual step waits for approval, a
// failed step stops the job with what it made recorded, retry finishes it,
// cancel removes what it made; an unplanned failover fences a primary that
// still answers, change-point moves to an older point, and canceling the
// failover starts the primary again and moves DNS back.
func TestOrchestratorOperatorPaths(t *testing.T) {
	s := newDRSite(t)
	ctx := context.Background()
	marker := filepath.Join(s.dir, "smoke-ok")
	s.applyDoc(s.protectionWith(`{type: manual, message: "check the database copy", types: [test]}`,
		`- {type: script, name: smoke, run: "test -f `+marker+` && test -n \"$HAVEN_ADDR_WEB\"", types: [test]}`))
	s.waitPoints(1)
	base := countResources(t, s)

	t.Run("approve, fail, retry", func(t *testing.T) {
		out := mustHaven(t, s.serverEnv(), "failover", "test", "--plan", "shop", "--detach")
		id := jobID(t, out)
		s.waitState(t, id, store.Waiting)
		if r := haven(t, s.serverEnv(), "job", "approve", id); r.code != 11 || !strings.Contains(r.stderr, "smoke") {
			t.Fatalf("approve then failing script: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		j, _ := s.client.Job(ctx, id)
		if j.State != api.JobFailed {
			t.Fatalf("job %s is %s", id, j.State)
		}
		if err := os.WriteFile(marker, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if r := haven(t, s.serverEnv(), "job", "retry", id); r.code != 0 {
			t.Fatalf("retry: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		rep, _ := s.client.Report(ctx, id)
		for _, st := range rep.Steps {
			if strings.Contains(st.Name, "smoke") && st.Tries != 2 {
				t.Errorf("smoke step ran %d times, want 2", st.Tries)
			}
			if strings.HasSuffix(st.Name, ": start") && st.Tries != 1 {
				t.Errorf("step %q ran %d times: retry must resume at the failed step", st.Name, st.Tries)
			}
		}
		mustHaven(t, s.serverEnv(), "failover", "cleanup", "--plan", "shop")
		if left := leftSince(t, s, base); left != "" {
			t.Fatal(left)
		}
	})

	t.Run("failed drill cleaned up and recorded", func(t *testing.T) {
		if err := os.Remove(marker); err != nil {
			t.Fatal(err)
		}
		id := jobID(t, mustHaven(t, s.serverEnv(), "failover", "test", "--plan", "shop", "--detach"))
		s.waitState(t, id, store.Waiting)
		if r := haven(t, s.serverEnv(), "job", "approve", id); r.code != 11 {
			t.Fatalf("approve: exit %d %s", r.code, r.stderr)
		}
		if r := haven(t, s.serverEnv(), "failover", "cleanup", "--plan", "shop", "--note", "smoke failed"); r.code != 0 {
			t.Fatalf("cleanup of a failed drill: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if left := leftSince(t, s, base); left != "" {
			t.Fatal(left)
		}
		ds, err := s.client.Drills(ctx, "shop")
		if err != nil || len(ds) != 2 || ds[0].JobID != id || ds[0].Passed || !strings.Contains(ds[0].Error, "smoke") {
			t.Fatalf("drill history: %+v %v", ds, err)
		}
		os.WriteFile(marker, nil, 0o600)
	})

	t.Run("cancel a waiting drill", func(t *testing.T) {
		id := jobID(t, mustHaven(t, s.serverEnv(), "failover", "test", "--plan", "shop", "--detach"))
		s.waitState(t, id, store.Waiting)
		if r := haven(t, s.serverEnv(), "job", "cancel", id); r.code != 0 {
			t.Fatalf("cancel: %d %s", r.code, r.stderr)
		}
		s.waitState(t, id, store.Canceled)
		if left := leftSince(t, s, base); left != "" {
			t.Fatal(left)
		}
		if p, _ := s.client.Plan(ctx, "shop"); p.Test != "" {
			t.Fatalf("plan still has a test copy: %+v", p)
		}
	})

	t.Run("fence, change point, cancel failover", func(t *testing.T) {
		s.waitPoints(2)
		rep, r := s.runJob("failover", "unplanned", "--plan", "shop")
		if r.code != 0 {
			t.Fatalf("unplanned: %d %s", r.code, rep.Error)
		}
		if !strings.Contains(strings.Join(rep.Warnings, "\n"), "fencing") {
			t.Fatalf("no fencing warning: %v", rep.Warnings)
		}
		if _, err := s.http(s.inet, "GET", "http://10.1.0.20/", ""); err == nil {
			t.Fatal("the primary still serves after it was fenced")
		}
		if err := s.expectDNS("10.2.0.20"); err != nil {
			t.Fatal(err)
		}
		// Back to the points before the ones used: newest at or before
		// a moment just before the oldest of them.
		before := rep.Points[0].Time
		used := map[string]string{}
		for _, p := range rep.Points {
			used[p.Machine] = p.Point
			if p.Time.Before(before) {
				before = p.Time
			}
		}
		at := before.Add(-time.Millisecond).UTC().Format(time.RFC3339Nano)
		crep, r := s.runJob("failover", "change-point", "--plan", "shop", "--point", at)
		if r.code != 0 || crep.State != string(store.Succeeded) {
			t.Fatalf("change-point: %d %s", r.code, crep.Error)
		}
		if len(crep.Machines) != 2 {
			t.Fatalf("change-point report: %+v", crep.Machines)
		}
		for _, p := range crep.Points {
			if p.Point == used[p.Machine] || p.Time.After(before) {
				t.Errorf("change-point gave %s point %s (%v), want one before %v", p.Machine, p.Point, p.Time, before)
			}
		}
		for _, d := range crep.Disks {
			if d.Method != "in-place" || d.BytesWritten >= d.Size {
				t.Errorf("change-point disk %s/%s: %s, %d of %d bytes: want an in-place delta", d.Machine, d.Disk, d.Method, d.BytesWritten, d.Size)
			}
		}
		if _, err := s.http(s.inet, "GET", "http://10.2.0.20/", ""); err != nil {
			t.Fatalf("recovered web after change-point: %v", err)
		}
		if rep, r := s.runJob("failover", "cancel", "--plan", "shop"); r.code != 0 {
			t.Fatalf("cancel failover: %d %s", r.code, rep.Error)
		}
		s.eventually(time.Minute, "primary back", func() error {
			_, err := s.http(s.inet, "GET", "http://10.1.0.20/", "")
			return err
		})
		s.eventually(time.Minute, "DNS back", func() error { return s.expectDNS("10.1.0.20") })
		if left := leftSince(t, s, base); left != "" {
			t.Fatal(left)
		}
	})
}
