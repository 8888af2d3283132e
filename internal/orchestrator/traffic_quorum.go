package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/haven-dr/haven/internal/dns"
	"github.com/haven-dr/haven/internal/protection"
)

// StatefulTraffic is a traffic manager server that can report and take
// its endpoint overrides with their generations (`haven dns` /v1/state):
// what reconciling several servers needs.
type StatefulTraffic interface {
	State(ctx context.Context) (dns.ClusterState, error)
	PushState(ctx context.Context, ov []dns.EndpointOverride) (dns.ClusterState, error)
}

// trafficServer is one server of the traffic section; err is why it
// could not even be dialed.
type trafficServer struct {
	name string
	tr   Traffic
	err  error
}

// quorumTraffic is the traffic section's servers as one: every change
// goes to all of them with one generation, and a change or an answer
// counts when a majority has it.
type quorumTraffic struct {
	servers []trafficServer
	mu      sync.Mutex
	last    uint64 // newest generation seen or sent
}

// traffic dials every server of t (one for the single-server form).
func (o *Orchestrator) traffic(t *protection.Traffic) *quorumTraffic {
	q := &quorumTraffic{}
	for _, s := range t.List() {
		tr, err := o.Traffic(&protection.Traffic{API: s.API, TokenFile: s.TokenFile, NetNS: s.NetNS, Resolve: s.Resolve})
		q.servers = append(q.servers, trafficServer{name: s.Name, tr: tr, err: err})
	}
	return q
}

// quorum is a majority of the servers.
func (q *quorumTraffic) quorum() int { return len(q.servers)/2 + 1 }

// each calls f on every dialed server at once; errs[i] is server i's.
func (q *quorumTraffic) each(f func(i int, tr Traffic) error) []error {
	errs := make([]error, len(q.servers))
	var wg sync.WaitGroup
	for i, s := range q.servers {
		if s.err != nil {
			errs[i] = s.err
			continue
		}
		wg.Go(func() { errs[i] = f(i, s.tr) })
	}
	wg.Wait()
	return errs
}

// Profile is the profile as the server holding the newest change of it
// reports it, so a server that missed a change is not taken for the truth.
func (q *quorumTraffic) Profile(ctx context.Context, name string) (dns.ProfileStatus, error) {
	ps := make([]dns.ProfileStatus, len(q.servers))
	errs := q.each(func(i int, tr Traffic) (err error) {
		ps[i], err = tr.Profile(ctx, name)
		return err
	})
	best, bestGen := -1, uint64(0)
	for i, err := range errs {
		if err != nil {
			continue
		}
		if g := profileGeneration(ps[i]); best < 0 || g > bestGen {
			best, bestGen = i, g
		}
	}
	if best < 0 {
		return dns.ProfileStatus{}, q.joined(errs)
	}
	q.saw(bestGen)
	return ps[best], nil
}

func profileGeneration(p dns.ProfileStatus) uint64 {
	var g uint64
	if p.Override != nil {
		g = p.Override.Generation
	}
	for _, e := range p.Endpoints {
		if e.Override != nil {
			g = max(g, e.Override.Generation)
		}
	}
	return g
}

func (q *quorumTraffic) saw(g uint64) {
	q.mu.Lock()
	q.last = max(q.last, g)
	q.mu.Unlock()
}

func (q *quorumTraffic) next() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.last = dns.NextGeneration(q.last)
	return q.last
}

// UpdateEndpoint sends the change, with a new generation, to every
// server; it succeeds as soon as a majority acknowledged it, so a server
// that does not answer at all does not hold the step (its call goes on
// until its own timeout). The others catch up from their peers or the
// control plane's reconcile (ReconcileTraffic).
func (q *quorumTraffic) UpdateEndpoint(ctx context.Context, profile, ep string, p dns.EndpointPatch) error {
	return q.order(ctx, func(ctx context.Context, tr Traffic) error { return tr.UpdateEndpoint(ctx, profile, ep, p) })
}

// SetProfileTTL overrides the profile's TTL on every server (nil: the
// config's again), acknowledged by a majority as UpdateEndpoint.
func (q *quorumTraffic) SetProfileTTL(ctx context.Context, profile string, ttl *uint32) error {
	return q.order(ctx, func(ctx context.Context, tr Traffic) error {
		st, ok := tr.(TTLTraffic)
		if !ok {
			return errNoTTL
		}
		return st.SetProfileTTL(ctx, profile, ttl)
	})
}

// canSetTTL: every dialed server can override a profile's TTL.
func (q *quorumTraffic) canSetTTL() bool {
	n := 0
	for _, s := range q.servers {
		if _, ok := s.tr.(TTLTraffic); ok && s.err == nil {
			n++
		}
	}
	return n >= q.quorum()
}

// order sends one change with a new generation to every server.
func (q *quorumTraffic) order(ctx context.Context, f func(ctx context.Context, tr Traffic) error) error {
	ctx = dns.WithGeneration(ctx, q.next())
	type result struct {
		i   int
		err error
	}
	results := make(chan result, len(q.servers))
	for i, s := range q.servers {
		if s.err != nil {
			results <- result{i, s.err}
			continue
		}
		go func() { results <- result{i, f(ctx, s.tr)} }()
	}
	errs := make([]error, len(q.servers))
	ok := 0
	for range q.servers {
		r := <-results
		if errs[r.i] = r.err; r.err == nil {
			ok++
		}
		if ok >= q.quorum() {
			return nil
		}
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return fmt.Errorf("%d of %d servers took the change, %d needed: %w", ok, len(q.servers), q.quorum(), q.joined(errs))
}

// ServerAnswer is what one server of the traffic section answers for a
// name, asked over DNS.
type ServerAnswer struct {
	Server  string   `json:"server"`
	Answers []string `json:"answers,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// answersEach asks every server over DNS.
func (q *quorumTraffic) answersEach(ctx context.Context, name string) []ServerAnswer {
	out := make([]ServerAnswer, len(q.servers))
	errs := q.each(func(i int, tr Traffic) (err error) {
		out[i].Answers, err = tr.Answers(ctx, name)
		return err
	})
	for i, s := range q.servers {
		out[i].Server = s.name
		if errs[i] != nil {
			out[i].Error = errs[i].Error()
		}
	}
	return out
}

// onlyTarget splits the servers into those answering exactly target and
// the others, described for a log line.
func onlyTarget(as []ServerAnswer, target string) (ok int, others []string) {
	for _, a := range as {
		if a.Error == "" && len(a.Answers) > 0 && !slices.ContainsFunc(a.Answers, func(s string) bool { return s != target }) {
			ok++
			continue
		}
		why := fmt.Sprintf("answers %v", a.Answers)
		if a.Error != "" {
			why = a.Error
		}
		others = append(others, a.Server+" ("+why+")")
	}
	return ok, others
}

func count(errs []error) int {
	n := 0
	for _, err := range errs {
		if err == nil {
			n++
		}
	}
	return n
}

func (q *quorumTraffic) joined(errs []error) error {
	var out []error
	for i, err := range errs {
		if err != nil {
			out = append(out, fmt.Errorf("%s: %w", q.servers[i].name, err))
		}
	}
	return errors.Join(out...)
}
