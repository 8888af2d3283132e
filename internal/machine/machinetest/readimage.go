package machinetest

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/haven-dr/haven/internal/machine/loop"
	"github.com/haven-dr/haven/internal/vnet"
	"golang.org/x/sys/unix"
)

// ReadFromImage mounts the ext4 image read-only and returns the file at
// rel. The mount is made in a private mount namespace of a throw-away
// thread, so it can never outlive the call, even if the test fails.
func ReadFromImage(t testing.TB, image, rel string) string {
	t.Helper()
	dev, err := loop.Attach(image, vnet.NewID()+"-check", true)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	dir := t.TempDir()
	type result struct {
		data []byte
		err  error
	}
	c := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread and its namespace die with us
		b, err := readMounted(dev.Path, dir, rel)
		c <- result{b, err}
	}()
	r := <-c
	if r.err != nil {
		t.Fatalf("read %s from %s: %v", rel, image, r.err)
	}
	return string(r.data)
}

func readMounted(dev, dir, rel string) ([]byte, error) {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return nil, err
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return nil, err
	}
	if err := unix.Mount(dev, dir, "ext4", unix.MS_RDONLY, ""); err != nil {
		return nil, err
	}
	defer unix.Unmount(dir, 0)
	return os.ReadFile(filepath.Join(dir, rel))
}
