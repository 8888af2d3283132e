package agent

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob"
)

// outage wraps the real fileblob backend and fails calls while a rule
// matches, as an unreachable storage service does.
type outage struct {
	blob.Backend
	mu   sync.Mutex
	down func(op, name string) bool
}

func (o *outage) fail(op, name string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.down != nil && o.down(op, name) {
		return blob.ErrUnavailable
	}
	return nil
}

func (o *outage) set(f func(op, name string) bool) { o.mu.Lock(); o.down = f; o.mu.Unlock() }

func (o *outage) Put(ctx context.Context, name string, data []byte) error {
	if err := o.fail("put", name); err != nil {
		return err
	}
	return o.Backend.Put(ctx, name, data)
}

func (o *outage) Get(ctx context.Context, name string, off, n int64) ([]byte, error) {
	if err := o.fail("get", name); err != nil {
		return nil, err
	}
	return o.Backend.Get(ctx, name, off, n)
}

func (o *outage) List(ctx context.Context, prefix string, fn func(blob.Info) error) error {
	if err := o.fail("list", prefix); err != nil {
		return err
	}
	return o.Backend.List(ctx, prefix, fn)
}

// TestCatchUpAfterOutage: while the vault is down cycles fail, the status
// says why and the RPO alert fires once the threshold passes; when the
// vault is back the next cycle succeeds, the alert clears, and data that
// reached the vault before the failure is not uploaded again.
func TestCatchUpAfterOutage(t *testing.T) {
	ctx := context.Background()
	var o *outage
	v := newVault(t, func(b blob.Backend) blob.Backend { o = &outage{Backend: b}; return o })
	disk := filepath.Join(t.TempDir(), "disk.img")
	writeRandom(t, disk, 8<<20)
	a := newAgent(testConfig(t, ProviderNone, disk), v)
	var skew time.Duration
	a.now = func() time.Time { return time.Now().Add(skew) }

	if err := a.Cycle(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	if s := a.Status().Machines[0]; s.RPOAlert || s.Points != 1 {
		t.Fatalf("after first point: %+v", s)
	}

	// Everything down.
	o.set(func(string, string) bool { return true })
	writeRandom(t, disk, 8<<20)
	if err := a.Cycle(ctx, "m1"); err == nil {
		t.Fatal("cycle succeeded with the vault down")
	}
	skew = 2 * time.Minute
	s := a.Status().Machines[0]
	if !s.RPOAlert || s.Failures != 1 || !strings.Contains(s.LastError, "unavailable") {
		t.Fatalf("during outage: alert %v failures %d error %q", s.RPOAlert, s.Failures, s.LastError)
	}

	// Packs get through, indexes and manifests do not.
	o.set(func(op, name string) bool {
		return op == "put" && !strings.HasPrefix(name, "data/") && !strings.HasPrefix(name, "locks/")
	})
	if err := a.Cycle(ctx, "m1"); err == nil {
		t.Fatal("cycle succeeded without an index")
	}
	uploaded := a.Status().Machines[0].UploadedBytes

	o.set(nil)
	skew = 0
	if err := a.Cycle(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	s = a.Status().Machines[0]
	if s.RPOAlert || s.Points != 2 {
		t.Fatalf("after recovery: alert %v points %d", s.RPOAlert, s.Points)
	}
	if got := s.UploadedBytes - uploaded; got > 64<<10 {
		t.Fatalf("catch-up uploaded %d bytes again; the failed cycle had already stored the data", got)
	}
	assertRestores(t, v, disk)
}

// TestCatchUpSchedule: after a restart the first cycle is due at once when
// the newest point is older than the frequency, else one period after it.
func TestCatchUpSchedule(t *testing.T) {
	ctx := context.Background()
	v := newVault(t, nil)
	disk := filepath.Join(t.TempDir(), "disk.img")
	writeRandom(t, disk, 1<<20)
	cfg := testConfig(t, ProviderNone, disk)
	a := newAgent(cfg, v)
	if next := a.catchUp(ctx, a.groups[0]); time.Until(next) > 0 {
		t.Fatalf("no point yet, but first cycle due in %v", time.Until(next))
	}
	if err := a.Cycle(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	b := newAgent(cfg, v)
	next := b.catchUp(ctx, b.groups[0])
	if d := time.Until(next); d < 10*time.Second || d > 15*time.Second {
		t.Fatalf("fresh point: next cycle in %v, want ~15s", d)
	}
	if b.Status().Machines[0].LastPoint == nil {
		t.Fatal("restarted agent does not know its newest point")
	}
}
