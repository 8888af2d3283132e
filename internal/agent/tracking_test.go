package agent

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/haven-dr/haven/internal/testenv"
)

// TestReflinkChangeTracking replicates a disk image on a real XFS (reflink)
// filesystem: the first point reads everything, later points read only the
// chunks whose blocks changed, and every point restores to the exact bytes
// of the disk at capture time, also after the disk grows and shrinks and
// after the agent restarts with or without its cache.
func TestReflinkChangeTracking(t *testing.T) {
	mnt := testenv.XFS(t, 512)
	ctx := context.Background()
	disk := filepath.Join(mnt, "disk.img")
	writeRandom(t, disk, 32<<20)
	v := newVault(t, nil)
	cfg := testConfig(t, ProviderReflink, disk)
	a := newAgent(cfg, v)
	nChunks := int64(32<<20) / int64(v.Config().ChunkSize)

	cycle := func(name string) *MachineStatus {
		t.Helper()
		if err := a.Cycle(ctx, "m1"); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		assertRestores(t, v, disk)
		s := a.Status().Machines[0]
		t.Logf("%s: known %d, new %d bytes, %.3fs", name, s.LastCycle.KnownChunks, s.LastCycle.NewBytes, s.LastCycle.Seconds)
		return &s
	}
	if s := cycle("first"); s.LastCycle.KnownChunks != 0 {
		t.Fatalf("first point used %d hints without a baseline", s.LastCycle.KnownChunks)
	}
	scribble(t, disk, 10)
	s := cycle("10 blocks changed")
	if s.LastCycle.KnownChunks < nChunks-10 || s.LastCycle.NewBytes > 10*int64(v.Config().ChunkSize) {
		t.Fatalf("change tracking: known %d of %d chunks, %d new bytes", s.LastCycle.KnownChunks, nChunks, s.LastCycle.NewBytes)
	}
	s = cycle("unchanged")
	if s.LastCycle.KnownChunks != nChunks || s.LastCycle.NewBytes != 0 {
		t.Fatalf("unchanged disk: known %d of %d, new %d", s.LastCycle.KnownChunks, nChunks, s.LastCycle.NewBytes)
	}

	grow(t, disk, 8<<20)
	cycle("grown by 8 MiB")
	if err := os.Truncate(disk, 20<<20+12345); err != nil {
		t.Fatal(err)
	}
	cycle("shrunk to 20 MiB + 12345")

	// Restart: the cache and the baseline clone survive and are verified.
	a = newAgent(cfg, v)
	scribble(t, disk, 3)
	if s := cycle("after restart"); s.LastCycle.KnownChunks == 0 {
		t.Fatal("restart lost change tracking although the cache matches the vault")
	}
	// Lost cache: the next point reads everything and is still right.
	os.RemoveAll(cfg.StateDir)
	a = newAgent(cfg, v)
	scribble(t, disk, 3)
	if s := cycle("cache lost"); s.LastCycle.KnownChunks != 0 {
		t.Fatalf("used %d hints without a cache", s.LastCycle.KnownChunks)
	}
}

func grow(t *testing.T, path string, n int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}
