package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/haven-dr/haven/internal/blob"
)

// PreservedTag marks a point that keeps a machine's disks as they were
// before a restore overwrote them (the old primary's own writes at a
// failback). It is evidence, not a recovery point: retention keeps it,
// outside its rules, until an operator releases it.
const PreservedTag = "haven.preserved"

// releasedPrefix holds one object per released preserved point. A marker
// beside the point (rather than a rewritten manifest) keeps points
// immutable, which append-only storage enforces.
const releasedPrefix = "released/"

// ErrNotPreserved: release was asked for a point retention already governs.
var ErrNotPreserved = errors.New("not a preserved point")

// Preserved reports whether the point carries PreservedTag.
func (p *Point) Preserved() bool { return p.Tags[PreservedTag] == "true" }

func (v *Vault) releaseName(machine, id string) string {
	return releasedPrefix + strings.TrimPrefix(v.machineDir(machine), pointsPrefix) + id
}

type releaseRecord struct {
	Machine  string    `json:"machine"`
	Point    string    `json:"point"`
	Released time.Time `json:"released"`
}

// ReleasePoint lets the next prune remove a preserved point. It is
// idempotent; a point that is not preserved is refused.
func (v *Vault) ReleasePoint(ctx context.Context, machine, id string) (*Point, error) {
	p, err := v.FindPoint(ctx, machine, id)
	if err != nil {
		return nil, err
	}
	if !p.Preserved() {
		return nil, fmt.Errorf("%w: point %s of %s: retention already applies to it", ErrNotPreserved, p.ID, machine)
	}
	// Released already: keep the first record, since the credential may
	// only add objects.
	name := v.releaseName(machine, p.ID)
	if _, err := v.be.Stat(ctx, name); err == nil || !errors.Is(err, blob.ErrNotFound) {
		return p, err
	}
	b, _ := json.Marshal(releaseRecord{Machine: machine, Point: p.ID, Released: time.Now().UTC()})
	return p, v.putSealed(ctx, name, b)
}

// Released lists the released points among points.
func (v *Vault) Released(ctx context.Context, points []*Point) (map[*Point]bool, error) {
	names, err := listNames(ctx, v.be, releasedPrefix)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, n := range names {
		have[n] = true
	}
	out := map[*Point]bool{}
	for _, p := range points {
		if p.Preserved() && have[v.releaseName(p.Machine, p.ID)] {
			out[p] = true
		}
	}
	return out, nil
}

// forgetRelease drops the marker of a point prune removed.
func (v *Vault) forgetRelease(ctx context.Context, p *Point) error {
	if !p.Preserved() {
		return nil
	}
	return v.be.Delete(ctx, v.releaseName(p.Machine, p.ID))
}
