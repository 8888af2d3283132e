package vault

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRestoreRemovesKilledRestoresLeftovers: a restore killed before its
// rename leaves a hidden temporary file beside the target; the next
// restore to that target removes it, but never one a live restore holds.
func TestRestoreRemovesKilledRestoresLeftovers(t *testing.T) {
	v, _ := testVault(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src.img")
	writeImage(t, src, 1, segment{"random", 1 << 20})
	p, _ := snap(t, v, "m", DiskSource{Name: "d", Path: src})
	target := filepath.Join(dir, "out.img")
	stale := tempPrefix(target) + "deadbeef"
	if err := os.WriteFile(stale, []byte("half a disk"), 0o600); err != nil {
		t.Fatal(err)
	}
	live := tempPrefix(target) + "0badf00d"
	lf, err := os.Create(live)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Restore(context.Background(), RestoreOptions{Machine: "m", Point: p.ID, Disk: "d", Target: target}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the killed restore's temporary file is still there (%v)", err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("a live restore's temporary file was removed: %v", err)
	}
	RemoveRestoreLeftovers(target)
	if _, err := os.Stat(live); err != nil {
		t.Errorf("RemoveRestoreLeftovers removed a held file: %v", err)
	}
	lf.Close()
	RemoveRestoreLeftovers(target)
	if _, err := os.Stat(live); !os.IsNotExist(err) {
		t.Errorf("RemoveRestoreLeftovers left an unheld leftover (%v)", err)
	}
}
