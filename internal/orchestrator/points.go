package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/haven-dr/haven/internal/agent"
	"github.com/haven-dr/haven/internal/vault"
)

// Point choices besides a time or an ID.
const (
	// PointLatest: per consistency group, the newest capture instant
	// that every member has (for a machine alone, its newest point).
	PointLatest           = "latest"
	PointLatestApp        = "latest-app"
	PointLatestConsistent = "latest-consistent"
	// PointLatestPerMachine: each machine's own newest point, even when
	// the members of a group then come from different instants.
	PointLatestPerMachine = "latest-per-machine"
	// PointLastClean: the newest points (one instant per group) no
	// newer than the earliest last clean point that an open encryption
	// alert of the machines keeps (vault holds, internal/detect).
	PointLastClean = vault.LastClean
)

// choosePoints picks, for each machine, the point the choice names. For
// latest (the default) and latest-consistent, machines of one consistency
// group get points of one capture instant that every member has: a
// database and the web server that wrote into it must not come back from
// two different moments unless the operator asks (latest-per-machine).
// The notes say, per group of several machines, which instant it got and
// which member's newer point was passed over for it.
func choosePoints(ctx context.Context, v *vault.Vault, machines []string, groups map[string]string, choice string) (map[string]PointUse, []string, error) {
	if choice == "" {
		choice = PointLatest
	}
	lists := map[string][]*vault.Point{}
	for _, m := range machines {
		ps, err := v.Points(ctx, m)
		if err != nil {
			return nil, nil, fmt.Errorf("points of %s: %w", m, err)
		}
		sort.Slice(ps, func(i, j int) bool { return ps[i].Time.After(ps[j].Time) })
		lists[m] = ps
	}
	out := map[string]PointUse{}
	switch choice {
	case PointLatestConsistent:
		return consistentPoints(machines, groups, lists, (*vault.Point).Consistent)
	case PointLatest:
		return consistentPoints(machines, groups, lists, func(*vault.Point) bool { return true })
	case PointLastClean:
		return lastCleanPoints(ctx, v, machines, groups, lists)
	case PointLatestPerMachine:
		choice = PointLatest
	}
	at, isTime := parseTime(choice)
	for _, m := range machines {
		var pick *vault.Point
		for _, p := range lists[m] {
			ok := false
			switch {
			case preserved(p) && p.ID != choice:
				// An old primary's disks kept before a failback are
				// evidence, not a recovery point to fail over to.
			case choice == PointLatest:
				ok = true
			case choice == PointLatestApp:
				ok = p.Consistency == vault.AppConsistent
			case isTime:
				ok = !p.Time.After(at)
			default:
				ok = p.ID == choice || (len(choice) >= 8 && len(p.ID) > len(choice) && p.ID[:len(choice)] == choice)
			}
			if ok {
				pick = p
				break
			}
		}
		if pick == nil {
			return nil, nil, fmt.Errorf("%w: machine %s has no point matching %q (%d points in the vault)", ErrPrecondition, m, choice, len(lists[m]))
		}
		out[m] = use(pick)
	}
	return out, nil, nil
}

// lastCleanPoints goes back to before the first encryption detected on
// any of the machines: ransomware on one machine of a plan rarely stays
// there, so every machine comes from no later than the earliest last
// clean point, one instant per consistency group.
func lastCleanPoints(ctx context.Context, v *vault.Vault, machines []string, groups map[string]string, lists map[string][]*vault.Point) (map[string]PointUse, []string, error) {
	var cutoff time.Time
	var from string
	for _, m := range machines {
		p, err := v.LastCleanPoint(ctx, m)
		if errors.Is(err, vault.ErrNoPoint) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("last clean point of %s: %w", m, err)
		}
		if cutoff.IsZero() || p.Time.Before(cutoff) {
			cutoff, from = p.Time, m
		}
	}
	if cutoff.IsZero() {
		return nil, nil, fmt.Errorf("%w: no open encryption alert of %v keeps a last clean point (haven alert list)", ErrPrecondition, machines)
	}
	out, notes, err := consistentPoints(machines, groups, lists, func(p *vault.Point) bool { return !p.Time.After(cutoff) })
	if err != nil {
		return nil, nil, err
	}
	note := fmt.Sprintf("last clean: every machine from no later than %s, the last clean point of %s before its encryption alert",
		cutoff.UTC().Format(time.RFC3339Nano), from)
	return out, append([]string{note}, notes...), nil
}

func preserved(p *vault.Point) bool { return p.Tags[agent.PreservedTag] == "true" }

func use(p *vault.Point) PointUse {
	return PointUse{ID: p.ID, Time: p.Time, Consistency: p.Consistency, Group: p.Group}
}

func parseTime(s string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339, s)
	return t, err == nil
}

// consistentPoints gives the members of each consistency group the
// newest capture instant that all of them have a point of, among points
// ok accepts. A group's points share their capture instant because the
// agent snapshots a group at once; an instant one member lacks (its part
// of the cycle failed) is passed over.
func consistentPoints(machines []string, groups map[string]string, lists map[string][]*vault.Point, ok func(*vault.Point) bool) (map[string]PointUse, []string, error) {
	byGroup := map[string][]string{}
	var order []string
	for _, m := range machines {
		if byGroup[groups[m]] == nil {
			order = append(order, groups[m])
		}
		byGroup[groups[m]] = append(byGroup[groups[m]], m)
	}
	out := map[string]PointUse{}
	var notes []string
	for _, g := range order {
		members := byGroup[g]
		picks := groupInstant(g, members, lists, ok)
		if picks == nil {
			return nil, nil, fmt.Errorf("%w: consistency group %s (%v) has no capture instant that every member has "+
				"(--point latest-per-machine takes each machine's newest point regardless)", ErrPrecondition, g, members)
		}
		for m, p := range picks {
			out[m] = use(p)
		}
		if len(members) > 1 {
			notes = append(notes, groupNote(g, members, lists, picks, ok)...)
		}
	}
	return out, notes, nil
}

// groupNote says which instant a group got and which members had a newer
// point that was passed over to keep the group at one instant.
func groupNote(g string, members []string, lists map[string][]*vault.Point, picks map[string]*vault.Point, ok func(*vault.Point) bool) []string {
	at := picks[members[0]].Time
	notes := []string{fmt.Sprintf("consistency group %s (%v): every member from capture instant %s, the newest they all have",
		g, members, at.UTC().Format(time.RFC3339Nano))}
	for _, m := range members {
		for _, p := range lists[m] {
			if ok(p) && !preserved(p) && p.Time.After(at) {
				notes = append(notes, fmt.Sprintf("%s: newer point %s (%s) passed over, group %s has no member's point of that instant for all "+
					"(--point latest-per-machine takes it)", m, p.ID, p.Time.UTC().Format(time.RFC3339Nano), g))
				break
			}
		}
	}
	return notes
}

// groupInstant picks the members' points of the newest instant they all
// have, or nil. Candidate instants are the first member's, newest first.
// A machine alone is its own group and its points need not name it.
func groupInstant(g string, members []string, lists map[string][]*vault.Point, ok func(*vault.Point) bool) map[string]*vault.Point {
	for _, cand := range lists[members[0]] {
		picks := map[string]*vault.Point{}
		for _, m := range members {
			for _, p := range lists[m] {
				if p.Time.Equal(cand.Time) && (len(members) == 1 || p.Group == g) && ok(p) && !preserved(p) {
					picks[m] = p
					break
				}
			}
		}
		if len(picks) == len(members) {
			return picks
		}
	}
	return nil
}
