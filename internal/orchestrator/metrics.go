package orchestrator

import (
	"github.com/haven-dr/haven/internal/store"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	reg         *prometheus.Registry
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
	m.reg.MustRegister(m.jobsStarted, m.jobsEnded, m.stepSeconds)
	return m
}

func (m *metrics) observeJob(j *store.Job) {
	m.jobsEnded.WithLabelValues(j.Type, j.State).Inc()
}

// Registry holds the orchestrator's metrics for /metrics.
func (o *Orchestrator) Registry() *prometheus.Registry { return o.metrics.reg }
