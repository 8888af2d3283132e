package vault

import (
	"context"
	"fmt"
)

// Point selectors that FindPoint accepts besides IDs and "latest".
const (
	LatestConsistent = "latest-consistent" // newest crash- or app-consistent point
	LatestApp        = "latest-app"        // newest app-consistent point
)

// Consistent reports whether the point holds its disks as of one instant
// (crash- or app-consistent). An inconsistent point was read while the
// disks changed: its file systems may not even mount.
func (p *Point) Consistent() bool {
	return p.Consistency == CrashConsistent || p.Consistency == AppConsistent
}

func selector(id string) (func(*Point) bool, bool) {
	switch id {
	case LatestConsistent:
		return (*Point).Consistent, true
	case LatestApp:
		return func(p *Point) bool { return p.Consistency == AppConsistent }, true
	}
	return nil, false
}

// newestMatching loads manifests newest first until one matches; names
// are sorted oldest first.
func (v *Vault) newestMatching(ctx context.Context, machine string, names []string, what string, match func(*Point) bool) (*Point, error) {
	for i := len(names) - 1; i >= 0; i-- {
		p, err := v.loadPoint(ctx, names[i])
		if unauthentic(err) {
			passOver(err) // a planted "newest" point must not hide the real ones
			continue
		} else if err != nil {
			return nil, err
		}
		if match(p) {
			return p, nil
		}
	}
	return nil, fmt.Errorf("%w: %s has no point matching %q among %d", ErrNoPoint, machine, what, len(names))
}
