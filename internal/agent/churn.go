package agent

import "github.com/haven-dr/haven/internal/vault"

// previous gives, per disk, the chunk IDs of the machine's newest point,
// so the vault can record which chunks a cycle overwrote (the churn
// figures encryption detection reads). The change-tracking cache is
// verified against the vault and survives restarts; the IDs of the last
// point this process took cover providers that keep no cache. A disk with
// neither gets a point without a baseline, which detection skips.
func (m *machine) previous() map[string][]vault.ID {
	out := map[string][]vault.ID{}
	for name, ids := range m.lastIDs {
		out[name] = ids
	}
	for name, t := range m.trackers {
		if t.cache != nil {
			out[name] = t.cache.IDs
		}
	}
	return out
}
