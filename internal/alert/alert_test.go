package alert

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/store"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) *time.Time { t := t0.Add(d); return &t }

func ids(as []Alert) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.ID)
	}
	return out
}

func find(t *testing.T, as []Alert, id string) Alert {
	t.Helper()
	i := slices.IndexFunc(as, func(a Alert) bool { return a.ID == id })
	if i < 0 {
		t.Fatalf("no alert %s in %v", id, ids(as))
	}
	return as[i]
}

// TestRules: each rule fires exactly on its condition, with the Since
// at which the condition began and a summary naming the object.
func TestRules(t *testing.T) {
	const day = 24 * time.Hour
	in := Inputs{Now: t0, AgentSilent: time.Minute, DrillMaxAge: 180 * day,
		Agents: []Agent{{Name: "never"}, {Name: "quiet", LastHeartbeat: at(-5 * time.Minute)},
			{Name: "fresh", LastHeartbeat: at(-10 * time.Second)}},
		Machines: []Machine{
			{Name: "nopoint"},
			{Name: "late", Point: at(-2 * time.Hour), RPOTarget: time.Hour},
			{Name: "ok", Point: at(-30 * time.Minute), RPOTarget: time.Hour},
			{Name: "notarget", Point: at(-30 * day)},
			{Name: "broken", Point: at(-time.Minute), RPOTarget: time.Hour, ReplicationError: "disk read: EIO"},
		},
		Plans: []Plan{
			{Name: "stale", LastPassedDrill: at(-200 * day), FirstSeen: t0.Add(-400 * day)},
			{Name: "drilled", LastPassedDrill: at(-10 * day), FirstSeen: t0.Add(-400 * day)},
			{Name: "neverold", FirstSeen: t0.Add(-181 * day)},
			{Name: "nevernew", FirstSeen: t0.Add(-179 * day)},
		},
		Jobs: []*store.Job{
			{ID: "j1", Type: "failover-test", Plan: "p", State: store.Failed, Error: "boom", Updated: t0.Add(-time.Minute)},
			{ID: "j2", Type: "failover-planned", Plan: "p", State: store.Waiting, Updated: t0.Add(-2 * time.Minute)},
			{ID: "j3", Type: "failover-test", Plan: "q", State: store.Running},
		},
		Vault: &VaultCheck{Time: t0.Add(-time.Hour), Problems: []string{"pack abc: missing", "pack def: missing"}},
	}
	got := Evaluate(in)
	want := []string{"agent-silent/never", "agent-silent/quiet", "rpo/nopoint", "rpo/late", "replication/broken",
		"drill/stale", "drill/neverold", "job-failed/j1", "job-waiting/j2", "vault-check"}
	if !slices.Equal(ids(got), want) {
		t.Fatalf("alerts %v, want %v", ids(got), want)
	}
	checks := []struct {
		id      string
		sev     Severity
		since   time.Time
		summary string
	}{
		{"agent-silent/never", Critical, t0, "agent never silent"},
		{"agent-silent/quiet", Critical, t0.Add(-4 * time.Minute), "agent quiet silent"},
		{"rpo/nopoint", Critical, t0, "machine nopoint: no recovery point yet (RPO unknown)"},
		{"rpo/late", Critical, t0.Add(-time.Hour), "machine late: RPO 7200s above target 3600s"},
		{"replication/broken", Critical, t0, "machine broken: replication failing: disk read: EIO"},
		{"drill/stale", Warning, t0.Add(-20 * day), "plan stale: no passed test failover for 200 days"},
		{"drill/neverold", Warning, t0.Add(-day), "plan neverold: no passed test failover for 181 days (never drilled"},
		{"job-failed/j1", Critical, t0.Add(-time.Minute), "job j1 (failover-test of p) failed: boom"},
		{"job-waiting/j2", Warning, t0.Add(-2 * time.Minute), "job j2 waits for approval"},
		{"vault-check", Critical, t0.Add(-time.Hour), "vault check found 2 problem(s); first: pack abc: missing"},
	}
	for _, c := range checks {
		a := find(t, got, c.id)
		if a.Severity != c.sev || !a.Since.Equal(c.since) || !strings.HasPrefix(a.Summary, c.summary) || a.Resolved != nil {
			t.Errorf("%s = %+v; want severity %s, since %v, summary %q...", c.id, a, c.sev, c.since, c.summary)
		}
	}

	// The same state a moment before each threshold: nothing of it.
	in.Agents = []Agent{{Name: "quiet", LastHeartbeat: at(-59 * time.Second)}}
	in.Machines = []Machine{{Name: "late", Point: at(-time.Hour), RPOTarget: time.Hour}}
	in.Plans = []Plan{{Name: "stale", LastPassedDrill: at(-179 * day)}}
	in.Jobs, in.Vault = nil, &VaultCheck{Time: t0}
	if got := Evaluate(in); len(got) != 0 {
		t.Errorf("below every threshold: %v, want none", ids(got))
	}
	in.DrillMaxAge = 0
	in.Plans = []Plan{{Name: "stale", LastPassedDrill: at(-1000 * day)}}
	if got := Evaluate(in); len(got) != 0 {
		t.Errorf("drill_max_age 0 turns the drill rule off; got %v", ids(got))
	}
	in.Vault = &VaultCheck{Time: t0, Err: "list index: connection refused"}
	if a := find(t, Evaluate(in), "vault-check"); a.Summary != "vault check failed: list index: connection refused" {
		t.Errorf("a check that cannot run: %q", a.Summary)
	}
}

// TestTrackerTransitions: an alert is delivered once when it fires and
// once when it resolves, whatever its summary does in between, and fires
// again if the condition returns.
func TestTrackerTransitions(t *testing.T) {
	tr := NewTracker()
	a := Alert{ID: "rpo/db", Severity: Critical, Summary: "RPO 10s", Since: t0}
	b := Alert{ID: "agent-silent/x", Severity: Critical, Summary: "silent", Since: t0}
	steps := []struct {
		now     time.Duration
		current []Alert
		want    []string // state:id
	}{
		{0, nil, nil},
		{10 * time.Second, []Alert{a}, []string{"firing:rpo/db"}},
		{20 * time.Second, []Alert{{ID: "rpo/db", Severity: Critical, Summary: "RPO 20s", Since: t0}}, nil},
		{30 * time.Second, []Alert{a, b}, []string{"firing:agent-silent/x"}},
		{40 * time.Second, []Alert{b}, []string{"resolved:rpo/db"}},
		{50 * time.Second, []Alert{b}, nil},
		{60 * time.Second, []Alert{a}, []string{"firing:rpo/db", "resolved:agent-silent/x"}},
		{70 * time.Second, nil, []string{"resolved:rpo/db"}},
		{80 * time.Second, nil, nil},
	}
	for _, s := range steps {
		now := t0.Add(s.now)
		var got []string
		for _, e := range tr.Observe(now, s.current) {
			got = append(got, e.State+":"+e.ID)
			if !e.Time.Equal(now) {
				t.Errorf("at %v: event %s has time %v", s.now, e.ID, e.Time)
			}
			if (e.State == Resolved) != (e.Resolved != nil) || (e.Resolved != nil && !e.Resolved.Equal(now)) {
				t.Errorf("at %v: %s %s resolved=%v", s.now, e.State, e.ID, e.Resolved)
			}
		}
		if !slices.Equal(got, s.want) {
			t.Errorf("at %v: transitions %v, want %v", s.now, got, s.want)
		}
		if len(tr.Active()) != len(s.current) {
			t.Errorf("at %v: %d active, want %d", s.now, len(tr.Active()), len(s.current))
		}
	}
}

func TestCatalogWriteRule(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if got := Evaluate(Inputs{Now: t0}); len(got) != 0 {
		t.Fatalf("no failing catalog write: %+v", got)
	}
	got := Evaluate(Inputs{Now: t0, Catalog: &CatalogWrite{Since: t0.Add(-time.Minute), Err: "read-only file system", Retry: time.Minute}})
	if len(got) != 1 || got[0].ID != "catalog-write" || got[0].Severity != Critical || !got[0].Since.Equal(t0.Add(-time.Minute)) ||
		!strings.Contains(got[0].Summary, "read-only file system") {
		t.Fatalf("alerts %+v", got)
	}
}

// TestCopyRules: a failing copy, one lagging past max_lag and one that
// found damage in the vault alert; a current one and one never run yet
// (no lag measured) do not.
func TestCopyRules(t *testing.T) {
	d := func(x time.Duration) *time.Duration { return &x }
	in := Inputs{Now: t0, Copies: []Copy{
		{Name: "ok", MaxLag: time.Hour, Lag: d(0)},
		{Name: "new", MaxLag: time.Hour},
		{Name: "behind", MaxLag: time.Hour, Lag: d(2 * time.Hour)},
		{Name: "down", MaxLag: time.Hour, Lag: d(time.Minute), Err: "connection refused", FailingSince: t0.Add(-time.Minute)},
		{Name: "damaged", MaxLag: time.Hour, Lag: d(0), Problems: []string{"data/3f/3f..: object corrupt"}},
	}}
	as := Evaluate(in)
	if got := ids(as); !slices.Equal(got, []string{"copy-lag/behind", "copy/down", "copy-source/damaged"}) {
		t.Fatalf("alerts %v", got)
	}
	if a := find(t, as, "copy/down"); !a.Since.Equal(t0.Add(-time.Minute)) || !strings.Contains(a.Summary, "connection refused") {
		t.Errorf("failing copy: %+v", a)
	}
	if a := find(t, as, "copy-lag/behind"); !strings.Contains(a.Summary, "lags 2h0m0s") || a.Severity != Critical {
		t.Errorf("lagging copy: %+v", a)
	}
	if a := find(t, as, "copy-source/damaged"); !strings.Contains(a.Summary, "object corrupt") {
		t.Errorf("damaged source: %+v", a)
	}
}

func TestLostHostRule(t *testing.T) {
	as := Evaluate(Inputs{Now: t0, LostHosts: []LostHost{{Name: "b", Err: "connection refused", Plans: []string{"shop"}}}})
	a := find(t, as, "host-lost/b")
	if a.Severity != Critical || !strings.Contains(a.Summary, "connection refused") ||
		!strings.Contains(a.Summary, "recover-machines --plan shop") {
		t.Fatalf("host-lost alert = %+v", a)
	}
	if as := Evaluate(Inputs{Now: t0}); slices.ContainsFunc(as, func(a Alert) bool { return strings.HasPrefix(a.ID, "host-lost/") }) {
		t.Fatalf("no lost host, yet %v", ids(as))
	}
}
