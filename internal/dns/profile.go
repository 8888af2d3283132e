package dns

import (
	"log/slog"
	"net/netip"
	"sync/atomic"

	"github.com/haven-dr/haven/internal/dns/health"
)

// routing methods, named as in Azure Traffic Manager.
const (
	Priority   = "priority"
	Weighted   = "weighted"
	MultiValue = "multivalue"
	Subnet     = "subnet"
	Geographic = "geographic"
)

type profile struct {
	name       string // canonical FQDN
	routing    string
	ttl        uint32       // as configured
	ttlOver    atomic.Int64 // the API's TTL + 1; 0: none
	enabled    bool
	maxAnswers int
	servfail   bool // when all endpoints are down; default is fail open
	geo        *geoMap
	endpoints  []*endpoint
	metrics    *profileMetrics
	allDown    atomic.Bool // last observed, to log transitions once
	log        *slog.Logger
}

type endpoint struct {
	name       string
	addr       netip.Addr // valid for address endpoints
	cname      string     // for name endpoints
	child      *profile   // for nested endpoints
	minHealthy int
	subnets    []netip.Prefix
	regions    []string
	checker    *health.Checker // nil when not monitored
	probeHost  string
	spec       *health.Spec // nil when not monitored

	enabled  atomic.Bool
	priority atomic.Int32
	weight   atomic.Int32
	conf     EndpointValues // as compiled, before API overrides
	voted    atomic.Int32   // the cluster's verdict + 1 under probe_quorum; 0: the local checker's

	metrics *endpointMetrics
}

// answerTTL is the TTL answers carry: the API's override (a planned
// failover lowers it before it moves the profile) or the config's.
func (p *profile) answerTTL() uint32 {
	if v := p.ttlOver.Load(); v > 0 {
		return uint32(v - 1)
	}
	return p.ttl
}

// state derives the Traffic-Manager endpoint state.
func (e *endpoint) state(p *profile) health.State {
	switch {
	case !p.enabled:
		return health.Stopped
	case !e.enabled.Load():
		return health.Disabled
	case e.child != nil:
		return e.child.asChild(e.minHealthy)
	case e.checker == nil:
		return health.Unmonitored
	}
	return e.health()
}

// healthy tells which endpoints routing may use. An endpoint in
// CheckingEndpoint has no successful probe yet: it is used only while no
// endpoint has one (a fresh start, where moving traffic to a backup before
// anything was probed would be worse), never beside a proven one, so a dead
// primary whose checker is new is not served while a healthy site exists.
func (p *profile) healthy() healthFn {
	anyProven := p.count(proven) > 0
	return func(e *endpoint) bool {
		s := e.state(p)
		return proven(s) || s == health.CheckingEndpoint && !anyProven
	}
}

func (p *profile) healthyCount() int {
	ok := p.healthy()
	n := 0
	for _, e := range p.endpoints {
		if ok(e) {
			n++
		}
	}
	return n
}

func (p *profile) count(f func(health.State) bool) int {
	n := 0
	for _, e := range p.endpoints {
		if f(e.state(p)) {
			n++
		}
	}
	return n
}

// proven: routable on evidence (a successful probe, or no probing at all).
func proven(s health.State) bool { return s == health.Online || s == health.Unmonitored }

// asChild is the state of a nested endpoint pointing at p: Online only when
// enough of p's endpoints are proven, CheckingEndpoint when that rests on
// endpoints not yet probed, so the parent's routing ranks it like one.
func (p *profile) asChild(minHealthy int) health.State {
	switch {
	case p.count(proven) >= minHealthy:
		return health.Online
	case p.count(health.State.Routable) >= minHealthy:
		return health.CheckingEndpoint
	}
	return health.Degraded
}

// ProfileState is derived from the endpoints, as in Traffic Manager.
func (p *profile) state() string {
	if !p.enabled {
		return "Disabled"
	}
	var enabled, online, checking int
	for _, e := range p.endpoints {
		switch e.state(p) {
		case health.Disabled:
			continue
		case health.Online, health.Unmonitored:
			online++
		case health.CheckingEndpoint:
			checking++
		}
		enabled++
	}
	switch {
	case enabled == 0:
		return "Inactive"
	case online > 0:
		return "Online"
	case checking > 0:
		return "CheckingEndpoints"
	}
	return "Degraded"
}

// noteAllDown logs, once per outage, that no endpoint is healthy: clients
// now get either every enabled endpoint or SERVFAIL, which operators must see.
func (p *profile) noteAllDown(servfail bool) {
	if !p.allDown.CompareAndSwap(false, true) {
		return
	}
	what := "failing open: routing as if every enabled endpoint were healthy"
	if servfail {
		what = "answering SERVFAIL"
	}
	p.logger().Error("all endpoints of profile are unhealthy; "+what, "profile", p.name)
}

func (p *profile) noteRecovered() {
	if p.allDown.CompareAndSwap(true, false) {
		p.logger().Warn("profile has a healthy endpoint again", "profile", p.name)
	}
}

func (p *profile) logger() *slog.Logger {
	if p.log == nil {
		return slog.Default()
	}
	return p.log
}
