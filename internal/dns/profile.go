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
	ttl        uint32
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

	metrics *endpointMetrics
}

// state derives the Traffic-Manager endpoint state.
func (e *endpoint) state(p *profile) health.State {
	switch {
	case !p.enabled:
		return health.Stopped
	case !e.enabled.Load():
		return health.Disabled
	case e.child != nil:
		if e.child.healthyCount() >= e.minHealthy {
			return health.Online
		}
		return health.Degraded
	case e.checker == nil:
		return health.Unmonitored
	}
	return e.checker.State()
}

func (p *profile) healthyCount() int {
	n := 0
	for _, e := range p.endpoints {
		if e.state(p).Routable() {
			n++
		}
	}
	return n
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
