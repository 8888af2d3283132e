package nsdrv

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/haven-dr/haven/internal/machine"
)

// TestMemoryLimit: a machine with 64 MiB and one CPU gets exactly those
// limits on its cgroups; a process in it that wants 256 MiB is killed by
// the kernel (not the machine, not the host), the machine reports it
// (Memory().Err is ErrOverMemory with the kill counted) and still serves;
// its limit cgroups are gone after Stop, and the last status is kept.
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
	out := e.MustDo(e.Edge, "POST", m, "/eat?mb=256", "")
	if !strings.Contains(out, "killed by "+syscall.SIGKILL.String()) {
		t.Fatalf("eater: %q, want it killed", out)
	}
	st, err := in.Memory()
	if err != nil || st.OOMKills == 0 || st.AtLimit == 0 || st.LimitMB != 64 {
		t.Fatalf("after: %+v %v", st, err)
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

// limitFiles are the files holding the memory limit and the CPU quota.
func limitFiles(l *limits) (mem, cpu string) {
	if l.v2 != "" {
		return filepath.Join(l.v2, "memory.max"), filepath.Join(l.v2, "cpu.max")
	}
	return filepath.Join(l.v1["memory"], "memory.limit_in_bytes"), filepath.Join(l.v1["cpu"], "cpu.cfs_quota_us")
}

// TestReadMemoryV2Files: the cgroup2 files ReadMemory reads, as the
// kernel writes them. This host's memory controller is bound to cgroup
// v1 (TestMemoryLimit runs there), so the v2 path is checked on files
// laid out like a v2 cgroup's, not on a live one.
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
