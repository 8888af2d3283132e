package orchestrator_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/agent"
	"github.com/haven-dr/haven/internal/blob/fileblob"
	"github.com/haven-dr/haven/internal/fence"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/vault"
)

// TestHTTPAgentsEndToEnd drives a real agent (file vault, image-file disk,
// shell hooks) through the orchestrator's HTTP client: status, stop, final
// snapshot, restore with preserve after the disk diverged, start; a wrong
// token and a dead agent are errors.
func TestHTTPAgentsEndToEnd(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	be, err := fileblob.New(filepath.Join(dir, "vault"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.Init(ctx, be, "pw", vault.Options{KDF: vault.KDFParams{N: 1 << 10, R: 8, P: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	disk := filepath.Join(dir, "web.img")
	data := make([]byte, 2<<20)
	rand.Read(data)
	if err := os.WriteFile(disk, data, 0o600); err != nil {
		t.Fatal(err)
	}
	tokFile := filepath.Join(dir, "token")
	os.WriteFile(tokFile, []byte("tok-"+rand.Text()), 0o600)
	marks := filepath.Join(dir, "hooks")
	cfg, err := agent.ParseConfig(fmt.Sprintf(`
vault: /unused
state_dir: %s
control_token_file: %s
machines:
  - name: web
    provider: none
    disks: [{name: root, path: %s}]
    control: {stop: 'echo "stop $HAVEN_MACHINE" >> %s', start: 'echo "start $HAVEN_MACHINE" >> %s'}
`, filepath.Join(dir, "state"), tokFile, disk, marks, marks))
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.NewWithVault(cfg, v)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	c, err := orchestrator.HTTPAgents(protection.Agent{Name: "site-a", URL: srv.URL, TokenFile: tokFile, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}

	if r, err := c.Status(ctx); err != nil || len(r.Machines) != 1 || r.Machines[0].Name != "web" {
		t.Fatalf("status %+v %v", r, err)
	}
	if err := c.Stop(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if r, _ := c.Status(ctx); !r.Machines[0].Paused {
		t.Fatal("status does not show the stopped machine paused")
	}
	pts, err := c.Snapshot(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	id := pts["web"]
	if p, err := v.FindPoint(ctx, "web", id); err != nil || p.ID != id {
		t.Fatalf("snapshot %q not in the vault: %v", id, err)
	}
	f, _ := os.OpenFile(disk, os.O_WRONLY, 0)
	f.WriteAt(bytes.Repeat([]byte{7}, 5000), 1<<20)
	f.Close()
	res, err := c.Restore(ctx, "web", agent.RestoreRequest{Point: id, Preserve: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(disk); !bytes.Equal(got, data) {
		t.Fatal("disk is not the point after the restore")
	}
	if res.Preserved == "" || len(res.Disks) != 1 || res.Disks[0].Disk != "root" || res.Disks[0].Differing == 0 ||
		res.Disks[0].BytesWritten >= res.Disks[0].Size {
		t.Fatalf("restore result %+v", res)
	}
	if err := c.Start(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(marks); string(b) != "stop web\nstart web\n" {
		t.Fatalf("hooks ran: %q", b)
	}

	if err := c.Start(ctx, "nosuch"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("unknown machine: %v", err)
	}
	os.WriteFile(tokFile+".bad", []byte("wrong-token-0123456789"), 0o600)
	bad, err := orchestrator.HTTPAgents(protection.Agent{Name: "site-a", URL: srv.URL, TokenFile: tokFile + ".bad"})
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Stop(ctx, "web"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong token: %v", err)
	}

	// The leader's epoch travels with the order: after epoch 5 stopped
	// the machine, a deposed leader's start (epoch 4) is refused.
	if err := c.Stop(fence.WithEpoch(ctx, 5), "web"); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(fence.WithEpoch(ctx, 4), "web"); !errors.Is(err, fence.ErrStale) || !strings.Contains(err.Error(), "stale leader epoch 4 < 5") {
		t.Fatalf("start at a stale epoch: %v", err)
	}
	if b, _ := os.ReadFile(marks); string(b) != "stop web\nstart web\nstop web\n" {
		t.Fatalf("hooks ran: %q", b)
	}
	os.WriteFile(tokFile+".short", []byte("short"), 0o600)
	if _, err := orchestrator.HTTPAgents(protection.Agent{Name: "site-a", URL: srv.URL, TokenFile: tokFile + ".short"}); err == nil {
		t.Fatal("a 5-character token file was accepted")
	}
	srv.Close()
	if _, err := c.Status(ctx); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("dead agent: %v", err)
	}
}
