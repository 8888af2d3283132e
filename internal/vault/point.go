package vault

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

const pointsPrefix = "points/"

// Consistency of a recovery point.
const (
	Inconsistent    = "inconsistent" // disks read while in use: no single instant
	CrashConsistent = "crash"
	AppConsistent   = "app"
)

// Point is a recovery point: one machine's disks at one instant. Its manifest
// is the last object a snapshot writes, so a point that is listed is complete.
type Point struct {
	ID          string            `json:"id"`
	Machine     string            `json:"machine"`
	Time        time.Time         `json:"time"` // capture instant
	Consistency string            `json:"consistency"`
	Provider    string            `json:"provider,omitempty"` // how consistency was obtained
	Group       string            `json:"group,omitempty"`    // consistency group
	Host        string            `json:"host,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	ChunkSize   int               `json:"chunk_size"`
	Disks       []Disk            `json:"disks"`
}

// Disk is one disk of a point: its size and the pages listing its chunk IDs.
type Disk struct {
	Name  string `json:"name"`
	Size  int64  `json:"size"`
	Pages []ID   `json:"pages"`
	// Churn: what changed since the previous point (absent in points
	// written before it was recorded).
	Churn *Churn `json:"churn,omitempty"`
}

// Disk returns the named disk.
func (p *Point) Disk(name string) (*Disk, error) {
	for i := range p.Disks {
		if p.Disks[i].Name == name {
			return &p.Disks[i], nil
		}
	}
	var names []string
	for _, d := range p.Disks {
		names = append(names, d.Name)
	}
	return nil, fmt.Errorf("%w: point %s of %s has no disk %q (disks: %s)", ErrNoDisk, p.ID, p.Machine, name, strings.Join(names, ", "))
}

// Size is the sum of the disks' sizes.
func (p *Point) Size() int64 {
	var n int64
	for _, d := range p.Disks {
		n += d.Size
	}
	return n
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidName checks machine and disk names, which become object names.
func ValidName(kind, s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("invalid %s name %q: use letters, digits, '.', '_' and '-' (max 128)", kind, s)
	}
	return nil
}

// machineDir is the folder of a machine's points. From format version 2 it
// is a keyed hash of the name, so storage does not learn machine names but
// one machine's points can still be listed without reading any manifest.
func (v *Vault) machineDir(machine string) string {
	if v.key.name == nil {
		return pointsPrefix + machine + "/"
	}
	id := sumID(keyed(v.key.name), []byte(machine))
	return pointsPrefix + hex.EncodeToString(id[:16]) + "/"
}

func (v *Vault) pointName(machine, id string) string { return v.machineDir(machine) + id }

// newPointID is sortable by time, so "latest" needs no manifest reads.
func newPointID(t time.Time) string {
	return t.UTC().Format("20060102T150405.000Z") + "-" + randomHex(4)
}

func (v *Vault) savePoint(ctx context.Context, p *Point) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return v.putSealed(ctx, v.pointName(p.Machine, p.ID), b)
}

func (v *Vault) loadPoint(ctx context.Context, name string) (*Point, error) {
	plain, err := v.getSealed(ctx, name)
	if err != nil {
		return nil, err
	}
	return v.decodePoint(name, plain)
}

// decodePoint parses and checks an authenticated manifest.
func (v *Vault) decodePoint(name string, plain []byte) (*Point, error) {
	var p Point
	if err := json.Unmarshal(plain, &p); err != nil {
		return nil, corrupt(name, "manifest: %v", err)
	}
	if v.pointName(p.Machine, p.ID) != name {
		return nil, corrupt(name, "manifest names point %s/%s", p.Machine, p.ID)
	}
	if err := p.check(); err != nil {
		return nil, corrupt(name, "manifest: %v", err)
	}
	return &p, nil
}

// check enforces the fields docs/vault-format.md says a manifest must have,
// so a damaged or hostile one is reported instead of dividing by a zero
// chunk size or restoring a disk of negative size.
func (p *Point) check() error {
	if p.Time.IsZero() {
		return errors.New("no capture time")
	}
	if p.ChunkSize < 4096 || p.ChunkSize > 16<<20 || p.ChunkSize%4096 != 0 {
		return fmt.Errorf("chunk size %d", p.ChunkSize)
	}
	if len(p.Disks) == 0 {
		return errors.New("no disks")
	}
	seen := map[string]bool{}
	for _, d := range p.Disks {
		if ValidName("disk", d.Name) != nil || seen[d.Name] || d.Size < 0 {
			return fmt.Errorf("disk %q of size %d", d.Name, d.Size)
		}
		seen[d.Name] = true
	}
	return nil
}

// pointNames lists point object names for machine ("" for all), oldest first.
func (v *Vault) pointNames(ctx context.Context, machine string) ([]string, error) {
	prefix := pointsPrefix
	if machine != "" {
		prefix = v.machineDir(machine)
	}
	names, err := listNames(ctx, v.be, prefix)
	sort.Slice(names, func(i, j int) bool { return path.Base(names[i]) < path.Base(names[j]) })
	return names, err
}

// Points loads the manifests of machine's points ("" for all), oldest first.
func (v *Vault) Points(ctx context.Context, machine string) ([]*Point, error) {
	names, err := v.pointNames(ctx, machine)
	if err != nil {
		return nil, err
	}
	out := make([]*Point, len(names))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, name := range names {
		g.Go(func() (err error) {
			out[i], err = v.loadPoint(ctx, name)
			if unauthentic(err) {
				passOver(err)
				return nil
			}
			return err
		})
	}
	err = g.Wait()
	return slices.DeleteFunc(out, func(p *Point) bool { return p == nil }), err
}

// FindPoint returns machine's point by ID, unique ID prefix, "latest",
// "last-clean" (hold.go), or a selector of point_select.go.
func (v *Vault) FindPoint(ctx context.Context, machine, id string) (*Point, error) {
	names, err := v.pointNames(ctx, machine)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: machine %q has no recovery points", ErrNoPoint, machine)
	}
	if id == "" || id == "latest" {
		return v.newestMatching(ctx, machine, names, "latest", func(*Point) bool { return true })
	}
	if id == LastClean {
		return v.LastCleanPoint(ctx, machine)
	}
	if match, ok := selector(id); ok {
		return v.newestMatching(ctx, machine, names, id, match)
	}
	var match []string
	for _, n := range names {
		if strings.HasPrefix(path.Base(n), id) {
			match = append(match, n)
		}
	}
	switch len(match) {
	case 0:
		return nil, fmt.Errorf("%w: %s has no point %q", ErrNoPoint, machine, id)
	case 1:
		return v.loadPoint(ctx, match[0])
	}
	return nil, fmt.Errorf("point %q is ambiguous (%d matches)", id, len(match))
}

// DeletePoint removes a point's manifest (its data goes at the next prune).
func (v *Vault) deletePoint(ctx context.Context, p *Point) error {
	return v.be.Delete(ctx, v.pointName(p.Machine, p.ID))
}
