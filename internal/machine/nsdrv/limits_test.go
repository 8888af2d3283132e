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
