package agent

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestQemuCycleCancelled: a cycle cancelled while it reads the VM's disk
// (the agent stopping) still tears its session down, so the next cycle
// can start QEMU's NBD server again. Teardown used to run on the
// cancelled context: every command failed, QEMU kept its NBD server, the
// socket was removed anyway, and every later cycle failed with "NBD
// server already running".
func TestQemuCycleCancelled(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk0.raw")
	buf := make([]byte, 128<<20) // enough data that reading it takes a while
	rand.NewChaCha8([32]byte{3}).Read(buf)
	if err := os.WriteFile(raw, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	vm := startVM(t, vmDisk{id: "disk0", path: raw, format: "raw"})
	v := newVault(t, nil)
	cfg := qemuConfig(t, vm, "")
	a := newAgent(cfg, v)
	sock := nbdSocket(cfg.StateDir, "m1")
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for ctx.Err() == nil {
			if _, err := os.Stat(sock); err == nil {
				cancel() // the NBD server runs: the cycle is reading
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	err := a.Cycle(ctx, "m1")
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled cycle returned %v, want context.Canceled", err)
	}
	if err := a.Cycle(context.Background(), "m1"); err != nil {
		t.Fatalf("cycle after a cancelled one: %v", err)
	}
	if got := restored(t, v, "disk0"); string(got) != string(buf) {
		t.Fatal("restored disk differs from the VM's")
	}
}
