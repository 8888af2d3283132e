package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/haven-dr/haven/internal/orchestrator/orchtest"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/testenv"
)

// answerAndTTL asks one server directly for the profile's A record.
func answerAndTTL(addr string) (string, uint32, error) {
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(trafficProfile), mdns.TypeA)
	r, _, err := (&mdns.Client{Timeout: 3 * time.Second}).Exchange(m, addr)
	if err != nil {
		return "", 0, err
	}
	if len(r.Answer) != 1 {
		return "", 0, fmt.Errorf("answer %v", r.Answer)
	}
	a, ok := r.Answer[0].(*mdns.A)
	if !ok {
		return "", 0, fmt.Errorf("answer %v", r.Answer)
	}
	return a.A.String(), a.Hdr.Ttl, nil
}

// TestPlannedFailoverLowersTTL: a planned failover, against three real
// `haven dns` servers (TTL 1), has every server answer the primary with TTL
// 0 when the primaries stop, so resolvers hold no answer that outlives the
// cut-over; once it is done they answer the recovery site with the
// config's TTL again. A planned failover that fails at the stop puts the
// config's TTL back when it is canceled. A failback lowers it the same
// way before it stops the recovery machines.
func TestPlannedFailoverLowersTTL(t *testing.T) {
	bin := buildHaven(t)
	ps := startCluster(t, bin, []string{"dnsa", "dnsb", "dnsc"}, clusterSpec{
		endpoints: [][2]string{{"dc1", siteOld}, {"dc2", siteNew}}})
	w := clusterWorld(t, ps)

	type seen struct {
		server, addr string
		ttl          uint32
		err          error
	}
	var mu sync.Mutex
	var atStop []seen
	// record asks every server what it answers now.
	record := func() error {
		for _, p := range ps {
			a, ttl, err := answerAndTTL(p.dnsAddr())
			mu.Lock()
			atStop = append(atStop, seen{p.name, a, ttl, err})
			mu.Unlock()
		}
		return nil
	}
	w.agents.SetHook(func(_ context.Context, c orchtest.Call) error {
		if c.Method != "Agent.Stop" {
			return nil
		}
		return record()
	})

	// A failed one first: the stop fails, the job is undone.
	w.agents.FailNext("Agent.Stop", errors.New("stop refused"))
	j := w.wait(w.submit(PlannedFailover, "alpha", Params{}).ID)
	if j.State == store.Succeeded {
		t.Fatal("the planned failover succeeded although the stop failed")
	}
	if len(atStop) == 0 {
		t.Fatal("no stop was asked of the agent")
	}
	for _, s := range atStop {
		if s.err != nil || s.addr != siteOld || s.ttl != 0 {
			t.Errorf("%s at the (failed) stop: %s TTL %d (%v), want %s with TTL 0", s.server, s.addr, s.ttl, s.err, siteOld)
		}
	}
	// A failed job keeps what it did until it is retried or canceled;
	// its cancel puts the config's TTL back.
	if _, err := w.o.Cancel(context.Background(), j.ID); err != nil {
		t.Fatalf("cancel of the failed job: %v", err)
	}
	if j = w.wait(j.ID); j.State != store.Canceled {
		t.Fatalf("the failed job, canceled, ends %s: %s", j.State, j.Error)
	}
	answersWithTTL(t, ps, siteOld, 1)

	mu.Lock()
	atStop = nil
	mu.Unlock()
	j = w.run(PlannedFailover, "alpha", Params{})
	if len(atStop) == 0 {
		t.Fatal("no stop was asked of the agent")
	}
	for _, s := range atStop {
		if s.err != nil || s.addr != siteOld || s.ttl != 0 {
			t.Errorf("%s at the stop: %s TTL %d (%v), want %s with TTL 0", s.server, s.addr, s.ttl, s.err, siteOld)
		}
	}
	answersWithTTL(t, ps, siteNew, 1)
	out := w.outputs(j.ID)
	found := false
	for _, x := range out.Resources {
		found = found || x.Kind == ResDNSTTL && x.Name == trafficProfile
	}
	if !found {
		t.Errorf("the job did not record the lowered TTL: %+v", out.Resources)
	}

	// Failback moves customers back the same way: TTL 0 while the
	// recovery machines still serve, the config's TTL once DNS is back.
	w.run(Commit, "alpha", Params{})
	w.run(Reprotect, "alpha", Params{})
	mu.Lock()
	atStop = nil
	mu.Unlock()
	w.agents.SetHook(nil) // the failback fences the old primary first
	stops := 0
	w.host.SetHook(func(_ context.Context, c orchtest.Call) error {
		// The first stops are the step's; the recovery copy's removal
		// after the cut-back stops them again.
		mu.Lock()
		mine := c.Method == "StopMachine" && c.Site == SiteRecovery && stops < 2
		if mine {
			stops++
		}
		mu.Unlock()
		if !mine {
			return nil
		}
		return record()
	})
	w.run(Failback, "alpha", Params{})
	if len(atStop) == 0 {
		t.Fatal("the failback stopped no recovery machine")
	}
	for _, s := range atStop {
		if s.err != nil || s.addr != siteNew || s.ttl != 0 {
			t.Errorf("%s at the recovery machines' stop: %s TTL %d (%v), want %s with TTL 0", s.server, s.addr, s.ttl, s.err, siteNew)
		}
	}
	answersWithTTL(t, ps, siteOld, 1)
}

// answersWithTTL waits (generously: a loaded machine) until every server
// answers addr with TTL ttl.
func answersWithTTL(t *testing.T, ps []*dnsProc, addr string, ttl uint32) {
	t.Helper()
	for _, p := range ps {
		testenv.Eventually(t, 30*time.Second, fmt.Sprintf("%s answers %s with TTL %d", p.name, addr, ttl), func() bool {
			a, got, err := answerAndTTL(p.dnsAddr())
			return err == nil && a == addr && got == ttl
		})
	}
}
