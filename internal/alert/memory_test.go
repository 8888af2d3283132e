package alert

import (
	"strings"
	"testing"
	"time"
)

// memoryStep is one look at the machines: the counts the host reports
// and the memory alerts that must hold after it.
type memoryStep struct {
	at   time.Duration
	ms   []MachineMemory
	want []string // alert IDs
	// wantSince: for the first wanted alert, its Since (offset from t0).
	wantSince time.Duration
}

func mem(machine string, oom, atLimit uint64) MachineMemory {
	return MachineMemory{Machine: machine, Plan: "shop", Site: "rec", Host: "a",
		MemoryCounts: MemoryCounts{LimitMB: 64, UsageMB: 63, OOMKills: oom, AtLimit: atLimit}}
}

// TestMemoryRule: the memory alert fires when a machine's OOM kills or
// times at its limit grow, stays while they keep growing, resolves once
// they have been still for Quiet, and resolves at once when the machine
// stops; a host that does not answer changes nothing; a restarted
// machine's counts begin again.
func TestMemoryRule(t *testing.T) {
	const q = time.Minute
	unknown := mem("db", 0, 0)
	unknown.Unknown = true
	cases := map[string][]memoryStep{
		"never at the limit": {
			{at: 0, ms: []MachineMemory{mem("db", 0, 0)}},
			{at: 2 * q, ms: []MachineMemory{mem("db", 0, 0)}},
		},
		"oom kills, then quiet": {
			{at: 0, ms: []MachineMemory{mem("db", 0, 0)}},
			{at: 10 * time.Second, ms: []MachineMemory{mem("db", 2, 5)}, want: []string{"memory/rec/db"}, wantSince: 10 * time.Second},
			{at: 50 * time.Second, ms: []MachineMemory{mem("db", 3, 5)}, want: []string{"memory/rec/db"}, wantSince: 10 * time.Second},
			{at: 50*time.Second + q - time.Second, ms: []MachineMemory{mem("db", 3, 5)}, want: []string{"memory/rec/db"}, wantSince: 10 * time.Second},
			{at: 50*time.Second + q, ms: []MachineMemory{mem("db", 3, 5)}},
			// A new run of kills is a new episode, from its own start.
			{at: 5 * q, ms: []MachineMemory{mem("db", 4, 5)}, want: []string{"memory/rec/db"}, wantSince: 5 * q},
		},
		"stuck at its limit without kills": {
			{at: 0, ms: []MachineMemory{mem("db", 0, 1)}, want: []string{"memory/rec/db"}},
			{at: q / 2, ms: []MachineMemory{mem("db", 0, 9)}, want: []string{"memory/rec/db"}},
			{at: 2 * q, ms: []MachineMemory{mem("db", 0, 9)}},
		},
		"first seen with kills counts as now": {
			{at: 0, ms: []MachineMemory{mem("db", 1, 1)}, want: []string{"memory/rec/db"}},
		},
		"stopped machine resolves at once": {
			{at: 0, ms: []MachineMemory{mem("db", 1, 1), mem("web", 0, 0)}, want: []string{"memory/rec/db"}},
			{at: time.Second, ms: []MachineMemory{mem("web", 0, 0)}},
		},
		"host silent keeps what was seen": {
			{at: 0, ms: []MachineMemory{mem("db", 0, 0)}},
			{at: time.Second, ms: []MachineMemory{mem("db", 1, 1)}, want: []string{"memory/rec/db"}, wantSince: time.Second},
			{at: 2 * time.Second, ms: []MachineMemory{unknown}, want: []string{"memory/rec/db"}, wantSince: time.Second},
			// The same counts once it answers again: no new growth.
			{at: q + 2*time.Second, ms: []MachineMemory{mem("db", 1, 1)}},
		},
		"restarted machine": {
			{at: 0, ms: []MachineMemory{mem("db", 5, 5)}, want: []string{"memory/rec/db"}},
			{at: 2 * q, ms: []MachineMemory{mem("db", 5, 5)}},
			{at: 3 * q, ms: []MachineMemory{mem("db", 1, 1)}, want: []string{"memory/rec/db"}, wantSince: 3 * q},
		},
	}
	for name, steps := range cases {
		t.Run(name, func(t *testing.T) {
			w := &MemoryWatch{Quiet: q}
			for i, s := range steps {
				now := t0.Add(s.at)
				as := Evaluate(Inputs{Now: now, MemoryQuiet: q, Memory: w.Observe(now, s.ms)})
				if got := ids(as); strings.Join(got, ",") != strings.Join(s.want, ",") {
					t.Fatalf("step %d (%s): alerts %v, want %v", i, s.at, got, s.want)
				}
				if len(s.want) > 0 && !as[0].Since.Equal(t0.Add(s.wantSince)) {
					t.Fatalf("step %d: since %s, want %s", i, as[0].Since, t0.Add(s.wantSince))
				}
				for _, a := range as {
					if a.Severity != Warning {
						t.Errorf("step %d: severity %s, want warning", i, a.Severity)
					}
				}
			}
		})
	}
}

// TestMemoryRuleSummary: the summary says which machine, where, what
// happened, and its limit.
func TestMemoryRuleSummary(t *testing.T) {
	w := &MemoryWatch{}
	w.Observe(t0, []MachineMemory{mem("db", 0, 0)})
	m := mem("db", 3, 7)
	m.Site = "test"
	as := Evaluate(Inputs{Now: t0.Add(time.Second), Memory: w.Observe(t0.Add(time.Second), []MachineMemory{m})})
	a := find(t, as, "memory/test/db")
	for _, want := range []string{"machine db", "plan shop", "site test", "host a", "64 MiB", "3 processes killed", "memory_mb"} {
		if !strings.Contains(a.Summary, want) {
			t.Errorf("summary %q lacks %q", a.Summary, want)
		}
	}
	atLimit := Evaluate(Inputs{Now: t0.Add(time.Second), Memory: []MachineMemory{{Machine: "web", Site: "rec",
		MemoryCounts: MemoryCounts{LimitMB: 32, AtLimit: 4}, LastAtLimit: t0, Since: t0, NewAtLimit: 4}}})
	if s := find(t, atLimit, "memory/rec/web").Summary; !strings.Contains(s, "at its memory limit of 32 MiB") || !strings.Contains(s, "4 times") {
		t.Errorf("at-limit summary %q", s)
	}
}
