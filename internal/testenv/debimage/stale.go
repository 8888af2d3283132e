package debimage

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// removeStale removes what killed builds left (their work directories,
// with any mount or loop device still under them) and the images of older
// recipes. The caller holds the cache lock, so no build is running.
func removeStale() error {
	works, _ := filepath.Glob(filepath.Join(CacheDir, "hvbuild-*"))
	for _, w := range works {
		if err := removeWork(w); err != nil {
			return err
		}
	}
	old, _ := filepath.Glob(filepath.Join(CacheDir, "debian-*"))
	for _, p := range old {
		slog.Info("debimage: removing image of an older recipe", "path", p)
		os.Remove(p)
	}
	return nil
}

// removeWork deletes a build directory. mmdebstrap mounts the host's /dev,
// /proc and /sys inside it, so deleting through a mount left by a killed
// build would delete the host's files: unmount first, and refuse when
// anything stays mounted.
func removeWork(dir string) error {
	for _, m := range mountsUnder(dir) {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil {
			slog.Warn("debimage: unmount", "path", m, "err", err)
		}
	}
	detachLoops(dir)
	if left := mountsUnder(dir); len(left) > 0 {
		return fmt.Errorf("debimage: %s still has mounts %v: not removing it", dir, left)
	}
	return os.RemoveAll(dir)
}

// mountsUnder lists mount points below dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if strings.HasPrefix(mp, dir+"/") || mp == dir {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// detachLoops detaches loop devices backed by the disk image of a build.
func detachLoops(dir string) {
	out, err := exec.Command("losetup", "--noheadings", "--output", "NAME", "-j", filepath.Join(dir, "disk.img")).Output()
	if err != nil {
		return
	}
	for _, dev := range strings.Fields(string(out)) {
		exec.Command("losetup", "-d", dev).Run()
	}
}
