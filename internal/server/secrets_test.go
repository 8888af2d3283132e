package server_test

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/httpauth"
	"github.com/haven-dr/haven/internal/server"
	"github.com/haven-dr/haven/internal/vault"
)

// TestNoSecretLeaks runs a real server whose environment holds the vault
// password, a test failover whose script prints its whole environment
// and arguments, and then reads every job log, report and API answer and
// the server's own log: neither the password nor any token may appear.
// The script's output must be there (the scan reads what it should).
func TestNoSecretLeaks(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root for the test network's namespace (CI=true)")
		}
		t.Skip("needs root for the test network's namespace")
	}
	e := newEnv(t, seedPoints(t, "db", "web"))
	t.Setenv("HAVEN_PASSWORD", testPassword)
	t.Setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-"+strings.Repeat("k", 20))
	var logs syncBuffer
	r := e.startWith(t, server.Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	doc := edit(t, e.doc(), "      - name: database\n        machines: [db]\n",
		"      - name: database\n        machines: [db]\n        before:\n          - {type: script, run: 'env; echo \"args: $0 $*\"; cat /proc/self/cmdline'}\n")
	r.mustApply(t, doc)

	var job api.Job
	a := r.admin(t, "POST", "/v1/plans/shop/jobs", []byte(`{"type":"test-failover"}`))
	if a.status != http.StatusAccepted {
		t.Fatalf("submit: %d %s", a.status, a.body)
	}
	a.decode(t, &job)
	waitJob(t, r, job.ID, func(s string) bool { return s != api.JobRunning })
	// Undo removes the test network, whatever the job got to.
	r.admin(t, "POST", "/v1/jobs/"+job.ID+"/cancel", nil)
	waitJob(t, r, job.ID, func(s string) bool { return s == api.JobCanceled })

	viewer, err := httpauth.ReadTokenFile(e.cfg.ViewerTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{"vault password": testPassword, "admin token": r.token, "viewer token": viewer,
		"aws secret": os.Getenv("AWS_SECRET_ACCESS_KEY")}
	for a, tok := range e.agentTok {
		secrets[a+" token"] = tok
	}
	answers := map[string]string{"server log": logs.String()}
	for _, p := range []string{"/v1/jobs/" + job.ID + "/logs", "/v1/jobs/" + job.ID + "/report", "/v1/jobs/" + job.ID,
		"/v1/jobs", "/v1/status", "/v1/audit", "/v1/config", "/v1/plans/shop", "/v1/drills", "/v1/traffic"} {
		ans := r.admin(t, "GET", p, nil)
		if ans.status != http.StatusOK {
			t.Errorf("GET %s: %d %s", p, ans.status, ans.body)
		}
		answers["GET "+p] = string(ans.body)
	}
	if !strings.Contains(answers["GET /v1/jobs/"+job.ID+"/logs"], "script: HAVEN_JOB="+job.ID) ||
		!strings.Contains(answers["GET /v1/jobs/"+job.ID+"/logs"], "script: PATH=") {
		t.Fatalf("the script's environment is not in the job log (did it run?):\n%s", answers["GET /v1/jobs/"+job.ID+"/logs"])
	}
	for where, text := range answers {
		for what, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s holds the %s", where, what)
			}
		}
	}
	if l := answers["GET /v1/jobs/"+job.ID+"/logs"]; strings.Contains(l, "HAVEN_PASSWORD") || strings.Contains(l, "AWS_SECRET") {
		t.Errorf("the script saw the server's secret variables:\n%s", l)
	}
}

// seedPoints stores a crash-consistent point of disk root for each machine.
func seedPoints(t *testing.T, machines ...string) func(*vault.Vault) {
	return func(v *vault.Vault) {
		for _, m := range machines {
			img := filepath.Join(t.TempDir(), m+"-root.img")
			if err := os.WriteFile(img, []byte(strings.Repeat("haven ", 20000)), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, _, err := v.Snapshot(context.Background(), vault.SnapshotOptions{Machine: m,
				Disks: []vault.DiskSource{{Name: "root", Path: img}}, Consistency: vault.CrashConsistent}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func waitJob(t *testing.T, r *running, id string, done func(state string) bool) {
	t.Helper()
	var j api.Job
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		r.admin(t, "GET", "/v1/jobs/"+id, nil).decode(t, &j)
		if done(j.State) {
			return
		}
	}
	t.Fatalf("job %s: still %s after 2 minutes", id, j.State)
}
