package orchestrator

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/dns"
	"github.com/haven-dr/haven/internal/orchestrator/orchtest"
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
)

// quorumWorld is a world whose traffic section lists three servers, each
// a fake of its own; down fails every call to the servers named.
func quorumWorld(t *testing.T, down ...string) (*world, map[string]*orchtest.Traffic) {
	fakes := map[string]*orchtest.Traffic{}
	var servers []string
	for i, n := range []string{"dnsa", "dnsb", "dnsc"} {
		f := orchtest.NewTraffic()
		for j, p := range planNames {
			f.AddProfile(p,
				dns.EndpointStatus{Name: "dc1", Target: fmt.Sprintf("192.0.2.%d", j+1), Enabled: true, Priority: 1},
				dns.EndpointStatus{Name: "dc2", Target: fmt.Sprintf("198.51.100.%d", j+1), Enabled: true, Priority: 2})
		}
		if slices.Contains(down, n) {
			f.SetHook(func(context.Context, orchtest.Call) error { return fmt.Errorf("%s: connection refused", n) })
		}
		api := fmt.Sprintf("http://127.0.0.1:%d", 1+i)
		fakes[api] = f
		servers = append(servers, fmt.Sprintf(`{name: %s, api: "%s"}`, n, api))
	}
	w := serversWorld(t, servers, func(tr *protection.Traffic) (Traffic, error) { return fakes[tr.API], nil },
		func(doc string) string { return doc })
	byName := map[string]*orchtest.Traffic{}
	for i, n := range []string{"dnsa", "dnsb", "dnsc"} {
		byName[n] = fakes[fmt.Sprintf("http://127.0.0.1:%d", 1+i)]
	}
	return w, byName
}

// TestCutOverQuorumWithOneServerDown: with one of three servers refusing
// every call, the dns step completes on the other two, and the job says
// which server did not answer the new site.
func TestCutOverQuorumWithOneServerDown(t *testing.T) {
	w, fakes := quorumWorld(t, "dnsc")
	j := w.run(PlannedFailover, "alpha", Params{})
	for _, n := range []string{"dnsa", "dnsb"} {
		if got := fakes[n].Answer("alpha"); !slices.Equal(got, []string{"198.51.100.1"}) {
			t.Errorf("%s answers %v after the failover, want the recovery site", n, got)
		}
	}
	if got := fakes["dnsc"].Answer("alpha"); !slices.Equal(got, []string{"192.0.2.1"}) {
		t.Errorf("dnsc (down) changed: %v", got)
	}
	out := w.outputs(j.ID)
	if !slices.ContainsFunc(out.Warnings, func(s string) bool { return strings.Contains(s, "dnsc") }) {
		t.Errorf("no warning names the server that missed the change: %q", out.Warnings)
	}
	if len(out.DNSServers) != 3 || out.DNSServers[2].Server != "dnsc" || out.DNSServers[2].Error == "" {
		t.Errorf("per-server answers: %+v", out.DNSServers)
	}
}

// TestCutOverWithoutQuorumFails: two of three servers down, the step
// cannot complete, and its error names them.
func TestCutOverWithoutQuorumFails(t *testing.T) {
	w, _ := quorumWorld(t, "dnsb", "dnsc")
	j := w.wait(w.submit(PlannedFailover, "alpha", Params{}).ID)
	if j.State == store.Succeeded {
		t.Fatal("the failover succeeded with one DNS server of three")
	}
	if !strings.Contains(j.Error, "1 of 3 servers") || !strings.Contains(j.Error, "dnsb") || !strings.Contains(j.Error, "dnsc") {
		t.Errorf("job error does not say which servers failed: %s", j.Error)
	}
}

// TestCutOverDoesNotWaitForSilentServer: a server that never answers the
// change (its call is held) does not hold the dns step: the majority's
// acknowledgement is enough, and the job names it in its warnings.
func TestCutOverDoesNotWaitForSilentServer(t *testing.T) {
	w, fakes := quorumWorld(t)
	b := fakes["dnsc"].Block("Traffic.UpdateEndpoint")
	t.Cleanup(b.Release)
	j := w.run(PlannedFailover, "alpha", Params{})
	select { // the job may end before the silent server's call has begun
	case <-b.Entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the change never reached the silent server")
	}
	if got := fakes["dnsa"].Answer("alpha"); !slices.Equal(got, []string{"198.51.100.1"}) {
		t.Errorf("dnsa answers %v", got)
	}
	if out := w.outputs(j.ID); !slices.ContainsFunc(out.Warnings, func(s string) bool { return strings.Contains(s, "dnsc") }) {
		t.Errorf("no warning names the silent server: %q", out.Warnings)
	}
}
