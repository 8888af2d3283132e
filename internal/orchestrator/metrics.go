package orchestrator

import (
	"sync"
	"time"

	"github.com/haven-dr/haven/internal/store"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	reg         *prometheus.Registry
	rpo         *rpoCollector
	jobsStarted *prometheus.CounterVec
	jobsEnded   *prometheus.CounterVec
	stepSeconds *prometheus.HistogramVec
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry(),
		jobsStarted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "haven_jobs_started_total",
			Help: "Jobs submitted, by type."}, []string{"type"}),
		jobsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "haven_jobs_ended_total",
			Help: "Jobs that ended or stopped at a failure, by type and result."}, []string{"type", "result"}),
		stepSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "haven_job_step_seconds",
			Help: "Duration of job steps.", Buckets: prometheus.ExponentialBuckets(0.01, 3, 12)}, []string{"type", "step"}),
	}
	m.rpo = &rpoCollector{newest: map[string]time.Time{},
		desc: prometheus.NewDesc("haven_machine_rpo_seconds",
			"Now minus the capture instant of the machine's newest recovery point in the vault.", []string{"machine"}, nil)}
	m.reg.MustRegister(m.jobsStarted, m.jobsEnded, m.stepSeconds, m.rpo)
	return m
}

// rpoCollector reports RPO at scrape time from the newest point times the
// standby loop last read from the vault, so a scrape costs no listing.
type rpoCollector struct {
	desc   *prometheus.Desc
	mu     sync.Mutex
	newest map[string]time.Time
}

func (c *rpoCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *rpoCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for m, t := range c.newest {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, time.Since(t).Seconds(), m)
	}
}

func (c *rpoCollector) set(machine string, t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.newest[machine] = t
}

func (m *metrics) observeJob(j *store.Job) {
	m.jobsEnded.WithLabelValues(string(j.Type), string(j.State)).Inc()
}

// Registry holds the orchestrator's metrics for /metrics.
func (o *Orchestrator) Registry() *prometheus.Registry { return o.metrics.reg }
