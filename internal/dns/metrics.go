package dns

import (
	"strconv"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/haven-dr/haven/internal/dns/health"
)

// metrics live on the server's own registry, so several servers (tests)
// never collide on the global one.
type metrics struct {
	reg       *prometheus.Registry
	queries   *prometheus.CounterVec
	answers   *prometheus.CounterVec
	probes    *prometheus.CounterVec
	probeTime *prometheus.HistogramVec
	limited   *prometheus.CounterVec
}

// profileMetrics and endpointMetrics cache label lookups off the query path.
type profileMetrics struct{ byRcode [24]prometheus.Counter }

type endpointMetrics struct{ answers prometheus.Counter }

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.queries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "haven_dns", Name: "queries_total",
		Help: "DNS queries answered, by profile (empty for other names) and answer code.",
	}, []string{"profile", "rcode"})
	m.answers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "haven_dns", Name: "endpoint_answers_total",
		Help: "Answers that sent clients to an endpoint.",
	}, []string{"profile", "endpoint"})
	m.probes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "haven_dns", Name: "probes_total",
		Help: "Health probes by result (success or failure).",
	}, []string{"profile", "endpoint", "result"})
	m.probeTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "haven_dns", Name: "probe_duration_seconds",
		Help: "Health probe latency.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"profile", "endpoint"})
	m.limited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "haven_dns", Name: "rate_limited_total",
		Help: "UDP answers withheld by response-rate limiting: dropped, or slipped (sent empty and truncated).",
	}, []string{"action"})
	m.reg.MustRegister(m.queries, m.answers, m.probes, m.probeTime, m.limited, stateCollector{s},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) forProfile(name string) *profileMetrics {
	pm := &profileMetrics{}
	for rc := range pm.byRcode {
		pm.byRcode[rc] = m.queries.WithLabelValues(name, rcodeName(rc))
	}
	return pm
}

func (m *metrics) forEndpoint(profile, endpoint string) *endpointMetrics {
	return &endpointMetrics{answers: m.answers.WithLabelValues(profile, endpoint)}
}

func rcodeName(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return "RCODE" + strconv.Itoa(rc)
}

func (m *metrics) observe(rs *responder) { m.counters(rs, prometheus.Counter.Inc) }

func (s *Server) probeResult(c *health.Checker, r health.Result) {
	res := "success"
	if !r.OK {
		res = "failure"
	}
	s.metrics.probes.WithLabelValues(c.Profile, c.Endpoint, res).Inc()
	s.metrics.probeTime.WithLabelValues(c.Profile, c.Endpoint).Observe(r.Duration.Seconds())
}

// stateCollector exports endpoint states at scrape time, so changes made
// through the API show without bookkeeping.
type stateCollector struct{ s *Server }

var stateDesc = prometheus.NewDesc("haven_dns_endpoint_state",
	"1 for the endpoint's current monitor state, 0 for the others.",
	[]string{"profile", "endpoint", "state"}, nil)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- stateDesc }

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	t := c.s.table.Load()
	if t == nil {
		return
	}
	for _, p := range t.profiles {
		for _, e := range p.endpoints {
			cur := e.state(p)
			for _, st := range health.States() {
				v := 0.0
				if st == cur {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(stateDesc, prometheus.GaugeValue, v, p.name, e.name, st.String())
			}
		}
	}
}
