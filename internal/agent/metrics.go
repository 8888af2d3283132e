package agent

import (
	"github.com/prometheus/client_golang/prometheus"
)

// collector exposes the status board as Prometheus metrics, computed at
// scrape time so metrics and `haven agent status` can never disagree.
type collector struct{ a *Agent }

var (
	mLabels      = []string{"machine", "group"}
	descRPO      = prometheus.NewDesc("haven_agent_rpo_seconds", "Now minus the capture time of the newest committed recovery point.", mLabels, nil)
	descAlert    = prometheus.NewDesc("haven_agent_rpo_alert", "1 while the RPO exceeds the machine's rpo_alert threshold or is unknown.", mLabels, nil)
	descUnknown  = prometheus.NewDesc("haven_agent_rpo_unknown", "1 while the newest point could not be learned from the vault (rpo_seconds is then a lower bound).", mLabels, nil)
	descLast     = prometheus.NewDesc("haven_agent_last_point_timestamp_seconds", "Capture time of the newest committed recovery point.", mLabels, nil)
	descChurn    = prometheus.NewDesc("haven_agent_churn_bytes_per_second", "New data per second measured by the last cycle.", mLabels, nil)
	descUploaded = prometheus.NewDesc("haven_agent_uploaded_bytes_total", "Bytes uploaded to the vault since the agent started.", mLabels, nil)
	descPoints   = prometheus.NewDesc("haven_agent_points_total", "Recovery points taken since the agent started.", mLabels, nil)
	descFailures = prometheus.NewDesc("haven_agent_failures_total", "Failed replication cycles since the agent started.", mLabels, nil)
	descCycle    = prometheus.NewDesc("haven_agent_last_cycle_seconds", "Duration of the last successful replication cycle.", mLabels, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRPO, descAlert, descUnknown, descLast, descChurn, descUploaded, descPoints, descFailures, descCycle} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.a.Status().Machines {
		l := []string{m.Name, m.Group}
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
		}
		counter := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, l...)
		}
		gauge(descRPO, m.RPOSeconds)
		gauge(descAlert, b2f(m.RPOAlert))
		gauge(descUnknown, b2f(m.RPOUnknown))
		if m.LastPoint != nil {
			gauge(descLast, float64(m.LastPoint.Time.UnixNano())/1e9)
		}
		gauge(descChurn, m.ChurnBPS)
		counter(descUploaded, float64(m.UploadedBytes))
		counter(descPoints, float64(m.Points))
		counter(descFailures, float64(m.Failures))
		if m.LastCycle != nil {
			gauge(descCycle, m.LastCycle.Seconds)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Registry returns a Prometheus registry with the agent's metrics and the
// Go runtime's.
func (a *Agent) Registry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collector{a}, prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return r
}
