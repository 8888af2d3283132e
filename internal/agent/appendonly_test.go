package agent

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/vault"
)

// TestAgentOnAppendOnlyStorage: the agent's cycles (first point, then
// incremental ones with change tracking) work on storage that refuses every
// delete and overwrite, and its own retention prune is refused there
// without costing a point or failing a cycle: the agent's credential cannot
// destroy what it wrote.
func TestAgentOnAppendOnlyStorage(t *testing.T) {
	ctx := context.Background()
	var ao *blob.AppendOnly
	v := newVault(t, func(b blob.Backend) blob.Backend { ao = blob.NewAppendOnly(b); return ao })
	disk := filepath.Join(t.TempDir(), "disk.img")
	writeRandom(t, disk, 2<<20)
	cfg := testConfig(t, ProviderNone, disk)
	cfg.Machines[0].Policy.Retention = vault.Retention{Last: 1}
	cfg.Machines[0].Policy.PruneEvery = time.Nanosecond
	a := newAgent(cfg, v)
	base := time.Now()
	for i := range 4 {
		a.now = func() time.Time { return base.Add(time.Duration(i) * time.Minute) }
		if i > 0 {
			scribble(t, disk, 8)
		}
		if err := a.Cycle(ctx, "m1"); err != nil {
			t.Fatalf("cycle %d on append-only storage: %v", i, err)
		}
		a.bg.Wait() // the prune it started
	}
	points, err := v.Points(ctx, "m1")
	if err != nil || len(points) != 4 {
		t.Fatalf("points after 4 cycles with retention last=1 on append-only storage: %d, %v", len(points), err)
	}
	assertRestores(t, v, disk)
}
