package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/machinetest"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
)

// toolsLabel labels the disk that carries the ns driver's tests into the guest.
const toolsLabel = "hvtools"

// TestRealVMCgroup2 runs the ns driver's limit tests on cgroup v2, live.
// The test machine's memory controller is bound to cgroup v1, so its own
// runs of TestMemoryLimit take the v1 path; Debian 12 boots unified
// cgroup v2. So the Debian image boots under QEMU with a second disk
// holding nsdrv's test binary (static) and a machine image, and in the
// guest (checked to be on cgroup2 with the memory and cpu controllers)
// TestMemoryLimit runs with HAVEN_TEST_CGROUP=v2: an ns machine of 64 MiB
// and one CPU whose cgroup2 memory.max, memory.swap.max and cpu.max hold
// exactly those limits; a process in it asking for 256 MiB is killed by
// the kernel; Memory() and ReadMemory report the limit, usage, the
// at-limit count of memory.events and exactly one OOM kill; its cgroup is
// gone after Stop. TestCleanupAfterCrash then checks a crashed run's
// cgroup is found and removed on v2, and host's TestWaitHealthyNamesMemory
// that host.Local reports the kill (MachineMemory) and names it when a
// health check fails. Nothing of Haven's is left in the guest's cgroup
// tree afterwards.
func TestRealVMCgroup2(t *testing.T) {
	l := newRVLab(t)
	tools := toolsDisk(t)
	spec := l.spec("cg2", []machine.Disk{{Name: "root", Path: l.disk()}, {Name: "tools", Path: tools, Format: "raw"}},
		l.nic("eth0", "rec", 30))
	l.boot(l.qemu, spec)

	if fs := strings.TrimSpace(l.guestExec(spec, "/usr/bin/stat", "-f", "-c", "%T", "/sys/fs/cgroup")); fs != "cgroup2fs" {
		t.Fatalf("the guest's /sys/fs/cgroup is %q, want cgroup2fs (unified)", fs)
	}
	ctrls := strings.Fields(l.guestExec(spec, "/usr/bin/cat", "/sys/fs/cgroup/cgroup.controllers"))
	for _, c := range []string{"memory", "cpu"} {
		if !slices.Contains(ctrls, c) {
			t.Fatalf("the guest's cgroup2 controllers %v lack %s", ctrls, c)
		}
	}
	mnt := "/run/" + toolsLabel
	l.guestExec(spec, "/usr/bin/mkdir", "-p", mnt)
	l.guestExec(spec, "/usr/bin/mount", "-o", "ro", "/dev/disk/by-label/"+toolsLabel, mnt)

	// Under TCG the ns machines boot in seconds; the bound is a hang guard.
	out := l.guestExecWithin(10*time.Minute, spec, "/usr/bin/env", "CI=true",
		machinetest.ImageEnv+"="+mnt+"/machine.img", "HAVEN_TEST_CGROUP=v2",
		mnt+"/nsdrv.test", "-test.run", "^(TestMemoryLimit|TestCleanupAfterCrash)$", "-test.v", "-test.count=1")
	// What a host reports up (host.Local.MachineMemory) and its health
	// check naming the OOM kill, on the same hierarchy.
	out += l.guestExecWithin(10*time.Minute, spec, "/usr/bin/env", "CI=true",
		machinetest.ImageEnv+"="+mnt+"/machine.img",
		mnt+"/host.test", "-test.run", "^TestWaitHealthyNamesMemory$", "-test.v", "-test.count=1")
	t.Logf("in the guest:\n%s", out)
	for _, want := range []string{"limits on cgroup v2", "--- PASS: TestMemoryLimit", "--- PASS: TestCleanupAfterCrash",
		"--- PASS: TestWaitHealthyNamesMemory"} {
		if !strings.Contains(out, want) {
			t.Errorf("the guest's run lacks %q", want)
		}
	}
	if strings.Contains(out, "--- SKIP") {
		t.Errorf("a test skipped in the guest")
	}
	for _, e := range strings.Fields(l.guestExec(spec, "/usr/bin/ls", "/sys/fs/cgroup")) {
		if strings.HasPrefix(e, vnet.Prefix+"-") {
			t.Errorf("cgroup /sys/fs/cgroup/%s left in the guest", e)
		}
	}
}

// toolsDisk is an ext4 image labelled toolsLabel holding the test
// binaries of nsdrv and host, built static (the guest has no Go), and a pristine machine image
// the tests copy for each machine (machinetest.ImageEnv).
func toolsDisk(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tree")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	for name, pkg := range map[string]string{"nsdrv.test": "../internal/machine/nsdrv", "host.test": "../internal/host"} {
		build := exec.Command(testenv.LookPath(t, "go"), "test", "-c", "-trimpath", "-o", filepath.Join(dir, name), pkg)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
	t.Logf("test binaries built in %v", time.Since(t0).Round(time.Millisecond))
	img, err := os.ReadFile(machinetest.Image(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "machine.img"), img, 0o644); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(t.TempDir(), "hvtools.img")
	mkfs := testenv.LookPath(t, "mkfs.ext4")
	if out, err := exec.Command(mkfs, "-q", "-F", "-L", toolsLabel, "-E", "root_owner=0:0", "-d", dir, disk, "192M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	return disk
}
