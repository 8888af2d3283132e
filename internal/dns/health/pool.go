package health

import "sync"

// Target is one endpoint to watch.
type Target struct {
	Profile, Endpoint, Host string
	Spec                    Spec
}

func (t Target) key() string {
	return t.identity() + "\x00" + t.Spec.Key()
}

// identity is the probed endpoint regardless of how it is probed: health
// known for it stays meaningful under a new monitor, not under a new address.
func (t Target) identity() string {
	return t.Profile + "\x00" + t.Endpoint + "\x00" + t.Host
}

// Pool owns the running checkers. Sync replaces the watched set, keeping the
// checkers (and therefore the states) of targets that did not change. A
// target whose monitor changed gets a new checker that starts from the old
// one's verdict, so a reload never sends a known-dead endpoint back to
// CheckingEndpoint (which routing would otherwise treat as usable).
type Pool struct {
	hooks Hooks

	mu       sync.Mutex
	checkers map[string]*Checker
}

// NewPool returns an empty pool.
func NewPool(h Hooks) *Pool { return &Pool{hooks: h, checkers: map[string]*Checker{}} }

// Sync starts checkers for new targets, stops those no longer wanted, and
// returns the checker of every target, index for index.
func (p *Pool) Sync(targets []Target) ([]*Checker, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	next := make(map[string]*Checker, len(targets))
	out := make([]*Checker, len(targets))
	var started []*Checker
	known := p.verdicts()
	for i, t := range targets {
		k := t.key()
		c := next[k]
		if c == nil {
			c = p.checkers[k]
		}
		if c == nil {
			pr, err := NewProber(t.Spec)
			if err != nil {
				return nil, err
			}
			c = NewChecker(t.Profile, t.Endpoint, t.Host, t.Spec, pr, p.hooks)
			if old := known[t.identity()]; old != nil {
				c.seed(old)
			}
			started = append(started, c)
		}
		next[k], out[i] = c, c
	}
	for k, c := range p.checkers {
		if next[k] == nil {
			c.Stop()
		}
	}
	for _, c := range started {
		c.Start()
	}
	p.checkers = next
	return out, nil
}

// verdicts indexes the running checkers by endpoint identity.
func (p *Pool) verdicts() map[string]*Checker {
	m := make(map[string]*Checker, len(p.checkers))
	for _, c := range p.checkers {
		m[Target{Profile: c.Profile, Endpoint: c.Endpoint, Host: c.Host}.identity()] = c
	}
	return m
}

// Close stops every checker.
func (p *Pool) Close() {
	_, _ = p.Sync(nil)
}
