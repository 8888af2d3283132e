package host

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/haven-dr/haven/internal/fence"
	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/vnet"
)

// TestLocalRefusesStaleLeader: two servers of one machine share the
// host's directory (two Locals on one dir here). Once the new leader
// (epoch 2) gave an order, each order of the deposed one (epoch 1) is
// refused before it touches anything, as is one without an epoch, also
// after a restart; the new leader's orders pass.
func TestLocalRefusesStaleLeader(t *testing.T) {
	dir := t.TempDir()
	open := func() *Local {
		h, err := NewLocal(dir, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	old, cur := open(), open()
	ctx := context.Background()
	disk := filepath.Join(t.TempDir(), "web.img")
	if err := os.WriteFile(disk, []byte("disk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cur.RemoveDisk(fence.WithEpoch(ctx, 2), filepath.Join(t.TempDir(), "gone.img")); err != nil {
		t.Fatal(err)
	}
	spec := machine.Spec{Name: "web"}
	orders := map[string]func(context.Context, *Local) error{
		"EnsureSite": func(c context.Context, h *Local) error {
			return h.EnsureSite(c, "rec", []vnet.Network{{Name: "rec"}}, "")
		},
		"RemoveSite":   func(c context.Context, h *Local) error { return h.RemoveSite(c, "rec") },
		"StartMachine": func(c context.Context, h *Local) error { return h.StartMachine(c, "rec", "ns", spec) },
		"StopMachine":  func(c context.Context, h *Local) error { return h.StopMachine(c, "rec", "web") },
		"RemoveDisk":   func(c context.Context, h *Local) error { return h.RemoveDisk(c, disk) },
		"PrepareDisk": func(c context.Context, h *Local) error {
			_, err := h.PrepareDisk(c, DiskRequest{Machine: "web", Disk: "root", Point: "p", Target: disk})
			return err
		},
		"UpdateStandby": func(c context.Context, h *Local) error {
			_, err := h.UpdateStandby(c, "web", "root", "p")
			return err
		},
	}
	for _, h := range []*Local{old, open()} { // the deposed leader, then after a restart
		for name, order := range orders {
			if err := order(fence.WithEpoch(ctx, 1), h); !errors.Is(err, fence.ErrStale) {
				t.Fatalf("%s at epoch 1 after 2: %v", name, err)
			}
			if err := order(ctx, h); !errors.Is(err, fence.ErrStale) {
				t.Fatalf("%s without an epoch after 2: %v", name, err)
			}
		}
	}
	if _, err := os.Stat(disk); err != nil {
		t.Fatalf("a refused order removed the disk: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "standby")); err == nil {
		t.Fatal("a refused standby update made its directory")
	}
	if err := cur.RemoveDisk(fence.WithEpoch(ctx, 2), disk); err != nil {
		t.Fatalf("the leader's own order: %v", err)
	}
	if _, err := os.Stat(disk); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("disk after the leader removed it: %v", err)
	}
}
