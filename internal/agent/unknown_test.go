package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/blobopen"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vault"
)

// TestRPOUnknownWhileVaultUnreachable: a real S3 vault (versitygw behind a
// loopback TCP proxy that the test takes down) holds a point; an agent
// that cannot learn the newest point, whether it opened the vault just
// before the outage or starts during it, reports the RPO as unknown with
// the alert on, not "0 s, fine". Once the vault is back it learns the point.
func TestRPOUnknownWhileVaultUnreachable(t *testing.T) {
	ctx := context.Background()
	endpoint, access, secret := testenv.S3Server(t)
	proxy := testenv.NewOutageProxy(t, endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("HAVEN_PASSWORD", "secret")
	disk := filepath.Join(t.TempDir(), "disk.img")
	writeRandom(t, disk, 1<<20)
	cfg := testConfig(t, ProviderNone, disk)
	cfg.Vault = fmt.Sprintf("s3://hvrpo?endpoint=%s&insecure=true", proxy.Addr)
	// A threshold no test run reaches: any alert below is for "unknown".
	cfg.Machines[0].Policy.RPOAlert = time.Hour

	be, err := blobopen.Open(ctx, cfg.Vault, blob.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.Init(ctx, be, "secret", fastKDF)
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
	first := mustNew(t, cfg)
	if err := first.Cycle(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	point := first.Status().Machines[0].LastPoint
	first.Close()

	opened := mustNew(t, cfg) // restarted just before the outage
	proxy.Down()
	opened.catchUp(ctx, opened.groups[0])
	assertUnknown(t, "vault opened, newest point unreadable", opened.Status().Machines[0])

	during := mustNew(t, cfg) // started during the outage
	assertUnknown(t, "started during the outage", during.Status().Machines[0])

	proxy.Up(t)
	during.openEvery = time.Millisecond
	if !during.waitVault(ctx) {
		t.Fatal("vault not opened")
	}
	during.catchUp(ctx, during.groups[0])
	s := during.Status().Machines[0]
	if s.RPOUnknown || s.RPOAlert || s.LastPoint == nil || s.LastPoint.ID != point.ID {
		t.Fatalf("vault back: unknown %v alert %v last point %+v, want %s", s.RPOUnknown, s.RPOAlert, s.LastPoint, point.ID)
	}
}

func mustNew(t *testing.T, cfg *Config) *Agent {
	t.Helper()
	a, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func assertUnknown(t *testing.T, when string, s MachineStatus) {
	t.Helper()
	if !s.RPOUnknown || !s.RPOAlert || s.LastPoint != nil || !strings.Contains(s.LastError, "unavailable") {
		t.Fatalf("%s: unknown %v alert %v rpo %.0fs last point %+v error %q; want unknown, alert, the storage error",
			when, s.RPOUnknown, s.RPOAlert, s.RPOSeconds, s.LastPoint, s.LastError)
	}
}
