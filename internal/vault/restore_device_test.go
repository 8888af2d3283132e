package vault

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/machine/loop"
	"github.com/haven-dr/haven/internal/testenv"
	"golang.org/x/sys/unix"
)

// mountTmpfs mounts a tmpfs of the given size at a new directory hv<random>,
// unmounted when the test ends.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	testenv.RequireRoot(t)
	mnt := filepath.Join(t.TempDir(), "hv"+strings.ToLower(rand.Text()[:8]))
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size="+size); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	return mnt
}

// TestPartialRestoreSaysSoAndRerunCompletes: when the target's file system
// fills up half-way through writing, the error says the target is partially
// written, and once there is room the same restore completes it, writing
// only what still differs.
func TestPartialRestoreSaysSoAndRerunCompletes(t *testing.T) {
	ctx := context.Background()
	v, _ := testVault(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src.img")
	writeImage(t, src, 51, segment{"random", 8 << 20})
	snap(t, v, "db", DiskSource{Name: "data", Path: src})

	mnt := mountTmpfs(t, "4m")
	tgt := filepath.Join(mnt, "target.img")
	writeImage(t, tgt, 52, segment{"random", 1 << 20})
	opt := RestoreOptions{Machine: "db", Disk: "data", Target: tgt, StagingDir: t.TempDir()}
	_, err := v.Restore(ctx, opt)
	var re *RestoreError
	if !errors.Is(err, unix.ENOSPC) || !errors.As(err, &re) || re.State != TargetPartial ||
		re.Written == 0 || re.Written >= re.Differing || !strings.Contains(err.Error(), "PARTIALLY WRITTEN") {
		t.Fatalf("restore onto a full file system: %v (%+v); want ENOSPC saying the target is partially written", err, re)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", unix.MS_REMOUNT, "size=32m"); err != nil {
		t.Fatal(err)
	}
	st, err := v.Restore(ctx, opt)
	if err != nil {
		t.Fatalf("rerun: %v", err)
	}
	if sha(t, tgt) != sha(t, src) {
		t.Fatal("rerun is not bit-exact")
	}
	if st.ChunksWritten > re.Differing-re.Written {
		t.Fatalf("rerun wrote %d chunks; %d of %d were already written", st.ChunksWritten, re.Written, re.Differing)
	}
}

// TestRestoreRefusesMountedDevice: a mounted block device is refused before
// anything is written; unmounted, the same restore goes through.
func TestRestoreRefusesMountedDevice(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	v, _ := testVault(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src.img")
	writeImage(t, src, 61, segment{"text", 4 << 20})
	snap(t, v, "web", DiskSource{Name: "root", Path: src})

	img := testenv.Image(t, testenv.Dir(t), 16)
	testenv.Mkfs(t, img, "ext4", "-q")
	dev, err := loop.Attach(img, "hv-vault-"+filepath.Base(img), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	mnt := filepath.Join(filepath.Dir(img), "hv"+strings.ToLower(rand.Text()[:8]))
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(dev.Path, mnt, "ext4", 0, ""); err != nil {
		t.Fatalf("mount %s: %v", dev.Path, err)
	}
	mounted := true
	t.Cleanup(func() {
		if mounted {
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	before := sha(t, dev.Path)

	opt := RestoreOptions{Machine: "web", Disk: "root", Target: dev.Path}
	for _, dry := range []bool{true, false} {
		opt.DryRun = dry
		_, err = v.Restore(ctx, opt)
		var re *RestoreError
		if err == nil || !errors.As(err, &re) || re.State != TargetUntouched || !strings.Contains(err.Error(), "in use") {
			t.Fatalf("restore (dry run %v) onto mounted %s: %v; want a refusal with the target untouched", dry, dev.Path, err)
		}
	}
	if sha(t, dev.Path) != before {
		t.Fatal("refused restore changed the mounted device")
	}
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	mounted = false
	opt.DryRun = false
	if _, err := v.Restore(ctx, opt); err != nil {
		t.Fatalf("restore onto the unmounted device: %v", err)
	}
	f, err := os.Open(dev.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, 4<<20)
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(src)
	if string(got) != string(want) {
		t.Fatal("restore onto the unmounted device is not bit-exact")
	}
}
