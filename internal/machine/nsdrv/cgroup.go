package nsdrv

import (
	"bufio"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/haven-dr/haven/internal/vnet"
	"golang.org/x/sys/unix"
)

// Each machine runs in a cgroup of its own on the host's cgroup2
// hierarchy (on a hybrid host, the unified one beside the v1
// controllers): the child is cloned into it, makes it the root of its
// cgroup namespace, and systemd inside builds its tree beneath. The
// cgroup is how Stop knows every process is gone, and cgroup.kill ends
// whatever a crashed run left.

// cgroup2Root returns where the host's cgroup2 hierarchy is mounted, or ""
// when it has none (machines then run without a cgroup of their own).
func cgroup2Root() string {
	return cgroupMount(func(fstype string, _ []string) bool { return fstype == "cgroup2" })
}

// cgroupMount returns where the first cgroup hierarchy (mounted from its
// root) that match accepts is mounted, or "". match gets the file system
// type and its super options (a v1 hierarchy's controllers).
func cgroupMount(match func(fstype string, opts []string) bool) string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		pre, post, ok := strings.Cut(s.Text(), " - ")
		fields, after := strings.Fields(pre), strings.Fields(post)
		if ok && len(fields) >= 5 && fields[3] == "/" && len(after) >= 3 && match(after[0], strings.Split(after[2], ",")) {
			return fields[4]
		}
	}
	return ""
}

// CgroupName names a machine's cgroup: tagged like its loop devices, so
// cleanup finds both by one prefix, plus a random suffix. Machine names
// repeat across sites and runs on one host (the primary's db and its
// recovered copy, two test runs), and cgroups live in one host-wide tree.
func CgroupName(machineName string) string {
	return vnet.Prefix + "-" + machineName + "-" + strings.ToLower(rand.Text()[:6])
}

// cgroupFile in a machine's state directory records its cgroup, so
// cleanup of a crashed run removes exactly that one.
const cgroupFile = "cgroup"

// makeCgroup creates the machine's cgroup, records it in the machine's
// state directory dir and opens it for clone3's CLONE_INTO_CGROUP.
func makeCgroup(root, dir, machineName string) (string, *os.File, error) {
	path := filepath.Join(root, CgroupName(machineName))
	if err := os.WriteFile(filepath.Join(dir, cgroupFile), []byte(path), 0o644); err != nil {
		return "", nil, fmt.Errorf("cgroup: %w", err)
	}
	if err := os.Mkdir(path, 0o755); err != nil {
		return "", nil, fmt.Errorf("cgroup: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		os.Remove(path)
		return "", nil, fmt.Errorf("cgroup: %w", err)
	}
	return path, f, nil
}

// removeCgroup kills what still runs in the cgroup tree at path and
// removes it, deepest first. The kernel empties a cgroup a moment after
// its processes die, so removal is retried until deadline.
func removeCgroup(path string, deadline time.Time) error {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	for {
		err := rmTree(path)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s: %w", path, err)
		}
		os.WriteFile(filepath.Join(path, "cgroup.kill"), []byte("1"), 0) // Linux 5.14+
		time.Sleep(5 * time.Millisecond)
	}
}

func rmTree(path string) error {
	var dirs []string
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	slices.Reverse(dirs)
	for _, d := range dirs {
		if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
			return err
		}
	}
	return nil
}

// recordedCgroup is the cgroup a machine's state directory names, or "".
func recordedCgroup(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, cgroupFile))
	if err != nil || !strings.HasPrefix(string(b), "/") {
		return ""
	}
	return filepath.Clean(string(b))
}

// populated reports whether processes live in the cgroup tree at path.
// A cgroup nobody recorded may belong to another run's live machine:
// cleanup removes it only when empty (processes of a crashed runner die
// with it, so its cgroup is empty).
func populated(path string) bool {
	b, err := os.ReadFile(filepath.Join(path, "cgroup.events"))
	if errors.Is(err, fs.ErrNotExist) { // a v1 cgroup (limits.go)
		b, err = os.ReadFile(filepath.Join(path, "cgroup.procs"))
		return err != nil || len(strings.TrimSpace(string(b))) != 0
	}
	return err != nil || strings.Contains(string(b), "populated 1")
}

// leftoverCgroups lists the machine cgroups whose names start with
// prefix, on cgroup2 and the v1 hierarchies limits use.
func leftoverCgroups(prefix string) []string {
	var out []string
	for _, root := range append([]string{cgroup2Root()}, v1Roots()...) {
		if root == "" {
			continue
		}
		ents, _ := os.ReadDir(root)
		for _, e := range ents {
			if e.IsDir() && strings.HasPrefix(e.Name(), prefix) {
				out = append(out, filepath.Join(root, e.Name()))
			}
		}
	}
	return out
}
