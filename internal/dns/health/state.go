// Package health probes endpoints (HTTP, HTTPS, TCP) and turns probe results
// into Traffic-Manager-like endpoint states with anti-flap thresholds.
package health

// State is the monitor status of an endpoint, named as in Azure Traffic
// Manager so operators moving from it recognise them.
type State int32

const (
	// CheckingEndpoint: no verdict yet. Routed as healthy while no endpoint
	// of the profile has a verdict, so a restart never moves traffic to a
	// backup just because nothing has been probed yet.
	CheckingEndpoint State = iota
	Online
	Degraded
	Disabled    // endpoint disabled by config or API
	Stopped     // the profile is disabled
	Unmonitored // always served, never probed
)

var stateNames = [...]string{"CheckingEndpoint", "Online", "Degraded", "Disabled", "Stopped", "Unmonitored"}

func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return "Unknown"
	}
	return stateNames[s]
}

// States lists every state, for metrics that export one series per state.
func States() []State {
	return []State{CheckingEndpoint, Online, Degraded, Disabled, Stopped, Unmonitored}
}

// Routable reports whether traffic may be sent to an endpoint in this state
// at all; CheckingEndpoint is routable only while no endpoint of the profile
// is proven healthy (see dns profile.healthy).
func (s State) Routable() bool {
	return s == Online || s == CheckingEndpoint || s == Unmonitored
}

// machine is the anti-flap state machine: an endpoint turns Degraded only
// after more than `tolerated` consecutive failures and comes back Online only
// after `required` consecutive successes.
type machine struct {
	state     State
	fails     int
	succ      int
	tolerated int
	required  int
}

func newMachine(tolerated, required int) machine {
	return machine{state: CheckingEndpoint, tolerated: tolerated, required: max(required, 1)}
}

// observe feeds one probe result and reports whether the state changed.
func (m *machine) observe(ok bool) bool {
	old := m.state
	if ok {
		m.fails, m.succ = 0, m.succ+1
		if m.state == CheckingEndpoint || m.succ >= m.required {
			m.state = Online
		}
	} else {
		m.succ, m.fails = 0, m.fails+1
		if m.fails > m.tolerated {
			m.state = Degraded
		}
	}
	return m.state != old
}
