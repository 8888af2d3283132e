package orchestrator

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/haven-dr/haven/internal/agent"
	"github.com/haven-dr/haven/internal/vault"
)

// Point choices besides a time or an ID.
const (
	PointLatest           = "latest"
	PointLatestApp        = "latest-app"
	PointLatestConsistent = "latest-consistent"
)

// choosePoints picks, for each machine, the point the choice names. For
// latest-consistent, machines of one consistency group get points of one
// capture instant that every member has.
func choosePoints(ctx context.Context, v *vault.Vault, machines []string, groups map[string]string, choice string) (map[string]PointUse, error) {
	if choice == "" {
		choice = PointLatest
	}
	lists := map[string][]*vault.Point{}
	for _, m := range machines {
		ps, err := v.Points(ctx, m)
		if err != nil {
			return nil, fmt.Errorf("points of %s: %w", m, err)
		}
		sort.Slice(ps, func(i, j int) bool { return ps[i].Time.After(ps[j].Time) })
		lists[m] = ps
	}
	out := map[string]PointUse{}
	if choice == PointLatestConsistent {
		return consistentPoints(machines, groups, lists)
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
			return nil, fmt.Errorf("%w: machine %s has no point matching %q (%d points in the vault)", ErrPrecondition, m, choice, len(lists[m]))
		}
		out[m] = use(pick)
	}
	return out, nil
}

func preserved(p *vault.Point) bool { return p.Tags[agent.PreservedTag] == "true" }

func use(p *vault.Point) PointUse {
	return PointUse{ID: p.ID, Time: p.Time, Consistency: p.Consistency, Group: p.Group}
}

func parseTime(s string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339, s)
	return t, err == nil
}

func consistentPoints(machines []string, groups map[string]string, lists map[string][]*vault.Point) (map[string]PointUse, error) {
	byGroup := map[string][]string{}
	for _, m := range machines {
		byGroup[groups[m]] = append(byGroup[groups[m]], m)
	}
	out := map[string]PointUse{}
	for g, members := range byGroup {
		// Candidate instants: the first member's, newest first.
		found := false
		for _, cand := range lists[members[0]] {
			picks := map[string]*vault.Point{}
			for _, m := range members {
				for _, p := range lists[m] {
					if p.Time.Equal(cand.Time) && p.Group == g && p.Consistent() && !preserved(p) {
						picks[m] = p
						break
					}
				}
			}
			if len(picks) == len(members) {
				for m, p := range picks {
					out[m] = use(p)
				}
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("%w: consistency group %s (%v) has no capture instant that every member has", ErrPrecondition, g, members)
		}
	}
	return out, nil
}
