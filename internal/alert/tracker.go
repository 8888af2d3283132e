package alert

import (
	"sort"
	"time"
)

// Event is a transition of one alert: what sinks receive.
type Event struct {
	State string    `json:"state"` // firing or resolved
	Time  time.Time `json:"time"`
	Alert
}

// Event states.
const (
	Firing   = "firing"
	Resolved = "resolved"
)

// Tracker remembers which alerts are firing so that an alert is delivered
// once when it fires and once when it resolves, not at every evaluation.
// It lives in memory: after a restart every alert that still holds fires
// again (at-least-once delivery, by design).
type Tracker struct {
	active map[string]Alert
}

// NewTracker returns a tracker with nothing firing.
func NewTracker() *Tracker { return &Tracker{active: map[string]Alert{}} }

// Observe takes the alerts that hold at now and returns the transitions
// since the previous call, fired ones first, each group sorted by ID.
func (t *Tracker) Observe(now time.Time, current []Alert) []Event {
	var fired, resolved []Event
	seen := map[string]bool{}
	for _, a := range current {
		seen[a.ID] = true
		if _, ok := t.active[a.ID]; ok {
			continue
		}
		t.active[a.ID] = a
		fired = append(fired, Event{State: Firing, Time: now, Alert: a})
	}
	for id, a := range t.active {
		if seen[id] {
			continue
		}
		delete(t.active, id)
		at := now
		a.Resolved = &at
		resolved = append(resolved, Event{State: Resolved, Time: now, Alert: a})
	}
	byID := func(es []Event) { sort.Slice(es, func(i, j int) bool { return es[i].ID < es[j].ID }) }
	byID(fired)
	byID(resolved)
	return append(fired, resolved...)
}

// Active returns the firing alerts sorted by ID, with the Since of the
// moment they fired.
func (t *Tracker) Active() []Alert {
	out := make([]Alert, 0, len(t.active))
	for _, a := range t.active {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
