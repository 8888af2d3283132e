package alert

import (
	"fmt"
	"sync"
	"time"
)

// The kernel's memory counts of a recovered machine (its cgroup's OOM
// kills and times at its limit) only grow while it runs, so "over its
// limit now" is a count that grew lately: a MemoryWatch remembers what
// it last saw of each machine and when a count last grew, and the
// memory rule fires while that is less than Quiet ago. A machine first
// seen with counts above zero counts as grown then (a restarted server
// cannot tell when they did, and a machine starved before it looked must
// not go unreported).

// DefaultMemoryQuiet is how long a machine's memory counts must stay
// still before its alert resolves.
const DefaultMemoryQuiet = 5 * time.Minute

// MemoryCounts is what a recovered machine's host reports of its memory.
type MemoryCounts struct {
	LimitMB  int
	UsageMB  int
	AtLimit  uint64
	OOMKills uint64
}

// MachineMemory is a recovered machine's memory as the rule sees it.
type MachineMemory struct {
	Machine, Plan, Site, Host string
	MemoryCounts
	// LastOOM and LastAtLimit: when the server last saw that count grow
	// (zero: never). Since: when the current run of growth began.
	LastOOM, LastAtLimit, Since time.Time
	// New are the kills and times at the limit since Since.
	NewOOM, NewAtLimit uint64
	// Unknown: the host did not answer this time; the machine keeps what
	// was seen of it before (its counts did not start again).
	Unknown bool
}

// MemoryWatch is the memory counts each running recovered machine had
// when last observed. Safe for concurrent use.
type MemoryWatch struct {
	Quiet time.Duration
	mu    sync.Mutex
	seen  map[string]*memorySeen
}

type memorySeen struct {
	MemoryCounts
	lastOOM, lastAt, since time.Time
	baseOOM, baseAt        uint64 // the counts when Since began
}

// Observe records the machines running now (key: site/machine) and
// returns them with when their counts grew. Machines not given are
// forgotten: stopped, their alert resolves.
func (w *MemoryWatch) Observe(now time.Time, ms []MachineMemory) []MachineMemory {
	w.mu.Lock()
	defer w.mu.Unlock()
	quiet := w.quiet()
	next := map[string]*memorySeen{}
	out := make([]MachineMemory, 0, len(ms))
	for _, m := range ms {
		key := m.Site + "/" + m.Machine
		s := w.seen[key]
		if m.Unknown {
			if s != nil {
				next[key] = s
				m.MemoryCounts = s.MemoryCounts
				out = append(out, s.fill(m))
			}
			continue
		}
		if s == nil || m.OOMKills < s.OOMKills || m.AtLimit < s.AtLimit {
			s = &memorySeen{} // new, or restarted: its counts began again
		}
		busy := s.busy(now, quiet)
		if m.OOMKills > s.OOMKills {
			s.lastOOM = now
		}
		if m.AtLimit > s.AtLimit {
			s.lastAt = now
		}
		if !busy && s.busy(now, quiet) { // a new run of growth
			s.since, s.baseOOM, s.baseAt = now, s.OOMKills, s.AtLimit
		}
		s.MemoryCounts = m.MemoryCounts
		next[key] = s
		out = append(out, s.fill(m))
	}
	w.seen = next
	return out
}

func (s *memorySeen) fill(m MachineMemory) MachineMemory {
	m.LastOOM, m.LastAtLimit, m.Since = s.lastOOM, s.lastAt, s.since
	m.NewOOM, m.NewAtLimit = m.OOMKills-s.baseOOM, m.AtLimit-s.baseAt
	return m
}

func (w *MemoryWatch) quiet() time.Duration {
	if w.Quiet <= 0 {
		return DefaultMemoryQuiet
	}
	return w.Quiet
}

// busy: a count grew less than quiet ago.
func (s *memorySeen) busy(now time.Time, quiet time.Duration) bool {
	return recent(now, s.lastOOM, quiet) || recent(now, s.lastAt, quiet)
}

func recent(now, t time.Time, quiet time.Duration) bool { return !t.IsZero() && now.Sub(t) < quiet }

// memoryRule: a recovered machine whose processes the kernel kills for
// want of memory, or that keeps hitting its limit, is starved: say so
// while it lasts (quiet is MemoryWatch's).
func memoryRule(now time.Time, quiet time.Duration, m MachineMemory, add addFunc) {
	if quiet <= 0 {
		quiet = DefaultMemoryQuiet
	}
	oom, at := recent(now, m.LastOOM, quiet), recent(now, m.LastAtLimit, quiet)
	if !oom && !at {
		return
	}
	where := fmt.Sprintf("machine %s (plan %s, site %s, host %s)", m.Machine, m.Plan, m.Site, m.Host)
	what := fmt.Sprintf("at its memory limit of %d MiB (using %d MiB; reached it %d times since %s)",
		m.LimitMB, m.UsageMB, m.NewAtLimit, m.Since.Format(time.RFC3339))
	if oom {
		what = fmt.Sprintf("over its memory limit of %d MiB: %d processes killed for want of memory since %s (%d in all; using %d MiB)",
			m.LimitMB, m.NewOOM, m.Since.Format(time.RFC3339), m.OOMKills, m.UsageMB)
	}
	add("memory/"+m.Site+"/"+m.Machine, Warning, m.Since, "%s %s: raise its memory_mb, or find what eats it", where, what)
}
