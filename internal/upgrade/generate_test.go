package upgrade_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/agent"
	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/blob/fileblob"
	"github.com/haven-dr/haven/internal/buildinfo"
	"github.com/haven-dr/haven/internal/httpauth"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vault"
)

// TestWriteUpgradeFixtures writes testdata/fixture with this build: a
// vault with three points of a small disk, and the state of a server that
// had the plan applied, heard an agent, ran a test failover and its
// cleanup (written through the store, as the orchestrator records them:
// running it needs root and a recovery host) and audited the requests;
// SQLite as the file, PostgreSQL as a pg_dump of the same run.
func TestWriteUpgradeFixtures(t *testing.T) {
	if os.Getenv("HAVEN_WRITE_FIXTURES") != "1" {
		t.Skip("HAVEN_WRITE_FIXTURES=1 regenerates testdata/fixture (docs/upgrade.md)")
	}
	if err := os.RemoveAll(fixtureDir); err != nil {
		t.Fatal(err)
	}
	f := &fixture{Release: buildinfo.Read().Version, SQLiteSchema: store.SQLiteSchemaVersion(),
		PostgresSchema: store.PostgresSchemaVersion(), VaultPassword: "haven upgrade fixture",
		Plan: "shop", Machine: "db", Disk: "root"}
	vaultDir, err := filepath.Abs(filepath.Join(fixtureDir, "vault"))
	if err != nil {
		t.Fatal(err)
	}
	writeVault(t, f, vaultDir)
	// The fixture is what git keeps: no empty directories.
	defer removeEmptyDirs(t, vaultDir)

	s := newSite(t, vaultDir, f.VaultPassword, "")
	recordRun(t, f, s, true, func() (store.Store, error) {
		return store.OpenSQLite(t.Context(), filepath.Join(s.cfg.StateDir, "state.db"))
	})
	keepState(t, s, "sqlite", "state.db")

	// The same run on PostgreSQL, on a copy of the vault: the server
	// writes its catalog there, and the fixture vault keeps one.
	pg := testenv.StartPostgres(t, "fsync=off")
	if _, err := pg.Query(t.Context(), "CREATE DATABASE hvstate"); err != nil {
		t.Fatal(err)
	}
	vcopy := filepath.Join(t.TempDir(), "vault")
	copyDir(t, vaultDir, vcopy)
	ps := newSite(t, vcopy, f.VaultPassword, pg.URL("hvstate"))
	if err := os.MkdirAll(ps.cfg.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ps.cfg.TokenFile, []byte(f.AdminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	recordRun(t, f, ps, false, func() (store.Store, error) { return store.OpenPostgres(t.Context(), pg.URL("hvstate")) })
	keepState(t, ps, "postgres")
	dump, err := exec.Command("pg_dump", "--no-owner", "--no-privileges", "-h", pg.Socket, "-U", "postgres", "-d", "hvstate").Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	if err := os.WriteFile(filepath.Join(fixtureDir, "postgres", "state.sql"), dump, 0o644); err != nil {
		t.Fatal(err)
	}

	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fixtureDir, "fixture.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// diskImage is the fixture disk at point i: 512 KiB of text, a region of
// it rewritten at each point.
func diskImage(i int) []byte {
	var b strings.Builder
	for line := 0; b.Len() < 512<<10; line++ {
		gen := 0
		if line%1000 < 100*(i+1) {
			gen = i
		}
		fmt.Fprintf(&b, "block %07d written at point %d\n", line, gen)
	}
	return []byte(b.String()[:512<<10])
}

func writeVault(t *testing.T, f *fixture, dir string) {
	t.Helper()
	ctx := t.Context()
	be, err := fileblob.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.Init(ctx, be, f.VaultPassword, fastKDF)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	img := filepath.Join(t.TempDir(), "db-root.img")
	for i := range 3 {
		data := diskImage(i)
		if err := os.WriteFile(img, data, 0o600); err != nil {
			t.Fatal(err)
		}
		p, _, err := v.Snapshot(ctx, vault.SnapshotOptions{Machine: f.Machine, Consistency: vault.CrashConsistent,
			Provider: "none", Group: "database", Disks: []vault.DiskSource{{Name: f.Disk, Path: img}}})
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		f.Points = append(f.Points, point{ID: p.ID, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])})
	}
}

// recordRun applies the plan and sends a heartbeat through s's server
// (recording the exchange when record is set), then writes the finished
// drill into its store.
func recordRun(t *testing.T, f *fixture, s *site, record bool, open func() (store.Store, error)) {
	t.Helper()
	r := s.start(t)
	tok, err := httpauth.ReadTokenFile(s.cfg.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	f.AdminToken = tok
	status, b := r.call(t, "POST", "/v1/apply", tok, nil, []byte(s.doc()))
	var res api.ApplyResult
	if status != http.StatusOK || json.Unmarshal(b, &res) != nil {
		t.Fatalf("apply: %d %s", status, b)
	}
	f.ConfigVersion = res.Version
	ex := heartbeat(t, f, s, r)
	if ex.Status != http.StatusNoContent {
		t.Fatalf("heartbeat: %d %s", ex.Status, ex.Response)
	}
	if record {
		f.Exchanges = append(f.Exchanges, ex)
	}
	r.stop()

	st, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	writeDrill(t, f, st)
}

// heartbeat sends the report an agent with the fixture's points makes,
// as the agent sends it.
func heartbeat(t *testing.T, f *fixture, s *site, r *running) exchange {
	t.Helper()
	now := time.Now().UTC()
	last := f.Points[len(f.Points)-1]
	rep := &agent.Report{Version: 1, Host: "dc1", Vault: "file:///srv/haven/vault", Started: now.Add(-time.Hour), Time: now,
		Machines: []agent.MachineStatus{
			{Name: f.Machine, Group: "database", Provider: "none", RPOSeconds: 60, RPOAlertSeconds: 3600,
				LastPoint: &agent.PointSummary{ID: last.ID, Time: now.Add(-time.Minute), Consistency: vault.CrashConsistent, Provider: "none"}},
			{Name: "web", Group: "frontend", RPOSeconds: 3600, RPOUnknown: true, RPOAlert: true, RPOAlertSeconds: 3600, LastError: "disk read: EIO"}}}
	req, err := agent.HeartbeatRequest(t.Context(), &agent.ServerConfig{URL: r.base, Agent: "dc1-agent"}, s.agentTok, rep)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatal(err)
	}
	ex := exchange{Method: req.Method, Path: req.URL.Path, Header: map[string]string{}, Body: body}
	for k := range req.Header {
		if k != "Authorization" {
			ex.Header[k] = req.Header.Get(k)
		}
	}
	var b []byte
	ex.Status, b = r.call(t, ex.Method, ex.Path, s.agentTok, ex.Header, body)
	ex.Response = string(b)
	return ex
}

// writeDrill records a passed test failover of the plan and its cleanup,
// their logs, the drill and the audit of the submits.
func writeDrill(t *testing.T, f *fixture, st store.Store) {
	t.Helper()
	ctx := context.Background()
	_, doc, err := st.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().UTC().Add(-30 * time.Minute).Truncate(time.Second)
	at := func(min int) *time.Time { x := start.Add(time.Duration(min) * time.Minute); return &x }
	steps := func(names ...string) []store.Step {
		var s []store.Step
		for i, n := range names {
			s = append(s, store.Step{Name: n, State: store.StepDone, Started: at(i), Ended: at(i + 1)})
		}
		return s
	}
	last := f.Points[len(f.Points)-1].ID
	jobs := []*store.Job{
		{ID: "tf-upgrade-fixture", Type: "test-failover", Params: json.RawMessage(`{"point":"latest"}`),
			Steps:   steps("pick points", "restore disks", "attach networks", "boot machines", "health checks"),
			Outputs: json.RawMessage(fmt.Sprintf(`{"points":{%q:%q}}`, f.Machine, last))},
		{ID: "tc-upgrade-fixture", Type: "test-cleanup", Steps: steps("stop machines", "remove networks", "remove disks")},
	}
	for i, j := range jobs {
		j.Plan, j.State, j.Created = f.Plan, store.Running, *at(10 * i)
		if json.Valid(doc) {
			j.Config = doc
		}
		if err := st.CreateJob(ctx, j); err != nil {
			t.Fatal(err)
		}
		for k, s := range j.Steps {
			if err := st.AppendLog(ctx, j.ID, store.LogLine{Time: *s.Started, Level: "INFO", Msg: "step " + s.Name}); err != nil {
				t.Fatalf("log %d of %s: %v", k, j.ID, err)
			}
		}
		j.State, j.Ended, j.Updated = store.Succeeded, at(10*i+len(j.Steps)), *at(10*i + len(j.Steps))
		if err := st.SaveJob(ctx, j); err != nil {
			t.Fatal(err)
		}
		if err := st.AppendAudit(ctx, store.AuditEntry{Time: j.Created, Who: "admin", Remote: "127.0.0.1",
			Action: "job.submit", Target: f.Plan, Status: http.StatusAccepted}); err != nil {
			t.Fatal(err)
		}
	}
	f.Jobs = []string{jobs[0].ID, jobs[1].ID}
	f.Drill = jobs[0].ID
	if err := st.AddDrill(ctx, store.Drill{JobID: f.Drill, Plan: f.Plan, Started: start, CleanedUp: *jobs[1].Ended,
		Passed: true, RTOSeconds: 37.5}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutPlanState(ctx, &store.PlanState{Plan: f.Plan, Phase: "protected"}); err != nil {
		t.Fatal(err)
	}
}

// keepState copies the token hashes and the named state files of s into
// testdata/fixture/<name>.
func keepState(t *testing.T, s *site, name string, files ...string) {
	t.Helper()
	dst := filepath.Join(fixtureDir, name)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range append([]string{"tokens.json"}, files...) {
		if err := copyFile(filepath.Join(s.cfg.StateDir, f), filepath.Join(dst, f)); err != nil {
			t.Fatal(err)
		}
	}
}

// removeEmptyDirs removes the empty directories under dir, deepest first.
func removeEmptyDirs(t *testing.T, dir string) {
	t.Helper()
	var dirs []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return err
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if es, err := os.ReadDir(dirs[i]); err == nil && len(es) == 0 {
			if err := os.Remove(dirs[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
}
