package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// holdsPrefix holds one object per encryption alert (internal/detect):
// it names the machine's last clean point, which prune keeps while the
// alert is open. Closing writes a second object beside it rather than
// rewriting the first, so append-only storage can hold both.
const holdsPrefix = "holds/"

const closedSuffix = ".closed"

// ErrNoHold: no encryption alert of that machine and point.
var ErrNoHold = errors.New("no such alert")

// Hold is an encryption alert as the vault keeps it.
type Hold struct {
	Machine string `json:"machine"`
	Disk    string `json:"disk"`
	// FirstSuspect is the first point whose churn jumped; it names the
	// alert. LastClean is the newest point before it ("" when that point
	// was no longer in the vault); prune keeps it while the alert is open.
	FirstSuspect string    `json:"first_suspect"`
	Trigger      string    `json:"trigger,omitempty"` // the point whose churn crossed the threshold
	SuspectTime  time.Time `json:"suspect_time"`
	LastClean    string    `json:"last_clean,omitempty"`
	Detected     time.Time `json:"detected"`
	Reason       string    `json:"reason"`
	// Closed and Note come from the close object (nil while open).
	Closed *time.Time `json:"closed,omitempty"`
	Note   string     `json:"note,omitempty"`
}

// Open reports whether no operator has closed the alert.
func (h *Hold) Open() bool { return h.Closed == nil }

type holdClose struct {
	Closed time.Time `json:"closed"`
	Note   string    `json:"note,omitempty"`
}

func (v *Vault) holdName(machine, firstSuspect string) string {
	return holdsPrefix + strings.TrimPrefix(v.machineDir(machine), pointsPrefix) + firstSuspect
}

// PutHold records an alert. Writing one that exists is harmless (the
// first write's figures are kept by the caller's dedupe on FirstSuspect).
func (v *Vault) PutHold(ctx context.Context, h Hold) error {
	if err := ValidName("machine", h.Machine); err != nil {
		return err
	}
	if h.FirstSuspect == "" || strings.Contains(h.FirstSuspect, "/") {
		return fmt.Errorf("hold of %s: bad first suspect point %q", h.Machine, h.FirstSuspect)
	}
	h.Closed, h.Note = nil, ""
	b, _ := json.Marshal(h)
	return v.putSealed(ctx, v.holdName(h.Machine, h.FirstSuspect), b)
}

// CloseHold records an operator's close of the alert named by machine and
// its first suspect point (or unique prefix). Closing twice keeps the
// first close.
func (v *Vault) CloseHold(ctx context.Context, machine, firstSuspect, note string) (*Hold, error) {
	hs, err := v.Holds(ctx, machine)
	if err != nil {
		return nil, err
	}
	var match []*Hold
	for _, h := range hs {
		if strings.HasPrefix(h.FirstSuspect, firstSuspect) && firstSuspect != "" {
			match = append(match, h)
		}
	}
	switch {
	case len(match) == 0:
		return nil, fmt.Errorf("%w: machine %s has no encryption alert %q", ErrNoHold, machine, firstSuspect)
	case len(match) > 1:
		return nil, fmt.Errorf("alert %q of %s is ambiguous (%d matches)", firstSuspect, machine, len(match))
	}
	h := match[0]
	if !h.Open() {
		return h, nil
	}
	c := holdClose{Closed: time.Now().UTC(), Note: note}
	b, _ := json.Marshal(c)
	if err := v.putSealed(ctx, v.holdName(machine, h.FirstSuspect)+closedSuffix, b); err != nil {
		return nil, err
	}
	h.Closed, h.Note = &c.Closed, c.Note
	return h, nil
}

// Holds lists machine's alerts ("" for all machines), oldest first.
func (v *Vault) Holds(ctx context.Context, machine string) ([]*Hold, error) {
	prefix := holdsPrefix
	if machine != "" {
		prefix = v.holdName(machine, "")
	}
	names, err := listNames(ctx, v.be, prefix)
	if err != nil {
		return nil, err
	}
	closed := map[string]bool{}
	for _, n := range names {
		if base, ok := strings.CutSuffix(n, closedSuffix); ok {
			closed[base] = true
		}
	}
	var out []*Hold
	for _, n := range names {
		if strings.HasSuffix(n, closedSuffix) {
			continue
		}
		h, err := v.loadHold(ctx, n, closed[n])
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].FirstSuspect < out[j].FirstSuspect })
	return out, nil
}

func (v *Vault) loadHold(ctx context.Context, name string, closed bool) (*Hold, error) {
	plain, err := v.getSealed(ctx, name)
	if err != nil {
		return nil, err
	}
	var h Hold
	if err := json.Unmarshal(plain, &h); err != nil {
		return nil, corrupt(name, "hold: %v", err)
	}
	if v.holdName(h.Machine, h.FirstSuspect) != name {
		return nil, corrupt(name, "hold names %s/%s", h.Machine, h.FirstSuspect)
	}
	if !closed {
		return &h, nil
	}
	plain, err = v.getSealed(ctx, name+closedSuffix)
	if err != nil {
		return nil, err
	}
	var c holdClose
	if err := json.Unmarshal(plain, &c); err != nil {
		return nil, corrupt(name+closedSuffix, "hold close: %v", err)
	}
	h.Closed, h.Note = &c.Closed, c.Note
	return &h, nil
}

// Held lists the points among points that an open alert keeps as its
// last clean point.
func (v *Vault) Held(ctx context.Context, points []*Point) (map[*Point]bool, error) {
	hs, err := v.Holds(ctx, "")
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	for _, h := range hs {
		if h.Open() && h.LastClean != "" {
			keep[h.Machine+"/"+h.LastClean] = true
		}
	}
	out := map[*Point]bool{}
	for _, p := range points {
		if keep[p.Machine+"/"+p.ID] {
			out[p] = true
		}
	}
	return out, nil
}

// LastClean is the selector for the last clean point of the machine's
// open encryption alerts (the oldest of them, when several are open).
const LastClean = "last-clean"

// LastCleanPoint is the point an open alert of machine keeps as clean.
func (v *Vault) LastCleanPoint(ctx context.Context, machine string) (*Point, error) {
	hs, err := v.Holds(ctx, machine)
	if err != nil {
		return nil, err
	}
	for _, h := range hs {
		if h.Open() && h.LastClean != "" {
			return v.loadPoint(ctx, v.pointName(machine, h.LastClean))
		}
	}
	return nil, fmt.Errorf("%w: %s has no open encryption alert naming a last clean point", ErrNoPoint, machine)
}
