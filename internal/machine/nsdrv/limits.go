package nsdrv

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/haven-dr/haven/internal/machine"
)

// A machine's Spec.MemoryMB and Spec.CPUs are limits of its cgroup, so one
// machine cannot starve the others on a host: memory.max (no swap) and a
// CPU quota of that many CPUs. They go on the cgroup2 hierarchy when it
// has the memory and cpu controllers. On a hybrid host whose memory and
// cpu controllers are bound to v1 hierarchies (cgroup2 then has none, and
// they cannot move while in use), the machine gets a cgroup of the same
// name on each of those, which its first process joins before the disk's
// init runs; everything it starts inherits them.

const cpuPeriodUS = 100000

// v1File in a machine's state directory lists its v1 cgroups, one a line,
// for cleanup after a crash.
const v1File = "cgroup.v1"

// limits is where a machine's limits live.
type limits struct {
	v2    string            // the machine's cgroup2 directory, or ""
	v1    map[string]string // controller -> the machine's v1 cgroup
	memMB int
}

// applyLimits puts spec's limits on m before its init runs.
func applyLimits(spec machine.Spec, m *instance) (*limits, error) {
	if spec.MemoryMB <= 0 && spec.CPUs <= 0 {
		return nil, nil
	}
	l := &limits{memMB: spec.MemoryMB}
	if root := cgroup2Root(); m.cgroup != "" && hasControllers(root, "memory", "cpu") {
		l.v2 = m.cgroup
		return l, l.setV2(spec)
	}
	l.v1 = map[string]string{}
	name := CgroupName(spec.Name)
	if m.cgroup != "" {
		name = filepath.Base(m.cgroup)
	}
	var want []string
	if spec.MemoryMB > 0 {
		want = append(want, "memory")
	}
	if spec.CPUs > 0 {
		want = append(want, "cpu")
	}
	for _, ctrl := range want {
		root := v1Root(ctrl)
		if root == "" {
			return l, fmt.Errorf("ns: %s: the host has no cgroup %s controller for the machine's limit", spec.Name, ctrl)
		}
		dir := filepath.Join(root, name)
		if err := appendLine(filepath.Join(m.dir, v1File), dir); err != nil {
			return l, err
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			return l, fmt.Errorf("cgroup: %w", err)
		}
		l.v1[ctrl] = dir
	}
	if err := l.setV1(spec); err != nil {
		return l, err
	}
	for _, dir := range l.v1 {
		if err := write(dir, "cgroup.procs", strconv.Itoa(m.pid)); err != nil {
			return l, err
		}
	}
	return l, nil
}

func (l *limits) setV2(spec machine.Spec) error {
	// The parent hands the controllers down (the root may have processes
	// and still do so; systemd hosts have them on already).
	if err := write(filepath.Dir(l.v2), "cgroup.subtree_control", "+memory +cpu"); err != nil {
		return err
	}
	if spec.MemoryMB > 0 {
		if err := write(l.v2, "memory.max", strconv.Itoa(spec.MemoryMB<<20)); err != nil {
			return err
		}
		if err := write(l.v2, "memory.swap.max", "0"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if spec.CPUs > 0 {
		return write(l.v2, "cpu.max", fmt.Sprintf("%d %d", spec.CPUs*cpuPeriodUS, cpuPeriodUS))
	}
	return nil
}

func (l *limits) setV1(spec machine.Spec) error {
	if dir := l.v1["memory"]; dir != "" {
		mem := strconv.Itoa(spec.MemoryMB << 20)
		if err := write(dir, "memory.limit_in_bytes", mem); err != nil {
			return err
		}
		// With swap accounting, memory and swap together: no swap.
		if err := write(dir, "memory.memsw.limit_in_bytes", mem); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if dir := l.v1["cpu"]; dir != "" {
		if err := write(dir, "cpu.cfs_period_us", strconv.Itoa(cpuPeriodUS)); err != nil {
			return err
		}
		return write(dir, "cpu.cfs_quota_us", strconv.Itoa(spec.CPUs*cpuPeriodUS))
	}
	return nil
}

// memory reads what the memory limit did.
func (l *limits) memory() (machine.MemoryStatus, error) {
	st := machine.MemoryStatus{LimitMB: l.memMB}
	if l.memMB <= 0 {
		return st, nil
	}
	st.Source = machine.MemoryCgroup
	if l.v2 != "" {
		st.UsageMB = usageMB(filepath.Join(l.v2, "memory.current"))
		ev, err := keyed(filepath.Join(l.v2, "memory.events"))
		st.AtLimit, st.OOMKills = ev["max"], ev["oom_kill"]
		return st, err
	}
	dir := l.v1["memory"]
	st.UsageMB = usageMB(filepath.Join(dir, "memory.usage_in_bytes"))
	// With swap accounting the memory+swap limit (the same) is met first
	// and counts there.
	for _, f := range []string{"memory.failcnt", "memory.memsw.failcnt"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if errors.Is(err, fs.ErrNotExist) && f != "memory.failcnt" {
			continue
		}
		if err != nil {
			return st, err
		}
		n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		st.AtLimit = max(st.AtLimit, n)
	}
	if st.AtLimit == 0 && usedAll(dir, l.memMB) {
		st.AtLimit = 1 // kernels that no longer count v1 failures: at least once
	}
	ev, err := keyed(filepath.Join(dir, "memory.oom_control"))
	st.OOMKills = ev["oom_kill"]
	return st, err
}

// usageMB reads a cgroup's byte count in MiB (0 when unreadable: usage
// is for a person, the counts are what alerts go by).
func usageMB(path string) int {
	b, _ := os.ReadFile(path)
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return int(n >> 20)
}

// ReadMemory is Memory of the machine name whose state is in stateDir
// (the driver's StateDir), read from the cgroups its state directory
// records: a host that started the machine in another process (`haven
// machine run`) asks this way. A machine not running there is
// machine.ErrNotRunning; one without a memory limit reports a zero
// status.
func ReadMemory(stateDir, name string) (machine.MemoryStatus, error) {
	dir := filepath.Join(stateDir, name)
	if _, err := os.Stat(filepath.Join(dir, machine.OwnerFile)); err != nil {
		return machine.MemoryStatus{}, fmt.Errorf("%w: %s", machine.ErrNotRunning, name)
	}
	l := &limits{}
	for _, cg := range recordedV1(dir) {
		if root := v1Root("memory"); root != "" && filepath.Dir(cg) == root {
			l.v1 = map[string]string{"memory": cg}
			l.memMB = limitMB(filepath.Join(cg, "memory.limit_in_bytes"))
		}
	}
	if cg := recordedCgroup(dir); l.v1 == nil && cg != "" {
		l.v2, l.memMB = cg, limitMB(filepath.Join(cg, "memory.max"))
	}
	return l.memory()
}

// limitMB reads a memory limit in MiB; "max" (none) or a limit no machine
// was given (v1's unlimited is a huge number) is 0.
func limitMB(path string) int {
	b, err := os.ReadFile(path)
	n, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || perr != nil || n >= 1<<50 {
		return 0
	}
	return int(n >> 20)
}

// usedAll reports whether a v1 memory cgroup's peak reached its limit.
func usedAll(dir string, memMB int) bool {
	b, err := os.ReadFile(filepath.Join(dir, "memory.max_usage_in_bytes"))
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return err == nil && n >= uint64(memMB)<<20
}

// remove removes the machine's v1 cgroups (its cgroup2 one is the
// instance's to remove).
func (l *limits) remove(deadline time.Time) error {
	if l == nil {
		return nil
	}
	var errs []error
	for _, dir := range l.v1 {
		errs = append(errs, removeCgroup(dir, deadline))
	}
	return errors.Join(errs...)
}

// Memory reports what the machine's memory limit did; a machine without
// one reports a zero status.
func (m *instance) Memory() (machine.MemoryStatus, error) {
	m.memMu.Lock()
	defer m.memMu.Unlock()
	if m.limits == nil {
		return machine.MemoryStatus{}, nil
	}
	if m.lastMem != nil { // the cgroups are gone: what they said last
		return *m.lastMem, nil
	}
	return m.limits.memory()
}

// keepMemory records the last memory status before the cgroups go.
func (m *instance) keepMemory() {
	m.memMu.Lock()
	defer m.memMu.Unlock()
	if m.limits != nil && m.lastMem == nil {
		if st, err := m.limits.memory(); err == nil {
			m.lastMem = &st
		}
	}
}

func hasControllers(root string, want ...string) bool {
	b, err := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
	if err != nil {
		return false
	}
	have := strings.Fields(string(b))
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// v1Root returns where the v1 hierarchy with controller is mounted, or "".
func v1Root(controller string) string {
	return cgroupMount(func(fstype string, opts []string) bool {
		return fstype == "cgroup" && slices.Contains(opts, controller)
	})
}

// v1Roots are the v1 hierarchies machines get limits on.
func v1Roots() []string {
	var out []string
	for _, c := range []string{"memory", "cpu"} {
		if r := v1Root(c); r != "" {
			out = append(out, r)
		}
	}
	return out
}

// recordedV1 lists the v1 cgroups a machine's state directory names.
func recordedV1(dir string) []string {
	b, _ := os.ReadFile(filepath.Join(dir, v1File))
	var out []string
	for _, p := range strings.Fields(string(b)) {
		if strings.HasPrefix(p, "/") {
			out = append(out, filepath.Clean(p))
		}
	}
	return out
}

func write(dir, file, value string) error {
	if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0); err != nil {
		return fmt.Errorf("cgroup: %w", err)
	}
	return nil
}

func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(f, line)
	return errors.Join(err, f.Close())
}

// keyed parses a cgroup file of "key value" lines.
func keyed(path string) (map[string]uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok {
			out[k], _ = strconv.ParseUint(v, 10, 64)
		}
	}
	return out, nil
}
