package nsdrv

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/machinetest"
)

// TestMemoryLimit: a machine with 64 MiB and one CPU gets exactly those
// limits on its cgroups; a process in it that wants 256 MiB is killed by
// the kernel (not the machine, not the host), the machine reports it
// (Memory().Err is ErrOverMemory with the kill counted) and still serves;
// its limit cgroups are gone after Stop, and the last status is kept.
// This host takes the v1 path; e2e's TestRealVMCgroup2 runs this test in
// a VM on cgroup v2.
func TestMemoryLimit(t *testing.T) {
	e := newEnv(t)
	spec := e.Spec("lim", "app", "10.91.0.70/24")
	spec.MemoryMB, spec.CPUs = 64, 1
	m := e.Start(spec)
	e.WaitHealthy(m, e.Edge)
	in := m.(*instance)
	if in.limits == nil {
		t.Fatal("no limits applied")
	}
	checkHierarchy(t, in)
	mem, cpu := limitFiles(in.limits)
	for file, want := range map[string]int{mem: 64 << 20, cpu: 100000} {
		b, err := os.ReadFile(file)
		if got, _ := strconv.Atoi(strings.Fields(string(b) + " x")[0]); err != nil || got != want {
			t.Errorf("%s = %q (%v), want %d", file, b, err, want)
		}
	}
	if st, err := in.Memory(); err != nil || st.Err() != nil || st.OOMKills != 0 {
		t.Fatalf("before: %+v %v", st, err)
	}
	addr, _ := spec.Addr()
	out := machinetest.Eat(t, e.Edge, addr, 256)
	if !strings.Contains(out, "killed by "+syscall.SIGKILL.String()) {
		t.Fatalf("eater: %q, want it killed", out)
	}
	before := v2Events(t, in)
	st, err := in.Memory()
	if err != nil || st.OOMKills != 1 || st.AtLimit == 0 || st.LimitMB != 64 {
		t.Fatalf("after: %+v %v, want one process killed at 64 MiB", st, err)
	}
	t.Logf("after the eater: %+v", st)
	if after := v2Events(t, in); after != nil &&
		(st.AtLimit < before["max"] || st.AtLimit > after["max"] || st.OOMKills != after["oom_kill"]) {
		t.Fatalf("Memory() = %+v; memory.events said %v, then %v", st, before, after)
	}
	if !errors.Is(st.Err(), machine.ErrOverMemory) {
		t.Fatalf("Err %v", st.Err())
	}
	// What another process (a host whose machines run in `haven machine
	// run`) reads from the machine's state directory is the same.
	got, err := ReadMemory(filepath.Dir(in.dir), spec.Name)
	if err != nil || got.Source != machine.MemoryCgroup || got.LimitMB != 64 || got.OOMKills != st.OOMKills ||
		got.AtLimit < st.AtLimit || got.UsageMB <= 0 || got.UsageMB > 64 {
		t.Fatalf("ReadMemory = %+v, %v; the instance says %+v", got, err, st)
	}
	if _, err := ReadMemory(filepath.Dir(in.dir), "nosuch"); !errors.Is(err, machine.ErrNotRunning) {
		t.Fatalf("ReadMemory of a machine not there: %v, want not running", err)
	}
	e.WaitHealthy(m, e.Edge) // the machine itself lives on
	dirs := []string{filepath.Dir(mem), filepath.Dir(cpu)}
	if err := m.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("cgroup %s left after stop: %v", d, err)
		}
	}
	if after, err := in.Memory(); err != nil || after.OOMKills != st.OOMKills {
		t.Errorf("after stop: %+v %v, want the last status %+v", after, err, st)
	}
}

// cgroupEnv, set to v1 or v2, is the hierarchy TestMemoryLimit must find
// the limits on. e2e runs this test inside a Debian VM booted on cgroup v2
// (TestRealVMCgroup2) and sets it: a silent fall back to v1 files, or to
// none, fails there.
const cgroupEnv = "HAVEN_TEST_CGROUP"

// checkHierarchy checks the limits went on the hierarchy cgroupEnv names,
// and on cgroup2 that the machine's own cgroup, right below the root,
// holds them and its init.
func checkHierarchy(t *testing.T, in *instance) {
	t.Helper()
	got := "v1"
	if in.limits.v2 != "" {
		got = "v2"
	}
	if want := os.Getenv(cgroupEnv); want != "" && got != want {
		t.Fatalf("limits on cgroup %s (%+v), want %s", got, in.limits, want)
	}
	t.Logf("limits on cgroup %s", got)
	if got == "v1" {
		return
	}
	if in.limits.v2 != in.cgroup || len(in.limits.v1) != 0 || filepath.Dir(in.cgroup) != cgroup2Root() {
		t.Fatalf("limits %+v, machine cgroup %s: want that cgroup below %s only", in.limits, in.cgroup, cgroup2Root())
	}
	files := map[string]string{"memory.max": "67108864", "cpu.max": "100000 100000", "memory.swap.max": "0"}
	for file, want := range files {
		b, err := os.ReadFile(filepath.Join(in.cgroup, file))
		if file == "memory.swap.max" && errors.Is(err, fs.ErrNotExist) {
			continue // a kernel without swap accounting
		}
		if got := strings.TrimSpace(string(b)); err != nil || got != want {
			t.Errorf("%s = %q (%v), want %q", file, got, err, want)
		}
	}
	b, err := os.ReadFile(filepath.Join(in.cgroup, "cgroup.procs"))
	if err != nil || !slices.Contains(strings.Fields(string(b)), strconv.Itoa(in.pid)) {
		t.Errorf("cgroup.procs %q (%v) lacks the machine's init %d", b, err, in.pid)
	}
}

// v2Events reads a cgroup2 machine's memory.events (nil on v1), parsed
// apart from the code under test.
func v2Events(t *testing.T, in *instance) map[string]uint64 {
	t.Helper()
	if in.limits.v2 == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(in.limits.v2, "memory.events"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		n, err := strconv.ParseUint(f[len(f)-1], 10, 64)
		if len(f) != 2 || err != nil {
			t.Fatalf("memory.events line %q", line)
		}
		out[f[0]] = n
	}
	return out
}

// limitFiles are the files holding the memory limit and the CPU quota.
func limitFiles(l *limits) (mem, cpu string) {
	if l.v2 != "" {
		return filepath.Join(l.v2, "memory.max"), filepath.Join(l.v2, "cpu.max")
	}
	return filepath.Join(l.v1["memory"], "memory.limit_in_bytes"), filepath.Join(l.v1["cpu"], "cpu.cfs_quota_us")
}

// TestReadMemoryV2Files: the cgroup2 files ReadMemory reads, as the
// kernel writes them, laid out in a plain directory: this host's memory
// controller is bound to cgroup v1, and the live v2 run needs a VM
// (e2e TestRealVMCgroup2).
func TestReadMemoryV2Files(t *testing.T) {
	state, cg := t.TempDir(), t.TempDir()
	dir := filepath.Join(state, "db")
	files := map[string]string{
		filepath.Join(dir, machine.OwnerFile): "1 2\n",
		filepath.Join(dir, cgroupFile):        cg,
		filepath.Join(cg, "memory.max"):       "67108864\n",
		filepath.Join(cg, "memory.current"):   "66060288\n",
		filepath.Join(cg, "memory.events"):    "low 0\nhigh 0\nmax 17\noom 2\noom_kill 2\noom_group_kill 0\n",
	}
	for p, v := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadMemory(state, "db")
	want := machine.MemoryStatus{Source: machine.MemoryCgroup, LimitMB: 64, UsageMB: 63, AtLimit: 17, OOMKills: 2}
	if err != nil || got != want {
		t.Fatalf("ReadMemory = %+v, %v; want %+v", got, err, want)
	}
	os.WriteFile(filepath.Join(cg, "memory.max"), []byte("max\n"), 0o644)
	if got, err := ReadMemory(state, "db"); err != nil || got != (machine.MemoryStatus{}) {
		t.Fatalf("without a limit: %+v, %v; want a zero status", got, err)
	}
}
