package orchestrator

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/dns"
	"github.com/haven-dr/haven/internal/dns/health"
	"github.com/haven-dr/haven/internal/testenv"
)

// httpSites starts a real HTTP server on each address (same port) and
// returns them with the port.
func httpSites(t *testing.T, hosts ...string) ([]*testenv.HTTPEndpoint, int) {
	ls, port := testenv.LoopbackListeners(t, hosts...)
	var out []*testenv.HTTPEndpoint
	for _, l := range ls {
		out = append(out, testenv.NewHTTPEndpoint(t, l, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})))
	}
	return out, port
}

// localVerdict waits until p's own probes find endpoint in state.
func localVerdict(t *testing.T, p *dnsProc, endpoint string, state health.State) {
	t.Helper()
	testenv.Eventually(t, 15*time.Second, p.name+"'s own probe of "+endpoint+" "+state.String(), func() bool {
		for _, v := range stateOf(t, p).Probes {
			if v.Endpoint == endpoint && v.State == state.String() {
				return true
			}
		}
		return false
	})
}

// holds checks that addr answers want on every query for d.
func holds(t *testing.T, addr string, rd bool, want string, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if got, err := askServer(addr, rd); err != nil || !slices.Equal(got, []string{want}) {
			t.Fatalf("%s answers %v (%v), want %s throughout", addr, got, err, want)
		}
	}
}

// TestDNSServerCutOffFromEndpoints: one of three servers cannot reach the
// primary endpoint (its probes of it go to an address where nothing
// listens) while customers still reach it. With probe_quorum 2 it keeps
// answering the primary, as the two others see it up; once the primary
// is really down for all, every server moves. Without probe_quorum (the
// control case) the cut-off server moves its customers on its own.
func TestDNSServerCutOffFromEndpoints(t *testing.T) {
	bin := buildHaven(t)
	for _, tc := range []struct {
		name   string
		quorum int
	}{{"probe_quorum 2", 2}, {"local probes", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			sites, port := httpSites(t, "127.0.0.21", "127.0.0.22")
			ps := startCluster(t, bin, []string{"dnsa", "dnsb", "dnsc"}, clusterSpec{
				endpoints:   [][2]string{{"dc1", "127.0.0.21"}, {"dc2", "127.0.0.22"}},
				monitorPort: port, quorum: tc.quorum, cutOff: map[string][]string{"dnsc": {"dc1"}}})
			cut := ps[2]
			localVerdict(t, cut, "dc1", health.Degraded)
			localVerdict(t, ps[0], "dc1", health.Online)
			if tc.quorum == 0 {
				answersEventually(t, cut.dnsAddr(), false, "127.0.0.22", 5*time.Second)
				return
			}
			resolver := validatingResolver(t, ps)
			holds(t, cut.dnsAddr(), false, "127.0.0.21", 3*time.Second)
			holds(t, resolver, true, "127.0.0.21", time.Second)

			sites[0].Stop() // the primary is down for everyone now
			for _, p := range ps {
				answersEventually(t, p.dnsAddr(), false, "127.0.0.22", 10*time.Second)
			}
			answersEventually(t, resolver, true, "127.0.0.22", 10*time.Second)
			signedAnswers(t, ps...)
		})
	}
}

// TestDNSServersWithoutControlPlane: the control plane's last decision
// (dc2 disabled) is kept by every server after the control plane is gone,
// and the servers still fail over on health alone: the primary goes
// down, customers get dc3 (never the disabled dc2), a server restarted
// meanwhile answers dc3 (and keeps the decision), and the primary's
// return brings customers back to it.
func TestDNSServersWithoutControlPlane(t *testing.T) {
	bin := buildHaven(t)
	sites, port := httpSites(t, "127.0.0.31", "127.0.0.32", "127.0.0.33")
	ps := startCluster(t, bin, []string{"dnsa", "dnsb", "dnsc"}, clusterSpec{
		endpoints:   [][2]string{{"dc1", "127.0.0.31"}, {"dc2", "127.0.0.32"}, {"dc3", "127.0.0.33"}},
		monitorPort: port, quorum: 2})
	resolver := validatingResolver(t, ps)
	w := clusterWorld(t, ps)
	off := false
	if err := w.o.traffic(w.cfg.Traffic).UpdateEndpoint(context.Background(), trafficProfile, "dc2",
		dns.EndpointPatch{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		localVerdict(t, p, "dc1", health.Online)
		answersEventually(t, p.dnsAddr(), false, "127.0.0.31", 5*time.Second)
	}
	w.o.Close() // the control plane is gone from here on

	sites[0].Stop()
	for _, p := range ps {
		answersEventually(t, p.dnsAddr(), false, "127.0.0.33", 10*time.Second)
	}
	answersEventually(t, resolver, true, "127.0.0.33", 10*time.Second)
	signedAnswers(t, ps...)

	ps[1].kill()
	ps[1].start()
	ps[1].waitAPI()
	answersEventually(t, ps[1].dnsAddr(), false, "127.0.0.33", 10*time.Second)
	holds(t, ps[1].dnsAddr(), false, "127.0.0.33", 2*time.Second)
	signedAnswers(t, ps[1])

	sites[0].Start()
	for _, p := range ps {
		answersEventually(t, p.dnsAddr(), false, "127.0.0.31", 10*time.Second)
	}
	answersEventually(t, resolver, true, "127.0.0.31", 10*time.Second)
	signedAnswers(t, ps...)
}
