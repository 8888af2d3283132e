// Package machinetest is the conformance suite every machine driver runs,
// and the builder of the test images it boots. Images are made from Debian
// packages already on the machine (busybox-static, e2fsprogs) and the
// project's own static guest binary, never downloaded from elsewhere.
package machinetest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/haven-dr/haven/internal/testenv"
)

// CacheDir keeps built parts between runs.
const CacheDir = "/var/cache/haven-test"

var guestOnce struct {
	sync.Once
	path string
	err  error
}

// Guest returns the path of the static guest binary, built once per source
// version with CGO_ENABLED=0 and cached.
func Guest(t testing.TB) string {
	t.Helper()
	testenv.LookPath(t, "go")
	guestOnce.Do(func() { guestOnce.path, guestOnce.err = buildGuest() })
	if guestOnce.err != nil {
		t.Fatal(guestOnce.err)
	}
	return guestOnce.path
}

func guestSourceDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "guest")
}

func buildGuest() (string, error) {
	src := guestSourceDir()
	h := sha256.New()
	files, _ := filepath.Glob(filepath.Join(src, "*.go"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	h.Write([]byte(runtime.Version()))
	out := filepath.Join(CacheDir, "guest-"+hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(CacheDir, 0o755); err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", out+".tmp", ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build guest: %v\n%s", err, b)
	}
	return out, os.Rename(out+".tmp", out)
}

// stage fills dir with the test image's tree: busybox and its applets,
// the guest as /sbin/init, and the usual empty directories.
func stage(t testing.TB, dir string) {
	t.Helper()
	bb := "/bin/busybox"
	if _, err := os.Stat(bb); err != nil {
		testenv.Missing(t, "busybox-static not installed")
	}
	for _, d := range []string{"bin", "sbin", "etc", "dev", "proc", "sys", "tmp", "data", "root"} {
		must(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	must(t, copyFile(bb, filepath.Join(dir, "bin/busybox"), 0o755))
	must(t, copyFile(Guest(t), filepath.Join(dir, "sbin/init"), 0o755))
	list, err := exec.Command(bb, "--list").Output()
	must(t, err)
	for _, applet := range strings.Fields(string(list)) {
		if applet != "busybox" && applet != "init" {
			os.Symlink("busybox", filepath.Join(dir, "bin", applet))
		}
	}
	must(t, os.WriteFile(filepath.Join(dir, "etc/haven-image"), []byte("haven test image\n"), 0o644))
}

// ImageEnv names a test image Image copies instead of building one: the
// driver's tests run inside a Debian VM (e2e's cgroup v2 test) where
// neither go nor busybox-static is at hand to build it.
const ImageEnv = "HAVEN_TEST_MACHINE_IMAGE"

// Image builds a fresh ext4 test image in the test's temp dir (or copies
// the one ImageEnv names). Each machine needs its own: an image is a
// disk, and two machines writing to one disk would corrupt it.
func Image(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if src := os.Getenv(ImageEnv); src != "" {
		img := filepath.Join(dir, "disk.img")
		must(t, copyFile(src, img, 0o644))
		return img
	}
	mkfs := testenv.LookPath(t, "mkfs.ext4")
	tree := filepath.Join(dir, "tree")
	stage(t, tree)
	img := filepath.Join(dir, "disk.img")
	out, err := exec.Command(mkfs, "-q", "-F", "-E", "root_owner=0:0", "-d", tree, img, "48M").CombinedOutput()
	if err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	return img
}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
