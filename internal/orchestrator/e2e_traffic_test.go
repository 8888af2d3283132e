package orchestrator

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/dns"
	"github.com/haven-dr/haven/internal/protection"
)

const (
	siteOld = "192.0.2.1"    // dc1, the primary
	siteNew = "198.51.100.1" // dc2, the recovery site
)

// killOnUpdate SIGKILLs one server as the dns step's first change is
// about to reach it: it never gets any of the failover's changes.
type killOnUpdate struct {
	Traffic
	once *sync.Once
	kill func()
}

func (k killOnUpdate) UpdateEndpoint(ctx context.Context, profile, ep string, p dns.EndpointPatch) error {
	k.once.Do(k.kill)
	return k.Traffic.UpdateEndpoint(ctx, profile, ep, p)
}

// TestDNSServerKilledMidFailover: one of three `haven dns` servers is
// SIGKILLed in the middle of the dns step. The failover completes on the
// other two (quorum), customers behind Unbound (stub zone listing all
// three) resolve the recovery site, and the killed server, restarted,
// answers the recovery site from its very first answer (it catches up
// from its peers before it opens its DNS socket), before and after the
// control plane's reconcile re-pushes.
func TestDNSServerKilledMidFailover(t *testing.T) {
	bin := buildHaven(t)
	ps := startCluster(t, bin, []string{"dnsa", "dnsb", "dnsc"}, clusterSpec{
		endpoints: [][2]string{{"dc1", siteOld}, {"dc2", siteNew}}})
	resolver := validatingResolver(t, ps)
	answersEventually(t, resolver, true, siteOld, 10*time.Second)
	w := clusterWorld(t, ps)
	victim := ps[2]
	var once sync.Once
	w.dial = func(tr *protection.Traffic) (Traffic, error) {
		c, err := DNSTraffic(tr)
		if err != nil || tr.API != victim.apiURL() {
			return c, err
		}
		return killOnUpdate{Traffic: c, once: &once, kill: victim.kill}, nil
	}
	j := w.run(PlannedFailover, "alpha", Params{})
	select {
	case <-victim.exited:
	default:
		t.Fatal("the victim was not killed during the failover")
	}
	out := w.outputs(j.ID)
	if len(out.DNSServers) != 3 || out.DNSServers[2].Error == "" {
		t.Errorf("the job does not report the killed server: %+v", out.DNSServers)
	}
	for _, p := range ps[:2] {
		answersEventually(t, p.dnsAddr(), false, siteNew, 5*time.Second)
	}
	signedAnswers(t, ps[:2]...)
	answersEventually(t, resolver, true, siteNew, 10*time.Second)

	victim.start()
	if got := victim.firstAnswer(); !slices.Equal(got, []string{siteNew}) {
		t.Fatalf("the restarted server's first answer is %v, want the recovery site %s", got, siteNew)
	}
	w.dial = DNSTraffic
	want := stateOf(t, ps[0]).Generation
	if g := stateOf(t, victim).Generation; g != want {
		t.Errorf("restarted server at generation %d, its peers at %d", g, want)
	}
	for _, st := range w.o.ReconcileTraffic(context.Background(), w.cfg.Traffic) {
		if !st.Reachable || st.Generation != want {
			t.Errorf("after reconcile: %+v, want reachable at generation %d", st, want)
		}
	}
	for range 10 {
		if got, err := askServer(victim.dnsAddr(), false); err != nil || !slices.Equal(got, []string{siteNew}) {
			t.Fatalf("restarted server answers %v (%v) after the reconcile", got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	signedAnswers(t, victim)
	answersEventually(t, resolver, true, siteNew, 5*time.Second)
}
