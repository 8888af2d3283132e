package alert

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Sink receives transitions, one at a time; an error is retried.
type Sink interface {
	Name() string
	Send(ctx context.Context, e Event) error
}

// Retry bounds the redelivery of a failed transition.
type Retry struct {
	Attempts int           // default 10
	Backoff  time.Duration // first wait; default 1s, doubled each time
	Max      time.Duration // longest wait; default 5m
}

// Notifier logs transitions, exports them as metrics and hands them to
// the sinks, each drained by its own goroutine so that a slow or failing
// receiver never holds up the evaluation loop (or jobs).
type Notifier struct {
	log        *slog.Logger
	retry      Retry
	queues     []*queue
	firing     *prometheus.GaugeVec
	deliveries *prometheus.CounterVec
}

type queue struct {
	sink Sink
	ch   chan Event
}

// queueLen bounds the transitions waiting for one sink; past it new ones
// are dropped (and counted) rather than blocking.
const queueLen = 256

// NewNotifier builds a notifier for sinks; Run drains their queues.
func NewNotifier(log *slog.Logger, r Retry, sinks ...Sink) *Notifier {
	if r.Attempts <= 0 {
		r.Attempts = 10
	}
	if r.Backoff <= 0 {
		r.Backoff = time.Second
	}
	if r.Max <= 0 {
		r.Max = 5 * time.Minute
	}
	n := &Notifier{log: log, retry: r,
		firing: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "haven_alerts",
			Help: "1 while the alert fires, 0 once it resolved."}, []string{"id", "severity"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "haven_alert_deliveries_total",
			Help: "Alert transitions handed to a sink, by sink and result (ok, retry, failed, dropped)."}, []string{"sink", "result"}),
	}
	for _, s := range sinks {
		n.queues = append(n.queues, &queue{sink: s, ch: make(chan Event, queueLen)})
	}
	return n
}

// Collectors are the notifier's metrics, for a registry.
func (n *Notifier) Collectors() []prometheus.Collector {
	return []prometheus.Collector{n.firing, n.deliveries}
}

// Deliver logs and counts the transitions and queues them for the sinks;
// it never blocks.
func (n *Notifier) Deliver(events []Event) {
	for _, e := range events {
		lvl, v := slog.LevelWarn, 1.0
		if e.State == Resolved {
			lvl, v = slog.LevelInfo, 0
		}
		n.log.Log(context.Background(), lvl, "alert "+e.State, "id", e.ID, "severity", e.Severity, "summary", e.Summary, "since", e.Since)
		n.deliveries.WithLabelValues("log", "ok").Inc()
		n.firing.WithLabelValues(e.ID, string(e.Severity)).Set(v)
		n.deliveries.WithLabelValues("metrics", "ok").Inc()
		for _, q := range n.queues {
			select {
			case q.ch <- e:
			default:
				n.deliveries.WithLabelValues(q.sink.Name(), "dropped").Inc()
				n.log.Error("alert dropped: sink queue full", "sink", q.sink.Name(), "id", e.ID, "state", e.State)
			}
		}
	}
}

// Run drains the sinks' queues until ctx ends.
func (n *Notifier) Run(ctx context.Context) {
	done := make(chan struct{})
	for _, q := range n.queues {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				select {
				case <-ctx.Done():
					return
				case e := <-q.ch:
					n.send(ctx, q.sink, e)
				}
			}
		}()
	}
	for range n.queues {
		<-done
	}
}

// send tries e on s with exponential backoff, up to the retry bound.
func (n *Notifier) send(ctx context.Context, s Sink, e Event) {
	wait := n.retry.Backoff
	for attempt := 1; ; attempt++ {
		err := s.Send(ctx, e)
		if err == nil {
			n.deliveries.WithLabelValues(s.Name(), "ok").Inc()
			return
		}
		if attempt >= n.retry.Attempts || ctx.Err() != nil {
			n.deliveries.WithLabelValues(s.Name(), "failed").Inc()
			n.log.Error("alert not delivered", "sink", s.Name(), "id", e.ID, "state", e.State, "attempts", attempt, "err", err)
			return
		}
		n.deliveries.WithLabelValues(s.Name(), "retry").Inc()
		n.log.Warn("alert delivery failed; retrying", "sink", s.Name(), "id", e.ID, "attempt", attempt, "in", wait, "err", err)
		select {
		case <-ctx.Done():
			n.deliveries.WithLabelValues(s.Name(), "failed").Inc()
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, n.retry.Max)
	}
}
