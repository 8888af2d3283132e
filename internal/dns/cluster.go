package dns

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/haven-dr/haven/internal/dns/health"
)

// ClusterState is what a server tells its peers and the control plane:
// the overrides it holds (each with its generation), its own probes'
// verdicts, and what it last heard from its peers.
type ClusterState struct {
	Server     string             `json:"server"`
	Generation uint64             `json:"generation"` // the newest override's; 0: none
	Overrides  []EndpointOverride `json:"overrides"`
	Probes     []ProbeVerdict     `json:"probes,omitempty"`
	Peers      []PeerStatus       `json:"peers,omitempty"`
}

// ProbeVerdict is one endpoint's state by this server's own probes.
type ProbeVerdict struct {
	Profile  string `json:"profile"`
	Endpoint string `json:"endpoint"`
	State    string `json:"state"`
}

// PeerStatus is what this server last heard from a peer.
type PeerStatus struct {
	Name       string    `json:"name"`
	Reachable  bool      `json:"reachable"`
	Error      string    `json:"error,omitempty"`
	Generation uint64    `json:"generation"`
	Seen       time.Time `json:"seen,omitzero"` // last successful pull
}

// peerTimeout bounds one pull from a peer: generous, since a pull that
// times out costs the peer its vote (a loaded peer is not a dead one).
const peerTimeout = 2 * time.Second

// peerView is a peer's last pulled state.
type peerView struct {
	status PeerStatus
	probes map[string]string // key(profile, endpoint) -> state
}

// cluster is the run-time side of the cluster section: peer clients and
// the peers' last states.
type cluster struct {
	mu      sync.Mutex
	clients map[peerConf]*Client
	views   map[string]peerView
	done    chan struct{}
	stop    sync.Once
}

// ClusterState reports this server's state.
func (s *Server) ClusterState() ClusterState {
	t := s.table.Load()
	st := ClusterState{Server: t.listen, Overrides: s.overrides().list()}
	if t.cluster != nil {
		st.Server = t.cluster.name
	}
	for _, o := range st.Overrides {
		st.Generation = max(st.Generation, o.Generation)
	}
	for _, p := range t.profiles {
		for _, e := range p.endpoints {
			if e.checker != nil {
				st.Probes = append(st.Probes, ProbeVerdict{p.name, e.name, e.checker.State().String()})
			}
		}
	}
	s.cl.mu.Lock()
	for _, pc := range peersOf(t) {
		if v, ok := s.cl.views[pc.name]; ok {
			st.Peers = append(st.Peers, v.status)
		} else {
			st.Peers = append(st.Peers, PeerStatus{Name: pc.name, Error: "not asked yet"})
		}
	}
	s.cl.mu.Unlock()
	return st
}

// Merge adopts every override newer (by generation) than the one held for
// its endpoint, persisting them before they take effect; older or equal
// ones are ignored, so a replay can never bring an older decision back.
// It returns how many were adopted.
func (s *Server) Merge(in []EndpointOverride) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next, adopted := s.overrides(), map[string]Override{}
	for _, o := range in {
		if err := o.check(); err != nil {
			return 0, fmt.Errorf("%s/%s: %w", o.Profile, o.Endpoint, err)
		}
		k := key(canonical(o.Profile), o.Endpoint)
		if o.Generation == 0 || o.Generation <= next[k].Generation {
			continue
		}
		next, adopted[k] = next.with(k, o.Override), o.Override
	}
	if len(adopted) == 0 {
		return 0, nil
	}
	if err := s.keep(next); err != nil {
		return 0, err
	}
	t := s.table.Load()
	for _, p := range t.profiles {
		if o, ok := adopted[key(p.name, "")]; ok {
			o.applyProfile(p)
			s.log.Info("profile change adopted", "profile", p.name, "generation", o.Generation, "ttl", p.answerTTL())
		}
		for _, e := range p.endpoints {
			if o, ok := adopted[key(p.name, e.name)]; ok {
				e.reset()
				o.apply(e)
				s.log.Info("endpoint change adopted", "profile", p.name, "endpoint", e.name,
					"generation", o.Generation, "enabled", e.enabled.Load(), "priority", e.priority.Load())
			}
		}
	}
	return len(adopted), nil
}

// heardAll: every peer answered the last pull.
func (s *Server) heardAll(c *clusterConf) bool {
	s.cl.mu.Lock()
	defer s.cl.mu.Unlock()
	for _, pc := range c.peers {
		if !s.cl.views[pc.name].status.Reachable {
			return false
		}
	}
	return true
}

func (s *Server) clustered() bool { return s.table.Load().cluster != nil }

func peersOf(t *table) []peerConf {
	if t.cluster == nil {
		return nil
	}
	return t.cluster.peers
}

// catchUp pulls the peers' state once, bounded by startup_wait: a server
// that was down adopts what they acknowledged meanwhile before it answers.
// The peer loop has not started yet, so the peers' views are only this
// goroutine's.
func (s *Server) catchUp() {
	if c := s.table.Load().cluster; c != nil && len(c.peers) > 0 {
		// Asked again until every peer answered or startup_wait is over:
		// a peer slow to answer or itself restarting is not skipped at once.
		deadline := time.Now().Add(c.startupWait)
		for {
			ctx, cancel := context.WithDeadline(context.Background(), deadline)
			s.pullPeers(ctx, c)
			cancel()
			if s.heardAll(c) || time.Now().Add(200*time.Millisecond).After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		// Under probe_quorum the peers' verdicts count before this
		// server's own first probe: it does not send customers back to
		// a site they see down.
		s.vote(c)
	}
}

// startCluster keeps pulling every interval until Close.
func (s *Server) startCluster() {
	s.cl.done = make(chan struct{})
	s.wg.Go(s.clusterLoop)
}

func (s *Server) clusterLoop() {
	for {
		wait := defaultPeerInterval
		if c := s.table.Load().cluster; c != nil {
			wait = c.interval
			ctx, cancel := context.WithTimeout(context.Background(), peerTimeout)
			s.pullPeers(ctx, c)
			cancel()
			s.vote(c)
		}
		select {
		case <-s.cl.done:
			return
		case <-time.After(wait):
		}
	}
}

// pullPeers asks every peer for its state at once and adopts the newer
// overrides each has.
func (s *Server) pullPeers(ctx context.Context, c *clusterConf) {
	var wg sync.WaitGroup
	for _, pc := range c.peers {
		wg.Go(func() {
			v := peerView{status: PeerStatus{Name: pc.name}}
			st, err := s.peerClient(pc)
			if err == nil {
				var cs ClusterState
				cs, err = st.State(ctx)
				if err == nil {
					v = s.sawPeer(pc.name, cs)
				}
			}
			s.cl.mu.Lock()
			defer s.cl.mu.Unlock()
			if err != nil {
				old := s.cl.views[pc.name]
				v.status, v.probes = old.status, old.probes
				v.status.Name, v.status.Reachable, v.status.Error = pc.name, false, err.Error()
			}
			s.cl.views[pc.name] = v
		})
	}
	wg.Wait()
}

// sawPeer adopts a peer's newer overrides and keeps its probe verdicts.
func (s *Server) sawPeer(name string, cs ClusterState) peerView {
	v := peerView{status: PeerStatus{Name: name, Reachable: true, Generation: cs.Generation, Seen: time.Now().UTC()},
		probes: map[string]string{}}
	if n, err := s.Merge(cs.Overrides); err != nil {
		s.log.Warn("peer's endpoint changes not adopted", "peer", name, "err", err)
	} else if n > 0 {
		s.log.Info("adopted newer endpoint changes from a peer", "peer", name, "count", n)
	}
	for _, p := range cs.Probes {
		v.probes[key(canonical(p.Profile), p.Endpoint)] = p.State
	}
	return v
}

func (s *Server) peerClient(pc peerConf) (*Client, error) {
	s.cl.mu.Lock()
	defer s.cl.mu.Unlock()
	if c := s.cl.clients[pc]; c != nil {
		return c, nil
	}
	c, err := NewClient(pc.api, ClientOptions{TokenFile: pc.tokenFile, CAFile: pc.caFile, Timeout: peerTimeout})
	if err != nil {
		return nil, err
	}
	s.cl.clients[pc] = c
	return c, nil
}

// vote sets each monitored endpoint's verdict under probe_quorum: down
// when at least quorum servers (this one included) see it down in their
// own probes, else up as this server sees it (a locally failing probe
// alone counts as Online). A peer not heard from within three intervals
// and a pull's timeout
// has no vote; with fewer voters than the quorum, or without
// probe_quorum, the local checker decides.
func (s *Server) vote(c *clusterConf) {
	fresh := time.Now().Add(-3*c.interval - peerTimeout)
	s.cl.mu.Lock()
	var views []peerView
	for _, pc := range c.peers { // a peer a reload removed has no vote
		if v, ok := s.cl.views[pc.name]; ok && v.status.Reachable && v.status.Seen.After(fresh) {
			views = append(views, v)
		}
	}
	s.cl.mu.Unlock()
	for _, p := range s.table.Load().profiles {
		for _, e := range p.endpoints {
			if e.checker == nil {
				continue
			}
			if c.quorum == 0 {
				e.voted.Store(0)
				continue
			}
			e.voted.Store(int32(quorumVerdict(e.checker.State(), views, key(p.name, e.name), c.quorum)) + 1)
		}
	}
}

func quorumVerdict(local health.State, views []peerView, k string, quorum int) health.State {
	if len(views)+1 < quorum {
		// Too few servers heard from to ever make a quorum (peers down or
		// unreachable): this server's own probes decide, so health
		// failover goes on with dead peers. A server cut off from both
		// the endpoints and its peers is most likely cut off from its
		// customers too.
		return local
	}
	down, peerUp := 0, false
	if local == health.Degraded {
		down++
	}
	for _, v := range views {
		switch v.probes[k] {
		case health.Degraded.String():
			down++
		case health.Online.String():
			peerUp = true
		}
	}
	switch {
	case down >= quorum:
		return health.Degraded
	case local == health.Degraded, local == health.CheckingEndpoint && peerUp:
		// Not down by the quorum's count, and proven up by a peer when
		// this server has no verdict of its own yet.
		return health.Online
	}
	return local
}

// health is the endpoint's probe verdict: the cluster's under
// probe_quorum, else its own checker's.
func (e *endpoint) health() health.State {
	if v := e.voted.Load(); v != 0 {
		return health.State(v - 1)
	}
	return e.checker.State()
}

func (s *Server) stopCluster() {
	s.cl.stop.Do(func() {
		if s.cl.done != nil {
			close(s.cl.done)
		}
	})
}
