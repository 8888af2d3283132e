package agent

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vault"
)

// TestFsfreezeProvider: a machine whose disk is a loop-mounted ext4 image
// is captured with its filesystem frozen (FIFREEZE/FITHAW); data written
// just before the cycle is in the point, and the filesystem is writable
// again afterwards.
func TestFsfreezeProvider(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	img := testenv.Image(t, testenv.Dir(t), 64)
	testenv.Mkfs(t, img, "ext4", "-q", "-F")
	mnt := testenv.LoopMount(t, img, "ext4")
	if err := os.WriteFile(filepath.Join(mnt, "hello"), []byte("before the point"), 0o644); err != nil {
		t.Fatal(err)
	}
	v := newVault(t, nil)
	cfg := testConfig(t, ProviderNone, img)
	cfg.Machines[0].Provider, cfg.Machines[0].Freeze = ProviderFsfreeze, []string{mnt}
	a := newAgent(cfg, v)
	if err := a.Cycle(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "after"), nil, 0o644); err != nil {
		t.Fatalf("filesystem not thawed: %v", err)
	}
	out := filepath.Join(testenv.Dir(t), "hvrestored.img")
	if _, err := v.Restore(ctx, vault.RestoreOptions{Machine: "m1", Disk: "d0", Target: out}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(testenv.LoopMount(t, out, "ext4"), "hello"))
	if err != nil || string(got) != "before the point" {
		t.Fatalf("restored file: %q %v", got, err)
	}
	if p := a.Status().Machines[0].LastPoint; p.Provider != ProviderFsfreeze {
		t.Fatalf("point provider %q", p.Provider)
	}
}
