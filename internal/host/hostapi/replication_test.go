package hostapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/haven-dr/haven/internal/blob/fileblob"
	"github.com/haven-dr/haven/internal/fence"
	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/host/backrep"
	"github.com/haven-dr/haven/internal/vault"
)

// replWorld is a real host.Local with a real vault and replication back,
// served over TLS; two machines of one group with a 1 MiB disk each in
// the host's disk directory, named by the server's paths (/srv/disks).
type replWorld struct {
	c     *Client
	s     *Server
	v     *vault.Vault
	dir   string
	disks map[string]string // machine -> the host's path
	spec  host.Replication
}

func newReplWorld(t *testing.T) *replWorld {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	fb, err := fileblob.New(filepath.Join(dir, "vault"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.Init(ctx, fb, "pw", vault.Options{KDF: vault.KDFParams{N: 1 << 10, R: 8, P: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	h, err := host.NewLocal(filepath.Join(dir, "host"), v, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &replWorld{v: v, dir: dir, disks: map[string]string{}}
	w.s = &Server{B: h, Token: "0123456789abcdef0123", DiskDir: filepath.Join(dir, "disks"), Info: Info{Vault: true}}
	w.s.Back = w.openBack(t)
	ts := httptest.NewTLSServer(w.s.Handler())
	t.Cleanup(ts.Close)
	w.c = &Client{URL: ts.URL, Token: w.s.Token, DiskDir: "/srv/disks", HTTP: ts.Client(), Retries: -1}
	for _, m := range []string{"web", "db"} {
		w.disks[m] = filepath.Join(w.s.DiskDir, "job1", m, "root.img")
		data := make([]byte, 1<<20)
		rand.Read(data)
		if err := os.MkdirAll(filepath.Dir(w.disks[m]), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(w.disks[m], data, 0o600); err != nil {
			t.Fatal(err)
		}
		w.spec.Machines = append(w.spec.Machines, host.ReplicatedMachine{Name: m, Group: "shop",
			Disks: []host.ReplicatedDisk{{Name: "root", Path: "/srv/disks/job1/" + m + "/root.img"}}})
	}
	return w
}

func (w *replWorld) openBack(t *testing.T) *backrep.Manager {
	t.Helper()
	b, err := backrep.Open(filepath.Join(w.dir, "host", "replication"), filepath.Join(w.dir, "clones"), w.v, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// restored is the disk of machine m's point id, as the vault has it.
func (w *replWorld) restored(t *testing.T, m, id string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.img")
	if _, err := w.v.Restore(context.Background(), vault.RestoreOptions{Machine: m, Point: id, Disk: "root", Target: out}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReplicationBackOverHTTP: the server's orders make the host
// replicate back the disks it holds (named by the server's paths, read
// at the host's): a cycle writes a point of each machine, the final
// snapshot returns the IDs of the whole group, holding what the disk
// holds now; the loop starts and stops, survives the host's restart, and
// a drop forgets it.
func TestReplicationBackOverHTTP(t *testing.T) {
	w := newReplWorld(t)
	ctx := fence.WithEpoch(context.Background(), 2)
	if err := w.c.ReplicationReady(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if err := w.c.EnsureReplication(ctx, "shop", w.spec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.c.CycleReplication(ctx, "shop", "shop"); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"web", "db"} {
		if ps, err := w.v.Points(ctx, m); err != nil || len(ps) != 1 {
			t.Fatalf("points of %s after one cycle: %d, %v", m, len(ps), err)
		}
	}
	f, err := os.OpenFile(w.disks["web"], os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xab}, 4096)
	f.Close()
	ids, err := w.c.SnapshotReplication(ctx, "shop", "web")
	if err != nil || len(ids) != 2 || ids["web"] == "" || ids["db"] == "" {
		t.Fatalf("final snapshot: %v, %v", ids, err)
	}
	want, _ := os.ReadFile(w.disks["web"])
	if got := w.restored(t, "web", ids["web"]); !bytes.Equal(got, want) || got[4096] != 0xab {
		t.Fatal("the final point of web does not hold its disk as it is now")
	}

	if err := w.c.StartReplication(ctx, "shop"); err != nil || !w.s.Back.Running("shop") {
		t.Fatalf("start: %v, running %v", err, w.s.Back.Running("shop"))
	}
	// The host restarts: the order is kept, the loop runs again.
	w.s.Back.Close()
	w.s.Back = w.openBack(t)
	if !w.s.Back.Running("shop") {
		t.Fatal("replication back did not resume after the host's restart")
	}
	if err := w.c.StopReplication(ctx, "shop"); err != nil || w.s.Back.Running("shop") {
		t.Fatalf("stop: %v, running %v", err, w.s.Back.Running("shop"))
	}
	w.s.Back.Close()
	if w.s.Back = w.openBack(t); w.s.Back.Running("shop") {
		t.Fatal("a stopped loop started again after the host's restart")
	}
	for range 2 {
		if err := w.c.DropReplication(ctx, "shop"); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.c.CycleReplication(ctx, "shop", "shop"); !errors.Is(err, host.ErrNoReplication) {
		t.Fatalf("cycle after drop: %v", err)
	}
	if _, err := os.Stat(filepath.Join(w.dir, "host", "replication", "shop.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the dropped order is still kept: %v", err)
	}
}

// TestReplicationBackRefusals: bad input is a 400 and changes nothing;
// an unknown plan is ErrNoReplication; a deposed leader's order is
// refused as stale and the loop stays as it was; a host without a vault
// says so, to ReplicationReady and to an order.
func TestReplicationBackRefusals(t *testing.T) {
	w := newReplWorld(t)
	ctx := fence.WithEpoch(context.Background(), 2)
	bad := func(name string, err error) {
		t.Helper()
		var re *RemoteError
		if !errors.As(err, &re) || re.Status != http.StatusBadRequest {
			t.Fatalf("%s: %v, want a 400", name, err)
		}
	}
	outside := w.spec
	outside.Machines = []host.ReplicatedMachine{{Name: "web", Group: "shop", Disks: []host.ReplicatedDisk{{Name: "root", Path: "../../etc/shadow"}}}}
	bad("disk outside the disk directory", w.c.call(ctx, "PUT", replPath("shop"), outside, nil))
	bad("bad plan name", w.c.EnsureReplication(ctx, "shop plan!", w.spec))
	bad("no machines", w.c.EnsureReplication(ctx, "shop", host.Replication{}))
	bad("unknown field", w.c.call(ctx, "PUT", replPath("shop"), map[string]any{"machines": []any{}, "paths": 1}, nil))
	if err := w.c.StartReplication(ctx, "shop"); !errors.Is(err, host.ErrNoReplication) {
		t.Fatalf("start of a plan never ensured: %v", err)
	}
	if _, err := w.c.SnapshotReplication(ctx, "other", "web"); !errors.Is(err, host.ErrNoReplication) {
		t.Fatalf("snapshot of an unknown plan: %v", err)
	}

	if err := w.c.EnsureReplication(ctx, "shop", w.spec); err != nil {
		t.Fatal(err)
	}
	old := fence.WithEpoch(context.Background(), 1)
	for name, err := range map[string]error{
		"ensure": w.c.EnsureReplication(old, "shop", host.Replication{Machines: w.spec.Machines[:1]}),
		"start":  w.c.StartReplication(old, "shop"),
		"cycle":  w.c.CycleReplication(old, "shop", "shop"),
		"drop":   w.c.DropReplication(old, "shop"),
	} {
		if !errors.Is(err, fence.ErrStale) {
			t.Fatalf("%s of epoch 1 after 2: %v", name, err)
		}
	}
	if w.s.Back.Running("shop") {
		t.Fatal("a stale start started the loop")
	}
	if ps, _ := w.v.Points(ctx, "web"); len(ps) != 0 {
		t.Fatalf("a stale cycle wrote %d points", len(ps))
	}
	if _, err := w.c.SnapshotReplication(ctx, "shop", "db"); err != nil {
		t.Fatalf("the plan after refused orders: %v", err)
	}

	w.s.Back, w.s.Info.Vault = nil, false
	if err := w.c.ReplicationReady(ctx); !errors.Is(err, ErrNoVault) {
		t.Fatalf("ready without a vault: %v", err)
	}
	if err := w.c.EnsureReplication(ctx, "shop", w.spec); !errors.Is(err, ErrNoVault) {
		t.Fatalf("ensure without a vault: %v", err)
	}
}
