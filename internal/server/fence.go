package server

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/haven-dr/haven/internal/agent"
	"github.com/haven-dr/haven/internal/dns"
	"github.com/haven-dr/haven/internal/fence"
	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/vnet"
)

// The orchestrator's host, agents and traffic manager are wrapped so that
// every order they pass on is fenced, whatever step gives it: right
// before it leaves, the leader checks on PostgreSQL that its epoch is
// still the lease's, and the order carries that epoch, which the
// receiver checks against the newest it has obeyed (package fence). The
// first check stops a leader that slept through its lease before it acts;
// the second stops one frozen between the check and the order.

// enterFn returns the context an order leaves with, or why it may not.
type enterFn func(ctx context.Context) (context.Context, error)

// enter fences one order of this server: without HA (l nil) there is no
// epoch to check or carry. The epoch is the one this process won; it is
// 0 once the lease is lost, and a process never leads twice (ha.go).
func (l *lease) enter(ctx context.Context) (context.Context, error) {
	if l == nil {
		return ctx, nil
	}
	e := l.epoch.Load()
	if e == 0 {
		return nil, store.ErrNotLeader
	}
	if err := l.pg.CheckEpoch(ctx, e); err != nil {
		return nil, fmt.Errorf("before an order to the recovery site, agents or DNS (epoch %d): %w", e, err)
	}
	return fence.WithEpoch(ctx, e), nil
}

// fencedHost fences the orders of a Host; its reads pass as they are.
type fencedHost struct {
	host.Host
	enter enterFn
}

func (h fencedHost) EnsureSite(ctx context.Context, site string, nets []vnet.Network, edge string) error {
	ctx, err := h.enter(ctx)
	if err != nil {
		return err
	}
	return h.Host.EnsureSite(ctx, site, nets, edge)
}

func (h fencedHost) Publish(ctx context.Context, site, name string, rules []host.PublishRule) error {
	ctx, err := h.enter(ctx)
	if err != nil {
		return err
	}
	return h.Host.Publish(ctx, site, name, rules)
}

func (h fencedHost) Unpublish(ctx context.Context, site, name string) error {
	ctx, err := h.enter(ctx)
	if err != nil {
		return err
	}
	return h.Host.Unpublish(ctx, site, name)
}

func (h fencedHost) RemoveSite(ctx context.Context, site string) error {
	ctx, err := h.enter(ctx)
	if err != nil {
		return err
	}
	return h.Host.RemoveSite(ctx, site)
}

func (h fencedHost) PrepareDisk(ctx context.Context, req host.DiskRequest) (*host.DiskResult, error) {
	ctx, err := h.enter(ctx)
	if err != nil {
		return nil, err
	}
	return h.Host.PrepareDisk(ctx, req)
}

func (h fencedHost) RemoveDisk(ctx context.Context, path string) error {
	ctx, err := h.enter(ctx)
	if err != nil {
		return err
	}
	return h.Host.RemoveDisk(ctx, path)
}

func (h fencedHost) UpdateStandby(ctx context.Context, m, disk, point string) (*host.DiskResult, error) {
	ctx, err := h.enter(ctx)
	if err != nil {
		return nil, err
	}
	return h.Host.UpdateStandby(ctx, m, disk, point)
}

func (h fencedHost) StartMachine(ctx context.Context, site, driver string, spec machine.Spec) error {
	ctx, err := h.enter(ctx)
	if err != nil {
		return err
	}
	return h.Host.StartMachine(ctx, site, driver, spec)
}

func (h fencedHost) StopMachine(ctx context.Context, site, name string) error {
	ctx, err := h.enter(ctx)
	if err != nil {
		return err
	}
	return h.Host.StopMachine(ctx, site, name)
}

// Fence tells the host this leader's epoch (host.Fencer); a host that
// cannot be told needs no telling.
func (h fencedHost) Fence(ctx context.Context) error {
	ctx, err := h.enter(ctx)
	if err != nil {
		return err
	}
	if f, ok := h.Host.(host.Fencer); ok {
		return f.Fence(ctx)
	}
	return nil
}

// fenceHosts tells every host the epoch of a leader that just took over,
// before it resumes any job, so that from then on the hosts refuse the
// orders of the leaders before it, including those to a host the resumed
// job never gives an order again (a machine of a group that passed). It
// returns the hosts that did not take it.
func (s *Server) fenceHosts(ctx context.Context, hs []orchestrator.SiteHost) []orchestrator.SiteHost {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var failed []orchestrator.SiteHost
	for _, h := range hs {
		f, ok := h.Host.(host.Fencer)
		if !ok {
			continue
		}
		wg.Go(func() {
			fctx, cancel := context.WithTimeout(ctx, fenceTimeout)
			defer cancel()
			if err := f.Fence(fctx); err != nil {
				s.log.Warn("recovery host not told the new leader's epoch yet", "host", h.Name, "err", err)
				mu.Lock()
				failed = append(failed, h)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return failed
}

// fenceLoop tells the hosts that did not answer at takeover until they
// all have taken the epoch (a host that comes back) or ctx ends.
func (s *Server) fenceLoop(ctx context.Context, hs []orchestrator.SiteHost) {
	for len(hs) > 0 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(fenceTimeout):
		}
		hs = s.fenceHosts(ctx, hs)
	}
}

// fenceTimeout bounds telling one host the epoch.
const fenceTimeout = 5 * time.Second

// StandbyPoint passes through: the orchestrator looks for it by type.
func (h fencedHost) StandbyPoint(m, disk string) string {
	if sh, ok := h.Host.(orchestrator.StandbyHost); ok {
		return sh.StandbyPoint(m, disk)
	}
	return ""
}

// Standbys passes through (a read); a host that keeps no list has none.
func (h fencedHost) Standbys(ctx context.Context) ([]host.StandbyImage, error) {
	if sk, ok := h.Host.(host.StandbyKeeper); ok {
		return sk.Standbys(ctx)
	}
	return nil, nil
}

// RemoveStandby is an order: fenced like the others.
func (h fencedHost) RemoveStandby(ctx context.Context, m, disk string) error {
	ctx, err := h.enter(ctx)
	if err != nil {
		return err
	}
	if sk, ok := h.Host.(host.StandbyKeeper); ok {
		return sk.RemoveStandby(ctx, m, disk)
	}
	return nil
}

// EnsureOverlay is an order: fenced like the others, for a host that has
// an overlay (host.OverlayHost).
func (h fencedHost) EnsureOverlay(ctx context.Context, site string, o host.Overlay) error {
	ctx, err := h.enter(ctx)
	if err != nil {
		return err
	}
	oh, ok := h.Host.(host.OverlayHost)
	if !ok {
		return fmt.Errorf("host: this recovery host has no overlay")
	}
	return oh.EnsureOverlay(ctx, site, o)
}

// UnderlayAddr passes through (a read); a host without an overlay has
// no underlay address.
func (h fencedHost) UnderlayAddr(ctx context.Context) (netip.Addr, error) {
	if oh, ok := h.Host.(host.OverlayHost); ok {
		return oh.UnderlayAddr(ctx)
	}
	return netip.Addr{}, nil
}

// CheckRunning passes through (a read); a host that cannot fail to
// answer says what Running says.
func (h fencedHost) CheckRunning(ctx context.Context, site, name string) (bool, error) {
	if rc, ok := h.Host.(host.RunningChecker); ok {
		return rc.CheckRunning(ctx, site, name)
	}
	return h.Host.Running(site, name), nil
}

// fencedAgents fences the orders given to every agent dial dials.
func fencedAgents(dial orchestrator.AgentDialer, enter enterFn) orchestrator.AgentDialer {
	return func(a protection.Agent) (orchestrator.AgentClient, error) {
		c, err := dial(a)
		if err != nil {
			return nil, err
		}
		return fencedAgent{c, enter}, nil
	}
}

type fencedAgent struct {
	orchestrator.AgentClient
	enter enterFn
}

func (c fencedAgent) Stop(ctx context.Context, m string) error {
	ctx, err := c.enter(ctx)
	if err != nil {
		return err
	}
	return c.AgentClient.Stop(ctx, m)
}

func (c fencedAgent) Start(ctx context.Context, m string) error {
	ctx, err := c.enter(ctx)
	if err != nil {
		return err
	}
	return c.AgentClient.Start(ctx, m)
}

func (c fencedAgent) Snapshot(ctx context.Context, m string) (map[string]string, error) {
	ctx, err := c.enter(ctx)
	if err != nil {
		return nil, err
	}
	return c.AgentClient.Snapshot(ctx, m)
}

func (c fencedAgent) Restore(ctx context.Context, m string, req agent.RestoreRequest) (*agent.RestoreResult, error) {
	ctx, err := c.enter(ctx)
	if err != nil {
		return nil, err
	}
	return c.AgentClient.Restore(ctx, m, req)
}

// fencedTraffic fences the endpoint changes of the traffic manager.
func fencedTraffic(dial orchestrator.TrafficDialer, enter enterFn) orchestrator.TrafficDialer {
	return func(t *protection.Traffic) (orchestrator.Traffic, error) {
		tr, err := dial(t)
		if err != nil {
			return nil, err
		}
		return fencedTrafficClient{tr, enter}, nil
	}
}

type fencedTrafficClient struct {
	orchestrator.Traffic
	enter enterFn
}

func (t fencedTrafficClient) UpdateEndpoint(ctx context.Context, profile, ep string, p dns.EndpointPatch) error {
	ctx, err := t.enter(ctx)
	if err != nil {
		return err
	}
	return t.Traffic.UpdateEndpoint(ctx, profile, ep, p)
}

// SetProfileTTL is an order: fenced like UpdateEndpoint.
func (t fencedTrafficClient) SetProfileTTL(ctx context.Context, profile string, ttl *uint32) error {
	st, ok := t.Traffic.(orchestrator.TTLTraffic)
	if !ok {
		return fmt.Errorf("this traffic manager cannot change a profile's TTL")
	}
	ctx, err := t.enter(ctx)
	if err != nil {
		return err
	}
	return st.SetProfileTTL(ctx, profile, ttl)
}

// State passes through (a read) when the server has it.
func (t fencedTrafficClient) State(ctx context.Context) (dns.ClusterState, error) {
	st, ok := t.Traffic.(orchestrator.StatefulTraffic)
	if !ok {
		return dns.ClusterState{}, fmt.Errorf("traffic manager without state")
	}
	return st.State(ctx)
}

// PushState is an order: fenced like UpdateEndpoint.
func (t fencedTrafficClient) PushState(ctx context.Context, ov []dns.EndpointOverride) (dns.ClusterState, error) {
	st, ok := t.Traffic.(orchestrator.StatefulTraffic)
	if !ok {
		return dns.ClusterState{}, fmt.Errorf("traffic manager without state")
	}
	ctx, err := t.enter(ctx)
	if err != nil {
		return dns.ClusterState{}, err
	}
	return st.PushState(ctx, ov)
}
