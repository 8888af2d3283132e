package testenv

import (
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// XFS creates a sparse image file of sizeMB (named hv<random>.img, in a
// fresh temp dir), formats it XFS with reflink=1, attaches it to a loop
// device with losetup and mounts it at a directory named hv<random>. It
// returns the mountpoint. t.Cleanup unmounts, detaches the loop device and
// deletes the image, even when the test fails. Needs root, mkfs.xfs
// (xfsprogs) and losetup (util-linux).
func XFS(t testing.TB, sizeMB int64) string {
	t.Helper()
	RequireRoot(t)
	mkfs := LookPath(t, "mkfs.xfs")
	losetup := LookPath(t, "losetup")
	base := t.TempDir()
	suffix := strings.ToLower(rand.Text()[:8])
	img := filepath.Join(base, "hv"+suffix+".img")
	mnt := filepath.Join(base, "hv"+suffix)
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(sizeMB << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	run(t, mkfs, "-q", "-m", "reflink=1", img)
	dev := run(t, losetup, "--find", "--show", img)
	t.Cleanup(func() { exec.Command(losetup, "-d", dev).Run() })
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "mount", "-t", "xfs", dev, mnt)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			exec.Command("umount", "-l", mnt).Run() // a busy mount must not outlive the test
			t.Logf("umount %s: %v %s", mnt, err, out)
		}
	})
	return mnt
}

func run(t testing.TB, prog string, args ...string) string {
	t.Helper()
	out, err := exec.Command(prog, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}
