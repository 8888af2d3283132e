package alert

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fastRetry keeps tests short; what they check is the number of attempts,
// not how long they took.
var fastRetry = Retry{Attempts: 5, Backoff: time.Millisecond, Max: 4 * time.Millisecond}

// receiver is a real HTTP server on loopback that answers 500 to the
// first failures requests, then 204, and hands accepted bodies over.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	failures int
	requests int
	got      chan Event
	headers  chan http.Header
}

func newReceiver(t *testing.T, failures int) *receiver {
	r := &receiver{failures: failures, got: make(chan Event, 16), headers: make(chan http.Header, 16)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests++
		fail := r.requests <= r.failures
		r.mu.Unlock()
		if fail {
			http.Error(w, "not now", http.StatusInternalServerError)
			return
		}
		var e Event
		if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want a JSON POST", http.StatusBadRequest)
			return
		}
		if err := json.NewDecoder(req.Body).Decode(&e); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.headers <- req.Header
		r.got <- e
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

func next[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatal("nothing arrived")
		panic("unreachable")
	}
}

func run(t *testing.T, n *Notifier) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// TestWebhookRetriesThenDelivers: a receiver that fails three times gets
// the firing event on the fourth attempt, then the resolved one, in
// order, with the configured header and every field of the alert.
func TestWebhookRetriesThenDelivers(t *testing.T) {
	rcv := newReceiver(t, 3)
	cfg := Config{Webhook: &WebhookConfig{URL: rcv.URL + "/hook", Headers: map[string]string{"Authorization": "Bearer s3cret"}}}
	if err := cfg.Defaults(); err != nil {
		t.Fatal(err)
	}
	n := NewNotifier(quiet, fastRetry, NewWebhook(*cfg.Webhook))
	run(t, n)
	tr := NewTracker()
	a := Alert{ID: "rpo/db", Severity: Critical, Summary: "machine db: RPO 7200s above target 3600s", Since: t0.Add(-time.Hour)}
	n.Deliver(tr.Observe(t0, []Alert{a}))
	n.Deliver(tr.Observe(t0.Add(10*time.Second), []Alert{a})) // no transition, nothing sent
	n.Deliver(tr.Observe(t0.Add(20*time.Second), nil))

	fired, resolved := next(t, rcv.got), next(t, rcv.got)
	if fired.State != Firing || fired.ID != a.ID || fired.Severity != Critical || fired.Summary != a.Summary ||
		!fired.Since.Equal(a.Since) || !fired.Time.Equal(t0) || fired.Resolved != nil {
		t.Errorf("fired = %+v, want %+v firing at %v", fired, a, t0)
	}
	end := t0.Add(20 * time.Second)
	if resolved.State != Resolved || resolved.ID != a.ID || resolved.Resolved == nil || !resolved.Resolved.Equal(end) {
		t.Errorf("resolved = %+v, want %s resolved at %v", resolved, a.ID, end)
	}
	if h := next(t, rcv.headers); h.Get("Authorization") != "Bearer s3cret" {
		t.Errorf("header Authorization = %q", h.Get("Authorization"))
	}
	if got := rcv.count(); got != 5 {
		t.Errorf("receiver saw %d requests, want 3 refused + 2 accepted", got)
	}
	waitCount(t, n, "webhook", "ok", 2)
	if r := value(t, n.deliveries.WithLabelValues("webhook", "retry")); r != 3 {
		t.Errorf("retries counted %v, want 3", r)
	}
	if g := value(t, n.firing.WithLabelValues("rpo/db", "critical")); g != 0 {
		t.Errorf("haven_alerts{id=rpo/db} = %v after resolve, want 0", g)
	}
}

// TestWebhookGivesUp: a receiver that never accepts is tried exactly
// Attempts times, then the transition is counted as failed.
func TestWebhookGivesUp(t *testing.T) {
	rcv := newReceiver(t, 1<<30)
	n := NewNotifier(quiet, fastRetry, NewWebhook(WebhookConfig{URL: rcv.URL, Timeout: 10 * time.Second}))
	run(t, n)
	n.Deliver([]Event{{State: Firing, Time: t0, Alert: Alert{ID: "vault-check", Severity: Critical, Since: t0}}})
	waitCount(t, n, "webhook", "failed", 1)
	if got := rcv.count(); got != fastRetry.Attempts {
		t.Errorf("receiver saw %d requests, want %d", got, fastRetry.Attempts)
	}
}

type stuck struct{}

func (stuck) Name() string                            { return "stuck" }
func (stuck) Send(ctx context.Context, _ Event) error { <-ctx.Done(); return ctx.Err() }

// TestDeliverNeverBlocks: with a sink that never drains, Deliver still
// returns; what does not fit in the queue is dropped and counted.
func TestDeliverNeverBlocks(t *testing.T) {
	n := NewNotifier(quiet, fastRetry, stuck{}) // not running: nothing drains
	evs := make([]Event, queueLen+5)
	for i := range evs {
		evs[i] = Event{State: Firing, Time: t0, Alert: Alert{ID: "x", Severity: Warning}}
	}
	n.Deliver(evs)
	if d := value(t, n.deliveries.WithLabelValues("stuck", "dropped")); d != 5 {
		t.Errorf("dropped %v, want 5", d)
	}
	if g := value(t, n.firing.WithLabelValues("x", "warning")); g != 1 {
		t.Errorf("haven_alerts{id=x} = %v, want 1", g)
	}
}

func waitCount(t *testing.T, n *Notifier, sink, result string, want float64) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if value(t, n.deliveries.WithLabelValues(sink, result)) >= want {
			return
		}
	}
	t.Fatalf("%s %s never reached %v (at %v)", sink, result, want, value(t, n.deliveries.WithLabelValues(sink, result)))
}

func value(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}
