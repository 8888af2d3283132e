package health

import "sync"

// Target is one endpoint to watch.
type Target struct {
	Profile, Endpoint, Host string
	Spec                    Spec
}

func (t Target) key() string {
	return t.Profile + "\x00" + t.Endpoint + "\x00" + t.Host + "\x00" + t.Spec.Key()
}

// Pool owns the running checkers. Sync replaces the watched set, keeping the
// checkers (and therefore the states) of targets that did not change, so a
// config reload never sends an endpoint back to CheckingEndpoint.
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

// Close stops every checker.
func (p *Pool) Close() {
	_, _ = p.Sync(nil)
}
