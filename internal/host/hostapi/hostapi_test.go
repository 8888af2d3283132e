package hostapi

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/fence"
	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/machine"
)

// newPair serves a real host.Local (no vault, no sites: what needs no
// root) and returns a client of it with the server's disk directory.
func newPair(t *testing.T) (*Client, *Server, string) {
	t.Helper()
	dir := t.TempDir()
	h, err := host.NewLocal(filepath.Join(dir, "host"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{B: h, Token: "0123456789abcdef0123", DiskDir: filepath.Join(dir, "disks")}
	ts := httptest.NewTLSServer(s.Handler())
	t.Cleanup(ts.Close)
	c := &Client{URL: ts.URL, Token: s.Token, DiskDir: "/srv/disks", HTTP: ts.Client()}
	if err := os.MkdirAll(s.DiskDir, 0o700); err != nil {
		t.Fatal(err)
	}
	return c, s, dir
}

// TestStaleEpochOverHTTP: once the host obeyed epoch 2, an order of
// epoch 1 or without an epoch is a 409 the client reads as
// fence.ErrStale, and touches nothing; the leader's own order passes.
func TestStaleEpochOverHTTP(t *testing.T) {
	c, s, _ := newPair(t)
	disk := filepath.Join(s.DiskDir, "web.img")
	if err := os.WriteFile(disk, []byte("disk"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.RemoveDisk(fence.WithEpoch(ctx, 2), "/srv/disks/gone.img"); err != nil {
		t.Fatal(err)
	}
	for _, cctx := range []context.Context{fence.WithEpoch(ctx, 1), ctx} {
		err := c.RemoveDisk(cctx, "/srv/disks/web.img")
		var re *RemoteError
		if !errors.Is(err, fence.ErrStale) || !errors.As(err, &re) || re.Status != http.StatusConflict {
			t.Fatalf("stale order: %v", err)
		}
	}
	if _, err := os.Stat(disk); err != nil {
		t.Fatalf("a refused order removed the disk: %v", err)
	}
	if err := c.RemoveDisk(fence.WithEpoch(ctx, 2), "/srv/disks/web.img"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(disk); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("disk after the leader removed it: %v", err)
	}
}

// TestFenceTakesEpoch: Fence alone (a new leader's first call) makes
// the host refuse the orders of an older epoch, and is itself refused
// with an older one.
func TestFenceTakesEpoch(t *testing.T) {
	c, _, _ := newPair(t)
	ctx := context.Background()
	if err := c.Fence(fence.WithEpoch(ctx, 3)); err != nil {
		t.Fatal(err)
	}
	if err := c.StopMachine(fence.WithEpoch(ctx, 2), "rec", "db"); !errors.Is(err, fence.ErrStale) {
		t.Fatalf("order of epoch 2 after Fence at 3: %v", err)
	}
	if err := c.Fence(fence.WithEpoch(ctx, 2)); !errors.Is(err, fence.ErrStale) {
		t.Fatalf("Fence of epoch 2 after 3: %v", err)
	}
	if err := c.StopMachine(fence.WithEpoch(ctx, 3), "rec", "db"); err != nil {
		t.Fatal(err)
	}
}

// TestDiskPathsStayInside: the client names disks relative to its disk
// directory and refuses others; the host refuses a path leaving its own,
// so a token does not open every file of the host.
func TestDiskPathsStayInside(t *testing.T) {
	c, _, dir := newPair(t)
	outside := filepath.Join(dir, "precious")
	if err := os.WriteFile(outside, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.RemoveDisk(ctx, outside); err == nil {
		t.Fatal("client sent a path outside its disk directory")
	}
	for _, p := range []string{"../precious", "a/../../precious", outside, ".", ""} {
		err := c.call(ctx, "POST", "/v1/disks/remove", pathReq{p}, nil)
		var re *RemoteError
		if !errors.As(err, &re) || re.Status != http.StatusBadRequest {
			t.Fatalf("remove %q: %v", p, err)
		}
	}
	if _, err := os.Stat(outside); err != nil {
		t.Fatalf("file outside the disk directory: %v", err)
	}
}

func TestTokenRequired(t *testing.T) {
	c, _, _ := newPair(t)
	c.Token = "wrong-token-wrong-token"
	_, err := c.Info(context.Background())
	var re *RemoteError
	if !errors.As(err, &re) || re.Status != http.StatusUnauthorized {
		t.Fatalf("wrong token: %v", err)
	}
}

// TestUnreachableHost: what the no-error methods answer for a host that
// does not answer, and that the error-returning variant says so.
func TestUnreachableHost(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := NewClient("https://"+addr, "0123456789abcdef0123", "", "/srv/disks")
	if err != nil {
		t.Fatal(err)
	}
	c.Retries = -1
	if !c.Running("rec", "web") {
		t.Fatal("a machine on an unreachable host counted as stopped")
	}
	if _, err := c.CheckRunning(context.Background(), "rec", "web"); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("CheckRunning: %v", err)
	}
	if ns := c.SiteNS("rec"); ns != "" {
		t.Fatalf("SiteNS of a host never reached: %q", ns)
	}
	if p := c.StandbyPoint("web", "root"); p != "" {
		t.Fatalf("StandbyPoint: %q", p)
	}
}

// TestFlightSurvivesDroppedCaller: a long call goes on after its caller
// left; the same call retried joins it (it runs once); with no caller
// for the grace period it is cancelled.
func TestFlightSurvivesDroppedCaller(t *testing.T) {
	f := flights{grace: 200 * time.Millisecond}
	var runs atomic.Int32
	release := make(chan struct{})
	fn := func(ctx context.Context) (any, error) {
		runs.Add(1)
		select {
		case <-release:
			return "done", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	ctx1, cancel1 := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel1() }()
	if _, err := f.do(ctx1, "prepare", "req", fn); !errors.Is(err, context.Canceled) {
		t.Fatalf("first caller: %v", err)
	}
	go func() { time.Sleep(50 * time.Millisecond); close(release) }()
	v, err := f.do(context.Background(), "prepare", "req", fn)
	if err != nil || v != "done" || runs.Load() != 1 {
		t.Fatalf("retry: %v %v, runs %d", v, err, runs.Load())
	}

	var cancelled atomic.Bool
	block := func(ctx context.Context) (any, error) {
		<-ctx.Done()
		cancelled.Store(true)
		return nil, ctx.Err()
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	f.do(ctx2, "prepare", "other", block)
	deadline := time.Now().Add(10 * time.Second)
	for !cancelled.Load() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !cancelled.Load() {
		t.Fatal("an abandoned call was not cancelled after the grace period")
	}
}

// TestDeadlineTravels: the host stops waiting when the caller's deadline
// (TimeoutHeader) ends, whatever the connection does: a health wait for
// a machine that never answers returns within the header's 300 ms on a
// connection the caller would keep open for 30 s.
func TestDeadlineTravels(t *testing.T) {
	c, _, _ := newPair(t)
	body := `{"driver":"","spec":{"name":"web","disks":null,"nics":[{"name":"eth0","network":"lan","addr":"10.99.0.5/24"}],"health":{"tcp_port":80}}}`
	req, err := http.NewRequest("POST", c.URL+"/v1/sites/rec/machines/web/healthy", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set(TimeoutHeader, "300")
	hc := *c.HTTP
	hc.Timeout = 30 * time.Second
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("the host did not end the wait itself: %v", err)
	}
	defer resp.Body.Close()
	var e errorResp
	json.NewDecoder(resp.Body).Decode(&e)
	if resp.StatusCode != http.StatusServiceUnavailable || e.Kind != "unhealthy" {
		t.Fatalf("status %d %+v, want 503 unhealthy", resp.StatusCode, e)
	}
	if sentinel(e.Kind) != machine.ErrUnhealthy {
		t.Fatal("kind unhealthy does not map back to machine.ErrUnhealthy")
	}
}

// TestMemoryOfMachineNotRunning: asking the memory of a machine the host
// does not run is machine.ErrNotRunning on the client (the server shows
// it as not running, not as a host failure). The memory of a running
// one crosses in e2e's TestRecoveredMachineOverMemory.
func TestMemoryOfMachineNotRunning(t *testing.T) {
	c, _, _ := newPair(t)
	_, err := c.MachineMemory(context.Background(), "rec", "db")
	if !errors.Is(err, machine.ErrNotRunning) {
		t.Fatalf("MachineMemory of a machine not there: %v, want not running", err)
	}
}

// TestDiskPathOfAnotherServer: a disk another server recorded (HA servers
// whose state lives at different paths; one undoes the other's job) is
// named on the host by the disk layout's <job>/<machine>/<disk>.img, the
// disk that server's orders made; a path outside that layout is refused.
func TestDiskPathOfAnotherServer(t *testing.T) {
	c := &Client{DiskDir: "/srv/a/disks"}
	for p, want := range map[string]string{
		"/srv/a/disks/J1/web/root.img":     "J1/web/root.img",
		"/var/lib/b/disks/J1/web/root.img": "J1/web/root.img",
	} {
		if got, err := c.wirePath(p); err != nil || got != want {
			t.Errorf("wirePath(%s) = %q, %v; want %q", p, got, err, want)
		}
	}
	for _, p := range []string{"/etc/shadow", "/root.img", "/srv/a/disks"} {
		if got, err := c.wirePath(p); err == nil {
			t.Errorf("wirePath(%s) = %q, want refused", p, got)
		}
	}
}

// TestStandbysOverHTTP: the server lists the host's standby images with
// the point each holds ("" for one without its record, being written),
// removes one on a leader's order (twice is no error), refuses a stale
// leader's removal, and never takes a name that leaves the standby
// directory.
func TestStandbysOverHTTP(t *testing.T) {
	c, _, dir := newPair(t)
	ctx := context.Background()
	sb := filepath.Join(dir, "host", "standby")
	for _, f := range []string{"web/root.img", "db/data.img"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(sb, f)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sb, f), []byte("disk"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(sb, "web/root.img.hvdone"), []byte(`{"machine":"web","disk":"root","point":"p1"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	list := func() []host.StandbyImage {
		t.Helper()
		imgs, err := c.Standbys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return imgs
	}
	want := []host.StandbyImage{{Machine: "db", Disk: "data"}, {Machine: "web", Disk: "root", Point: "p1"}}
	if got := list(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("standbys %+v, want %+v", got, want)
	}
	if err := c.RemoveStandby(fence.WithEpoch(ctx, 3), "web", "root"); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveStandby(fence.WithEpoch(ctx, 3), "web", "root"); err != nil {
		t.Fatalf("removing a standby that is gone: %v", err)
	}
	if err := c.RemoveStandby(fence.WithEpoch(ctx, 2), "db", "data"); !errors.Is(err, fence.ErrStale) {
		t.Fatalf("a stale leader's removal: %v", err)
	}
	if got := list(); len(got) != 1 || got[0] != want[0] {
		t.Fatalf("after removing web/root: %+v", got)
	}
	if left, _ := filepath.Glob(filepath.Join(sb, "web*")); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
	if err := os.WriteFile(filepath.Join(dir, "host", "keep.img"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := host.NewLocal(filepath.Join(dir, "host"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][2]string{{"..", "keep"}, {"db", "../../keep"}, {"", "root"}} {
		if err := l.RemoveStandby(fence.WithEpoch(ctx, 3), bad[0], bad[1]); err == nil {
			t.Errorf("RemoveStandby(%q, %q) taken", bad[0], bad[1])
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "host", "keep.img")); err != nil {
		t.Fatalf("a bad name removed a file outside the standby directory: %v", err)
	}
}
