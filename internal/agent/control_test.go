package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/fence"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vault"
)

// ctlFixture is a real agent on a file vault with one machine m1 whose
// disk is an image file, real stop/start hooks that append to marker
// files, and its API served on a loopback port.
type ctlFixture struct {
	a          *Agent
	v          *vault.Vault
	disk       string
	token      string
	stops      string // the stop hook appends $HAVEN_MACHINE here
	starts     string
	url        string
	controlled bool
	epoch      string // the leader epoch header do sends ("": none)
}

func newCtlFixture(t *testing.T, provider, dir string, withToken bool) *ctlFixture {
	t.Helper()
	return newCtlFixtureOn(t, newVault(t, nil), provider, dir, withToken)
}

func newCtlFixtureOn(t *testing.T, v *vault.Vault, provider, dir string, withToken bool) *ctlFixture {
	t.Helper()
	f := &ctlFixture{v: v, disk: filepath.Join(dir, "disk.img"), controlled: withToken}
	marks := t.TempDir()
	f.stops, f.starts = filepath.Join(marks, "stops"), filepath.Join(marks, "starts")
	writeRandom(t, f.disk, 4<<20)
	tokenLine := ""
	if withToken {
		f.token = strings.ToLower(rand.Text())
		tf := filepath.Join(marks, "token")
		if err := os.WriteFile(tf, []byte(f.token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		tokenLine = "control_token_file: " + tf
	}
	cfg, err := ParseConfig(fmt.Sprintf(`
vault: /unused
state_dir: %s
%s
machines:
  - name: m1
    provider: %s
    disks: [{name: d0, path: %s}]
    clone_dir: %s
    policy: {frequency: 15s}
    control:
      stop: 'if [ -e %[6]s.fail ]; then echo cannot reach the hypervisor >&2; exit 3; fi; echo "$HAVEN_MACHINE" >> %[6]s'
      start: 'echo "$HAVEN_MACHINE" >> %[7]s'
      timeout: 30s
`, t.TempDir(), tokenLine, provider, f.disk, filepath.Join(dir, "clones"), f.stops, f.starts))
	if err != nil {
		t.Fatal(err)
	}
	f.a = newAgent(cfg, f.v)
	srv := httptest.NewServer(f.a.Handler())
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// call POSTs (GETs when method says so) path with token and decodes a 2xx
// answer into out; it returns the status and the error text.
func (f *ctlFixture) call(t *testing.T, method, path, token string, in, out any) (int, string) {
	t.Helper()
	code, msg, err := f.do(method, path, token, in, out)
	if err != nil {
		t.Fatal(err)
	}
	return code, msg
}

func (f *ctlFixture) do(method, path, token string, in, out any) (int, string, error) {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, f.url+path, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if f.epoch != "" {
		req.Header.Set(fence.Header, f.epoch)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 == 2 && out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return 0, "", fmt.Errorf("%s %s: %v: %s", method, path, err, b)
		}
		return resp.StatusCode, "", nil
	}
	var e struct{ Error string }
	json.Unmarshal(b, &e)
	if resp.StatusCode/100 != 2 && e.Error == "" {
		return 0, "", fmt.Errorf("%s %s: %s without a JSON error: %s", method, path, resp.Status, b)
	}
	return resp.StatusCode, e.Error, nil
}

func (f *ctlFixture) post(t *testing.T, path string, in, out any) (int, string) {
	t.Helper()
	return f.call(t, http.MethodPost, path, f.token, in, out)
}

func lines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Fields(string(b)) {
		if l != "m1" {
			t.Fatalf("%s: hook saw HAVEN_MACHINE=%q", path, l)
		}
	}
	return len(strings.Fields(string(b)))
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// pointSum restores point id of m1/d0 into a new file and hashes it.
func pointSum(t *testing.T, v *vault.Vault, id string) [32]byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "restored")
	if _, err := v.Restore(context.Background(), vault.RestoreOptions{Machine: "m1", Point: id, Disk: "d0", Target: out}); err != nil {
		t.Fatal(err)
	}
	return fileSum(t, out)
}

func pointCount(t *testing.T, v *vault.Vault) int {
	t.Helper()
	ps, err := v.Points(context.Background(), "m1")
	if err != nil {
		t.Fatal(err)
	}
	return len(ps)
}

// TestControlAuth: the control routes need the control token (401 without
// one, 401 with a wrong one: httpauth's rule) and are disabled (403) without a token file;
// refused requests run no hook; status stays open on loopback and needs
// the token from elsewhere.
func TestControlAuth(t *testing.T) {
	f := newCtlFixture(t, ProviderNone, t.TempDir(), true)
	if code, msg := f.call(t, http.MethodPost, "/v1/machines/m1/stop", "", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d %s", code, msg)
	}
	if code, msg := f.call(t, http.MethodPost, "/v1/machines/m1/stop", "wrong", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d %s", code, msg)
	}
	if n := lines(t, f.stops); n != 0 {
		t.Fatalf("refused requests ran the stop hook %d times", n)
	}
	if code, msg := f.post(t, "/v1/machines/nope/stop", nil, nil); code != http.StatusNotFound || !strings.Contains(msg, "nope") {
		t.Fatalf("unknown machine: %d %s", code, msg)
	}
	if code, msg := f.post(t, "/v1/machines/m1/stop", nil, &struct{}{}); code != http.StatusOK || lines(t, f.stops) != 1 {
		t.Fatalf("stop with the token: %d %s, hook ran %d times", code, msg, lines(t, f.stops))
	}
	if code, _ := f.call(t, http.MethodGet, "/v1/status", "", nil, &Report{}); code != http.StatusOK {
		t.Fatalf("status on loopback without token: %d", code)
	}

	// Off loopback, status needs the token too.
	remote := func(token string) int {
		r := httptest.NewRequest(http.MethodGet, "/v1/status", nil)
		r.RemoteAddr = "192.0.2.7:40000"
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		f.a.Handler().ServeHTTP(w, r)
		return w.Code
	}
	if c1, c2 := remote(""), remote(f.token); c1 != http.StatusUnauthorized || c2 != http.StatusOK {
		t.Fatalf("status from off loopback: %d without token, %d with", c1, c2)
	}

	off := newCtlFixture(t, ProviderNone, t.TempDir(), false)
	code, msg := off.call(t, http.MethodPost, "/v1/machines/m1/stop", "anything", nil, nil)
	if code != http.StatusForbidden || !strings.Contains(msg, "control_token_file") || lines(t, off.stops) != 0 {
		t.Fatalf("without control_token_file: %d %s", code, msg)
	}
}

// TestControlConfig: only a control token lets the API listen off
// loopback, and a configured token that cannot be read stops Serve at
// start rather than at the first failover.
func TestControlConfig(t *testing.T) {
	base := "vault: /v\nlisten: 0.0.0.0:7717\nmachines: [{name: m1, provider: none, disks: [{name: d0, path: /d}]}]\n"
	if _, err := ParseConfig(base); err == nil || !strings.Contains(err.Error(), "control_token_file") {
		t.Fatalf("non-loopback listen without a token: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "absent")
	cfg, err := ParseConfig(base + "control_token_file: " + missing + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Machines[0].Control.Timeout <= 0 {
		t.Fatal("control.timeout has no default")
	}
	a := newAgent(cfg, newVault(t, nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := a.Serve(context.Background(), ln); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("Serve with an unreadable token file: %v", err)
	}
	for _, bad := range []string{
		"server: {url: ftp://x, agent: a, token_file: /t}",
		"server: {url: http://127.0.0.1:7780, agent: 'a b', token_file: /t}",
		"server: {url: http://127.0.0.1:7780, agent: a}",
		"server: {url: http://127.0.0.1:7780, agent: a, token_file: /t, interval: 10ms}",
	} {
		if _, err := ParseConfig(strings.Replace(base, "0.0.0.0", "127.0.0.1", 1) + bad + "\n"); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	machine := "vault: /v\nmachines: [{name: m1, provider: none, disks: [{name: d0, path: /d}], control: %s}]\n"
	for bad, want := range map[string]string{
		"{machine_file: /m.json, stop: 'true'}": "one or the other",
		"{machine_file: m.json}":                "not absolute",
	} {
		if _, err := ParseConfig(fmt.Sprintf(machine, bad)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("control %s: %v, want %q", bad, err, want)
		}
	}
	cfg, err = ParseConfig(fmt.Sprintf(machine, "{machine_file: /m.json}"))
	if err != nil || !cfg.Machines[0].Control.has("stop") || !cfg.Machines[0].Control.has("start") {
		t.Fatalf("control with a machine file: %v", err)
	}
}

// TestControlStopPausesReplication: stop waits for a running cycle, runs
// the hook, and pauses the group (Cycle is skipped, no point appears);
// stop is idempotent; start runs its hook and replication resumes; a
// failing stop hook answers 500 and leaves replication running.
func TestControlStopPausesReplication(t *testing.T) {
	f := newCtlFixture(t, ProviderNone, t.TempDir(), true)
	ctx := context.Background()
	if err := f.a.Cycle(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	g := f.a.group("m1")
	// A cycle "runs" while the stop arrives: the stop pauses at once but
	// runs its hook only after the cycle ended.
	if err := g.turn.take(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan int)
	go func() {
		code, msg, err := f.do(http.MethodPost, "/v1/machines/m1/stop", f.token, nil, &struct{}{})
		if err != nil || code != http.StatusOK {
			t.Errorf("stop: %d %s %v", code, msg, err)
		}
		done <- code
	}()
	for !f.a.Status().Machines[0].Paused {
		select {
		case code := <-done:
			t.Fatalf("stop answered %d while a cycle was running", code)
		case <-time.After(time.Millisecond): // polling, not a deadline
		}
	}
	if n := lines(t, f.stops); n != 0 {
		t.Fatal("the stop hook ran while a cycle was running")
	}
	g.turn.give()
	if code := <-done; code != http.StatusOK || lines(t, f.stops) != 1 {
		t.Fatalf("stop: %d, hook ran %d times", code, lines(t, f.stops))
	}

	before := pointCount(t, f.v)
	if err := f.a.Cycle(ctx, "m1"); !errors.Is(err, ErrPaused) {
		t.Fatalf("cycle of a stopped machine: %v", err)
	}
	if n := pointCount(t, f.v); n != before {
		t.Fatalf("a paused machine got a point (%d -> %d)", before, n)
	}
	if code, msg := f.post(t, "/v1/machines/m1/stop", nil, &struct{}{}); code != http.StatusOK || lines(t, f.stops) != 2 {
		t.Fatalf("second stop: %d %s", code, msg)
	}
	// A restarted agent keeps the machine stopped.
	f.a = newAgent(f.a.cfg, f.v)
	srv := httptest.NewServer(f.a.Handler())
	defer srv.Close()
	f.url = srv.URL
	if !f.a.Status().Machines[0].Paused {
		t.Fatal("after a restart the status does not show the stopped machine paused")
	}
	if err := f.a.Cycle(ctx, "m1"); !errors.Is(err, ErrPaused) {
		t.Fatalf("after a restart, cycle of a stopped machine: %v", err)
	}
	if code, msg := f.post(t, "/v1/machines/m1/start", nil, &struct{}{}); code != http.StatusOK || lines(t, f.starts) != 1 {
		t.Fatalf("start: %d %s", code, msg)
	}
	g = f.a.group("m1")
	if f.a.Status().Machines[0].Paused {
		t.Fatal("status still says paused after start")
	}
	if err := f.a.Cycle(ctx, "m1"); err != nil || pointCount(t, f.v) != before+1 {
		t.Fatalf("cycle after start: %v, %d points", err, pointCount(t, f.v))
	}

	if err := os.WriteFile(f.stops+".fail", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, msg := f.post(t, "/v1/machines/m1/stop", nil, nil)
	if code != http.StatusInternalServerError || !strings.Contains(msg, "cannot reach the hypervisor") {
		t.Fatalf("failing stop hook: %d %s", code, msg)
	}
	if err := f.a.Cycle(ctx, "m1"); err != nil {
		t.Fatalf("a failed stop left replication paused: %v", err)
	}
}

// TestControlRestorePreserve runs a planned failover's and a failback's
// agent side on a real XFS (reflink) disk image: final point after stop,
// restore refused while running, writes made after the point preserved as
// a point, the disk bit-exact to the target with only the differing
// chunks written, and a next cycle after start that reads the whole disk
// (the change tracker described the disk before the restore) and matches.
func TestControlRestorePreserve(t *testing.T) {
	f := newCtlFixture(t, ProviderReflink, testenv.XFS(t, 512), true)
	ctx := context.Background()
	if err := f.a.Cycle(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	scribble(t, f.disk, 2)
	if err := f.a.Cycle(ctx, "m1"); err != nil { // a baseline clone and cache exist now
		t.Fatal(err)
	}
	if !f.a.Status().Machines[0].LastCycle.Incremental {
		t.Fatal("setup: change tracking is not in use")
	}
	code, msg := f.post(t, "/v1/machines/m1/restore", RestoreRequest{Point: "latest"}, nil)
	if code != http.StatusConflict || !strings.Contains(msg, "not stopped") {
		t.Fatalf("restore while running: %d %s", code, msg)
	}

	if code, msg := f.post(t, "/v1/machines/m1/stop", nil, &struct{}{}); code != http.StatusOK {
		t.Fatalf("stop: %d %s", code, msg)
	}
	atStop := fileSum(t, f.disk)
	var snap SnapshotResult
	if code, msg := f.post(t, "/v1/machines/m1/snapshot", nil, &snap); code != http.StatusOK {
		t.Fatalf("snapshot: %d %s", code, msg)
	}
	final := snap.Points["m1"]
	if len(snap.Points) != 1 || final == "" {
		t.Fatalf("snapshot points %v", snap.Points)
	}
	if pointSum(t, f.v, final) != atStop {
		t.Fatal("the final point is not the disk at stop")
	}

	// The old primary takes writes after the point (split brain).
	scribble(t, f.disk, 3)
	diverged := fileSum(t, f.disk)
	if code, _ := f.post(t, "/v1/machines/m1/restore", RestoreRequest{Point: "nosuchpoint"}, nil); code != http.StatusNotFound {
		t.Fatalf("unknown point: %d", code)
	}
	if code, _ := f.post(t, "/v1/machines/m1/restore", map[string]any{"point": final, "bogus": 1}, nil); code != http.StatusBadRequest {
		t.Fatalf("bad body: %d", code)
	}
	if fileSum(t, f.disk) != diverged {
		t.Fatal("refused restores changed the disk")
	}
	var res RestoreResult
	if code, msg := f.post(t, "/v1/machines/m1/restore", RestoreRequest{Point: final, Preserve: true}, &res); code != http.StatusOK {
		t.Fatalf("restore: %d %s", code, msg)
	}
	if fileSum(t, f.disk) != atStop {
		t.Fatal("the disk is not the target point after the restore")
	}
	if res.Preserved == "" || pointSum(t, f.v, res.Preserved) != diverged {
		t.Fatalf("preserved point %q does not hold the diverged disk", res.Preserved)
	}
	pp, err := f.v.FindPoint(ctx, "m1", res.Preserved)
	if err != nil || pp.Tags[PreservedTag] != "true" {
		t.Fatalf("preserved point tags: %v %v", pp, err)
	}
	cs := int64(f.v.Config().ChunkSize)
	d := res.Disks
	if len(d) != 1 || d[0].Disk != "d0" || d[0].Size != 4<<20 || d[0].BytesWritten == 0 || d[0].BytesWritten > 3*cs ||
		d[0].Differing != d[0].BytesWritten {
		t.Fatalf("restore result %+v (chunk %d)", d, cs)
	}

	if code, msg := f.post(t, "/v1/machines/m1/start", nil, &struct{}{}); code != http.StatusOK {
		t.Fatalf("start: %d %s", code, msg)
	}
	if err := f.a.Cycle(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	st := f.a.Status().Machines[0]
	if st.LastCycle.Incremental || st.LastCycle.KnownChunks != 0 {
		t.Fatalf("the cycle after a restore trusted the old change tracking: %+v", st.LastCycle)
	}
	if pointSum(t, f.v, st.LastPoint.ID) != fileSum(t, f.disk) {
		t.Fatal("the point after the restore differs from the disk")
	}
	scribble(t, f.disk, 2)
	if err := f.a.Cycle(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	st = f.a.Status().Machines[0]
	if !st.LastCycle.Incremental || pointSum(t, f.v, st.LastPoint.ID) != fileSum(t, f.disk) {
		t.Fatalf("change tracking after the restore: %+v", st.LastCycle)
	}
}

func TestDifferingBytes(t *testing.T) {
	id := func(b byte) vault.ID { return vault.ID{b} }
	x := []vault.ID{id(1), id(2), id(3)}
	y := []vault.ID{id(1), id(9), id(3), id(4)}
	// chunk 1 differs (10 bytes), chunk 3 exists only in y (5 of 10 bytes).
	if n := differingBytes(x, y, 10, 35); n != 15 {
		t.Fatalf("differing %d, want 15", n)
	}
}

// TestControlRestoreRefusesOtherDisks: a point whose disks are not the
// machine's configured disks is refused before anything is written or
// preserved.
func TestControlRestoreRefusesOtherDisks(t *testing.T) {
	f := newCtlFixture(t, ProviderNone, t.TempDir(), true)
	other := filepath.Join(t.TempDir(), "other.img")
	writeRandom(t, other, 1<<20)
	p, _, err := f.v.Snapshot(context.Background(), vault.SnapshotOptions{Machine: "m1",
		Disks: []vault.DiskSource{{Name: "d0", Path: f.disk}, {Name: "data", Path: other}}})
	if err != nil {
		t.Fatal(err)
	}
	if code, msg := f.post(t, "/v1/machines/m1/stop", nil, &struct{}{}); code != http.StatusOK {
		t.Fatalf("stop: %d %s", code, msg)
	}
	writeRandom(t, f.disk, 4<<20)
	before, n := fileSum(t, f.disk), pointCount(t, f.v)
	code, msg := f.post(t, "/v1/machines/m1/restore", RestoreRequest{Point: p.ID, Preserve: true}, nil)
	if code != http.StatusConflict || !strings.Contains(msg, "data") || !strings.Contains(msg, "nothing was written") {
		t.Fatalf("restore of a point with other disks: %d %s", code, msg)
	}
	if fileSum(t, f.disk) != before || pointCount(t, f.v) != n {
		t.Fatal("a refused restore changed the disk or took a point")
	}
}
