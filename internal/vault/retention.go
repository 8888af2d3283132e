package vault

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Retention says which points to keep; a point is kept if any rule keeps it.
// Rules apply per machine. The newest point of each machine is always kept.
type Retention struct {
	Last   int           `json:"keep_last,omitempty" yaml:"keep_last"`
	Within time.Duration `json:"keep_within,omitempty" yaml:"keep_within"`
	Hourly int           `json:"keep_hourly,omitempty" yaml:"keep_hourly"`
	Daily  int           `json:"keep_daily,omitempty" yaml:"keep_daily"`
	Weekly int           `json:"keep_weekly,omitempty" yaml:"keep_weekly"`
}

// Empty reports whether no rule is set (prune refuses: it would keep only
// the newest point of every machine, which is rarely what anyone meant).
func (r Retention) Empty() bool { return r == Retention{} }

// Decision is the verdict on one point.
type Decision struct {
	Point   *Point `json:"point"`
	Keep    bool   `json:"keep"`
	Reasons string `json:"reasons,omitempty"`
}

// Apply decides for every point (any machines, any order) at time now.
// Preserved points (PreservedTag) stay outside the rules and are kept.
func (r Retention) Apply(points []*Point, now time.Time) []Decision {
	return r.apply(points, now, nil, nil)
}

// apply is Apply where the preserved points in released are no longer
// kept (an operator said the state they hold is not needed) and the points
// in held are kept whatever the rules say (the last clean point of an open
// encryption alert).
func (r Retention) apply(points []*Point, now time.Time, released, held map[*Point]bool) []Decision {
	byMachine := map[string][]*Point{}
	var out []Decision
	for _, p := range points {
		switch {
		case p.Preserved() && released[p]:
			out = append(out, Decision{Point: p, Keep: false})
		case p.Preserved():
			out = append(out, Decision{Point: p, Keep: true, Reasons: "preserved"})
		default:
			byMachine[p.Machine] = append(byMachine[p.Machine], p)
		}
	}
	for _, ps := range byMachine {
		sort.Slice(ps, func(i, j int) bool { return ps[i].Time.After(ps[j].Time) }) // newest first
		out = append(out, r.applyMachine(ps, now)...)
	}
	for i := range out {
		if held[out[i].Point] {
			out[i].Keep = true
			out[i].Reasons = strings.Trim(out[i].Reasons+",last-clean", ",")
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Point.Machine != out[j].Point.Machine {
			return out[i].Point.Machine < out[j].Point.Machine
		}
		return out[i].Point.Time.Before(out[j].Point.Time)
	})
	return out
}

func (r Retention) applyMachine(ps []*Point, now time.Time) []Decision {
	buckets := []struct {
		name string
		n    int
		key  func(time.Time) string
		seen map[string]bool
	}{
		{"hourly", r.Hourly, func(t time.Time) string { return t.Format("2006-01-02T15") }, map[string]bool{}},
		{"daily", r.Daily, func(t time.Time) string { return t.Format("2006-01-02") }, map[string]bool{}},
		{"weekly", r.Weekly, func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-%d", y, w) }, map[string]bool{}},
	}
	out := make([]Decision, len(ps))
	for i, p := range ps {
		var why []string
		if i == 0 {
			why = append(why, "newest")
		}
		if i < r.Last {
			why = append(why, "last")
		}
		if r.Within > 0 && now.Sub(p.Time) <= r.Within {
			why = append(why, "within")
		}
		t := p.Time.Local()
		for b := range buckets {
			k := buckets[b].key(t)
			if len(buckets[b].seen) < buckets[b].n && !buckets[b].seen[k] {
				buckets[b].seen[k] = true
				why = append(why, buckets[b].name)
			}
		}
		out[i] = Decision{Point: p, Keep: len(why) > 0, Reasons: strings.Join(why, ",")}
	}
	return out
}

var errNoRules = errors.New("no retention rule given (keep-last, keep-within, keep-hourly, keep-daily, keep-weekly)")
