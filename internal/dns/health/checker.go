package health

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Result is one probe outcome.
type Result struct {
	OK       bool
	Err      error
	Duration time.Duration
}

// Hooks receive what a checker observes; either may be nil.
type Hooks struct {
	Result func(c *Checker, r Result)
	Change func(c *Checker, from, to State, reason string)
}

// Checker probes one address periodically and keeps its state.
type Checker struct {
	Profile, Endpoint, Host string

	spec   Spec
	prober Prober
	hooks  Hooks
	state  atomic.Int32

	mu      sync.Mutex
	m       machine
	lastErr string

	stop context.CancelFunc
	done chan struct{}
}

// NewChecker returns a stopped checker in state CheckingEndpoint.
func NewChecker(profile, endpoint, host string, spec Spec, p Prober, h Hooks) *Checker {
	c := &Checker{Profile: profile, Endpoint: endpoint, Host: host, spec: spec, prober: p, hooks: h}
	c.m = newMachine(spec.ToleratedFailures, spec.RequiredSuccesses)
	return c
}

// seed starts a not yet started checker from the verdict of the checker it
// replaces. Only a verdict is carried: CheckingEndpoint has none to give.
// The anti-flap counters start afresh under the new settings.
func (c *Checker) seed(old *Checker) {
	s := old.State()
	if s != Online && s != Degraded {
		return
	}
	c.m.state = s
	c.state.Store(int32(s))
	c.lastErr = old.LastError()
}

// State is safe to call from the query path: one atomic load.
func (c *Checker) State() State { return State(c.state.Load()) }

// LastError is the reason of the last failed probe, "" after a success.
func (c *Checker) LastError() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// Start runs the probe loop until Stop. The first probe is immediate.
func (c *Checker) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.stop, c.done = cancel, make(chan struct{})
	go c.loop(ctx)
}

// Stop ends the loop and waits for it.
func (c *Checker) Stop() {
	if c.stop != nil {
		c.stop()
		<-c.done
	}
}

func (c *Checker) loop(ctx context.Context) {
	defer close(c.done)
	t := time.NewTicker(c.spec.Interval)
	defer t.Stop()
	for {
		c.ProbeOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ProbeOnce runs one probe and feeds the state machine.
func (c *Checker) ProbeOnce(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, c.spec.Timeout)
	start := time.Now()
	err := c.prober.Probe(pctx, c.Host)
	cancel()
	if ctx.Err() != nil {
		return // shutting down: not the endpoint's fault
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = errTimeout
	}
	c.record(Result{OK: err == nil, Err: err, Duration: time.Since(start)})
}

var errTimeout = errors.New("probe timed out")

func (c *Checker) record(r Result) {
	c.mu.Lock()
	from := c.m.state
	changed := c.m.observe(r.OK)
	to := c.m.state
	c.lastErr = ""
	if r.Err != nil {
		c.lastErr = r.Err.Error()
	}
	c.state.Store(int32(to))
	c.mu.Unlock()
	if c.hooks.Result != nil {
		c.hooks.Result(c, r)
	}
	if changed && c.hooks.Change != nil {
		c.hooks.Change(c, from, to, reason(r))
	}
}

func reason(r Result) string {
	if r.OK {
		return "probe succeeded"
	}
	return r.Err.Error()
}
