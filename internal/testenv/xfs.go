package testenv

import (
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Dir returns a new directory named hv<random> under the system temp dir,
// world-traversable (mode 0755) so that service users such as postgres can
// reach files below it, removed in t.Cleanup.
func Dir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "hv")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o755)
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// Image creates a sparse file of sizeMB named hv<random>.img in dir.
func Image(t testing.TB, dir string, sizeMB int64) string {
	t.Helper()
	img := filepath.Join(dir, "hv"+strings.ToLower(rand.Text()[:8])+".img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(sizeMB << 20); err != nil {
		t.Fatal(err)
	}
	return img
}

// LoopMount attaches img to a free loop device (losetup) and mounts it at
// a new directory hv<random> beside the image. t.Cleanup unmounts and
// detaches, even when the test fails. Mounting replays a journal, so this
// is also how a test "boots" a crash-consistent filesystem image.
func LoopMount(t testing.TB, img, fstype string) string {
	t.Helper()
	RequireRoot(t)
	losetup := LookPath(t, "losetup")
	dev := run(t, losetup, "--find", "--show", img)
	t.Cleanup(func() { exec.Command(losetup, "-d", dev).Run() })
	mnt := filepath.Join(filepath.Dir(img), "hv"+strings.ToLower(rand.Text()[:8]))
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "mount", "-t", fstype, dev, mnt)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			exec.Command("umount", "-l", mnt).Run() // a busy mount must not outlive the test
			t.Logf("umount %s: %v %s", mnt, err, out)
		}
		os.Remove(mnt)
	})
	return mnt
}

// Mkfs formats img with mkfs.<fstype> and extra arguments.
func Mkfs(t testing.TB, img, fstype string, args ...string) {
	t.Helper()
	mkfs := LookPath(t, "mkfs."+fstype)
	run(t, mkfs, append(args, img)...)
}

// XFS returns the mountpoint of a fresh loop-mounted XFS with reflink=1 of
// sizeMB. Needs root, xfsprogs and util-linux.
func XFS(t testing.TB, sizeMB int64) string {
	t.Helper()
	RequireRoot(t)
	img := Image(t, Dir(t), sizeMB)
	Mkfs(t, img, "xfs", "-q", "-m", "reflink=1")
	return LoopMount(t, img, "xfs")
}

func run(t testing.TB, prog string, args ...string) string {
	t.Helper()
	out, err := exec.Command(prog, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}
