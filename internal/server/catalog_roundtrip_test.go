package server

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob/fileblob"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/vault"
)

// lostServer is a control plane's machine before the fire: its state,
// token files, token hashes and CA, and the vault it writes to.
type lostServer struct {
	cfg      *Config
	st       store.Store
	v        *vault.Vault
	vaultDir string
	secrets  string // the machine's directory of token files
	tokens   map[string]string
	hashes   tokenHashes
}

func newLostServer(t *testing.T) *lostServer {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	l := &lostServer{vaultDir: filepath.Join(dir, "vault"), secrets: filepath.Join(dir, "etc", "haven"), tokens: map[string]string{}}
	fb, err := fileblob.New(l.vaultDir)
	if err != nil {
		t.Fatal(err)
	}
	if l.v, err = vault.Init(ctx, fb, "pw", vault.Options{KDF: vault.KDFParams{N: 1 << 10, R: 8, P: 1}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.v.Close() })
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l.cfg = &Config{Listen: "127.0.0.1:0", StateDir: filepath.Join(dir, "state"), Vault: "file://" + l.vaultDir, PasswordFile: pw,
		TLS: TLSConfig{Mode: "auto"}}
	if err := l.cfg.Defaults(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(l.secrets, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"prim.token", "dns.token"} {
		l.tokens[name] = "secret-" + name + "-" + strings.Repeat("z", 24)
		if err := os.WriteFile(filepath.Join(l.secrets, name), []byte(l.tokens[name]+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l.hashes = tokenHashes{roleAdmin: hashToken("admin-token-of-the-lost-server"), roleViewer: hashToken("viewer-token-of-the-lost-server")}
	if err := os.MkdirAll(l.cfg.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeTokenHashes(tokensPath(l.cfg), l.hashes); err != nil {
		t.Fatal(err)
	}
	if _, err := serverCert(l.cfg); err != nil {
		t.Fatal(err)
	}
	if l.st, err = store.OpenSQLite(ctx, filepath.Join(l.cfg.StateDir, "state.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.st.Close() })
	return l
}

func (l *lostServer) doc() string {
	return fmt.Sprintf(`{"agents":[{"name":"prim","url":"http://127.0.0.1:1","token_file":%q}],
		"machines":[{"name":"db"},{"name":"web"}],"plans":[{"name":"shop"}],
		"traffic":{"api":"http://127.0.0.1:8053","token_file":%q}}`,
		filepath.Join(l.secrets, "prim.token"), filepath.Join(l.secrets, "dns.token"))
}

// history fills the state: a drill, a schedule with a drill in flight,
// point history inside and before the catalog's window, an ended job, an
// unplanned failover in flight (two steps done) and a drill's test
// failover in flight.
func (l *lostServer) history(t *testing.T, now time.Time) (points map[string][]store.PointRecord) {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := l.st.PutConfig(ctx, []byte(l.doc()))
	must(err)
	must(l.st.AddDrill(ctx, store.Drill{JobID: "d1", Plan: "shop", Started: now.Add(-48 * time.Hour), Passed: true, RTOSeconds: 4.5,
		PointAges: map[string]float64{"db": 12}}))
	slot := now.Add(-time.Minute).Truncate(time.Second)
	must(l.st.PutDrillSchedule(ctx, &store.DrillSchedule{Plan: "shop", Last: slot, Run: &store.DrillRun{Slot: slot, TestJob: "tf-run"}}))
	points = map[string][]store.PointRecord{}
	old := catalogPointsSince(now).Add(-72 * time.Hour)
	for _, m := range []string{"db", "web"} {
		var all []store.PointRecord
		for i := range 300 {
			c := old.Add(time.Duration(i) * 6 * time.Hour).Add(time.Duration(i*7)*time.Millisecond + time.Duration(i*13)*time.Nanosecond)
			if c.After(now) {
				break
			}
			id := c.Format(pointIDTime) + fmt.Sprintf("-%08x", i)
			if i%50 == 7 {
				id = fmt.Sprintf("imported-%d", i) // not the vault's usual form
			}
			all = append(all, store.PointRecord{Machine: m, Point: id, Captured: c, Seen: c.Add(time.Second),
				Consistency: []string{"crash", "app"}[i%2], TargetSeconds: float64(60 * (1 + i%3))})
		}
		must(l.st.AddPoints(ctx, all))
		points[m] = all
	}
	t0 := now.Add(-time.Hour)
	must(l.st.CreateJob(ctx, &store.Job{ID: "ended", Plan: "shop", Type: orchestrator.TestCleanup, State: store.Succeeded, Created: t0, Ended: &t0}))
	steps := []store.Step{{Name: "choose points", State: store.StepDone, Started: &t0, Ended: &t0, Tries: 1},
		{Name: "database: restore disks", State: store.StepDone, Started: &t0, Ended: &t0, Tries: 1},
		{Name: "database: boot", State: store.StepRunning, Started: &t0, Tries: 1},
		{Name: "finish", State: store.StepPending}}
	must(l.st.CreateJob(ctx, &store.Job{ID: "fo-run", Plan: "shop", Type: orchestrator.UnplannedFailover, State: store.Running, Created: t0,
		Params: json.RawMessage(`{"force":true}`), Config: json.RawMessage(l.doc()), Steps: steps,
		Outputs: json.RawMessage(`{"points":{"db":"p1"}}`)}))
	must(l.st.CreateJob(ctx, &store.Job{ID: "tf-run", Plan: "other", Type: orchestrator.TestFailover, State: store.Running, Created: t0,
		Config: json.RawMessage(l.doc()), Steps: steps}))
	return points
}

// burn loses the machine: state, token files, hashes, CA.
func (l *lostServer) burn(t *testing.T) {
	t.Helper()
	l.st.Close()
	for _, d := range []string{l.cfg.StateDir, filepath.Dir(l.secrets)} {
		if err := os.RemoveAll(d); err != nil {
			t.Fatal(err)
		}
	}
}

// The catalog carries what a blank machine needs and the recovery puts
// it back: token files with their modes, token hashes, the CA (which then
// signs the new server's certificate), drill history and schedules, the
// point history of its window, and a failover in flight as a failed job
// to retry. Nothing secret reaches the vault in the clear or the log.
func TestCatalogRoundTripOnBlankMachine(t *testing.T) {
	ctx := context.Background()
	l := newLostServer(t)
	now := time.Now().UTC()
	points := l.history(t, now)
	caBefore, err := os.ReadFile(filepath.Join(l.cfg.StateDir, "tls", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	caKey, _ := os.ReadFile(filepath.Join(l.cfg.StateDir, "tls", "ca.key"))
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	w := newCatalogWriter(l.st, l.v, log, time.Hour)
	w.secrets = func(doc json.RawMessage) (*CatalogSecrets, error) { return collectSecrets(l.cfg, doc) }
	if err := w.save(ctx); err != nil {
		t.Fatal(err)
	}
	l.burn(t)

	if err := RecoverFromVault(ctx, l.cfg, false, log); err != nil {
		t.Fatal(err)
	}
	for name, tok := range l.tokens {
		p := filepath.Join(l.secrets, name)
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("token file %s: %v, %v", p, fi, err)
		}
		if b, _ := os.ReadFile(p); string(b) != tok+"\n" {
			t.Errorf("token file %s holds %q", p, b)
		}
	}
	if fi, err := os.Stat(l.secrets); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("token directory: %v, %v", fi, err)
	}
	if h, err := readTokenHashes(tokensPath(l.cfg)); err != nil || h[roleAdmin] != l.hashes[roleAdmin] || h[roleViewer] != l.hashes[roleViewer] {
		t.Errorf("token hashes %v, %v", h, err)
	}
	if toks, err := openTokens(l.cfg); err != nil || toks.role("admin-token-of-the-lost-server") != roleAdmin ||
		toks.role("viewer-token-of-the-lost-server") != roleViewer {
		t.Errorf("the lost server's tokens are not accepted: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(l.cfg.StateDir, "tls", "ca.crt")); !bytes.Equal(b, caBefore) {
		t.Error("CA certificate not restored")
	}
	if fi, err := os.Stat(filepath.Join(l.cfg.StateDir, "tls", "ca.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("CA key: %v, %v", fi, err)
	}
	checkSignedBy(t, l.cfg, caBefore)

	st, err := store.OpenSQLite(ctx, filepath.Join(l.cfg.StateDir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if ds, err := st.Drills(ctx, "shop"); err != nil || len(ds) != 1 || ds[0].RTOSeconds != 4.5 || ds[0].PointAges["db"] != 12 {
		t.Errorf("drills %+v, %v", ds, err)
	}
	if ds, err := st.DrillSchedule(ctx, "shop"); err != nil || ds.Run == nil || ds.Run.TestJob != "tf-run" || !ds.Last.Equal(now.Add(-time.Minute).Truncate(time.Second)) {
		t.Errorf("drill schedule %+v, %v", ds, err)
	}
	since := catalogPointsSince(now)
	for m, all := range points {
		got, err := st.PointHistory(ctx, m, time.Time{}, now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		var want []store.PointRecord
		for i, r := range all {
			// The window, and the newest point before it.
			if !r.Captured.Before(since) || (i+1 < len(all) && !all[i+1].Captured.Before(since)) {
				want = append(want, r)
			}
		}
		if len(got) != len(want) || len(want) < 10 {
			t.Fatalf("%s: %d points recovered, want %d", m, len(got), len(want))
		}
		for i := range want {
			g, w := got[i], want[i]
			if g.Point != w.Point || !g.Captured.Equal(w.Captured) || g.TargetSeconds != w.TargetSeconds || g.Consistency != w.Consistency {
				t.Fatalf("%s point %d: got %+v want %+v", m, i, g, w)
			}
		}
	}
	j, err := st.Job(ctx, "fo-run")
	if err != nil || j.State != store.Failed || j.Ended != nil || !strings.Contains(j.Error, "haven job retry") ||
		!jsonEqual(j.Config, l.doc()) || string(j.Params) != `{"force":true}` || !strings.Contains(string(j.Outputs), "p1") {
		t.Fatalf("failover in flight: %+v, %v", j, err)
	}
	for _, s := range j.Steps {
		if s.State != store.StepPending || s.Tries != 1 && s.Name != "finish" {
			t.Errorf("step %+v: want pending (run again on this host), tries kept", s)
		}
	}
	if j, err := st.Job(ctx, "tf-run"); err != nil || j.State != store.Canceled {
		t.Errorf("test failover in flight: %+v, %v", j, err)
	}

	secrets := append([]string{string(caKey)}, l.tokens["prim.token"], l.tokens["dns.token"])
	vaultFiles, _ := filepath.Glob(filepath.Join(l.vaultDir, "catalog", "*"))
	for _, f := range vaultFiles {
		b, _ := os.ReadFile(f)
		for _, s := range secrets {
			if bytes.Contains(b, []byte(strings.TrimSpace(s))) {
				t.Errorf("%s holds a secret in the clear", f)
			}
		}
	}
	for _, s := range secrets[1:] {
		if strings.Contains(logs.String(), s) {
			t.Errorf("a token is in the log:\n%s", logs.String())
		}
	}
}

// checkSignedBy: the certificate the recovered server makes chains to
// the restored CA.
func checkSignedBy(t *testing.T, cfg *Config, caPEM []byte) {
	t.Helper()
	crt, err := serverCert(cfg)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(crt.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	blk, _ := pem.Decode(caPEM)
	ca, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pool.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err != nil {
		t.Fatalf("the new server certificate does not chain to the restored CA: %v", err)
	}
}

// A token file the new machine already holds is kept (the operator's
// newer token wins) and named in a warning; the others are restored.
func TestRecoverKeepsExistingTokenFile(t *testing.T) {
	ctx := context.Background()
	l := newLostServer(t)
	l.history(t, time.Now().UTC())
	w := newCatalogWriter(l.st, l.v, slog.New(slog.DiscardHandler), time.Hour)
	w.secrets = func(doc json.RawMessage) (*CatalogSecrets, error) { return collectSecrets(l.cfg, doc) }
	if err := w.save(ctx); err != nil {
		t.Fatal(err)
	}
	l.burn(t)
	os.MkdirAll(l.secrets, 0o700)
	mine := filepath.Join(l.secrets, "prim.token")
	if err := os.WriteFile(mine, []byte("rotated-by-the-operator-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	if err := RecoverFromVault(ctx, l.cfg, false, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(mine); string(b) != "rotated-by-the-operator-0123456789\n" {
		t.Errorf("existing token file replaced: %q", b)
	}
	if !strings.Contains(logs.String(), "kept as it is") || !strings.Contains(logs.String(), mine) {
		t.Errorf("no warning naming %s:\n%s", mine, logs.String())
	}
	if b, _ := os.ReadFile(filepath.Join(l.secrets, "dns.token")); string(b) != l.tokens["dns.token"]+"\n" {
		t.Errorf("dns token not restored: %q", b)
	}
}

func jsonEqual(a []byte, b string) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal([]byte(b), &y) == nil && fmt.Sprint(x) == fmt.Sprint(y)
}
