package dns

import (
	"context"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// answerTTL is the TTL of the profile's A record, asked over real DNS.
func answerTTL(t *testing.T, s *Server) uint32 {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("app.example.test.", dns.TypeA)
	r, err := dns.Exchange(m, s.DNSAddr())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Answer) != 1 {
		t.Fatalf("answer %v", r.Answer)
	}
	return r.Answer[0].Header().Ttl
}

// TestProfileTTLOverride: the TTL a planned failover lowers through the API
// is what answers carry, it outlives a restart and a reload (a failover
// under way must not find resolvers caching longer again), a reset brings
// the config's back for good, and a bad TTL is refused with nothing
// changed.
func TestProfileTTLOverride(t *testing.T) {
	path := writeConfig(t, stateConfig)
	s := startFrom(t, path)
	ctx := context.Background()
	c := apiClient(t, s)
	if got := answerTTL(t, s); got != 5 {
		t.Fatalf("config's TTL: answered %d, want 5", got)
	}
	st, err := c.UpdateProfile(ctx, "app.example.test", ProfilePatch{TTL: ptr(uint32(0))})
	if err != nil {
		t.Fatal(err)
	}
	if st.TTL != 0 || st.ConfigTTL != 5 || st.Override == nil || st.Override.TTL == nil || *st.Override.TTL != 0 {
		t.Fatalf("status after the change: %+v override %+v", st, st.Override)
	}
	if got := answerTTL(t, s); got != 0 {
		t.Fatalf("after lowering: answered TTL %d, want 0", got)
	}
	if _, err := c.UpdateProfile(ctx, "app.example.test", ProfilePatch{TTL: ptr(uint32(1 << 31))}); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("TTL 2^31: %v, want refused", err)
	}
	if _, err := c.UpdateProfile(ctx, "nope.example.test", ProfilePatch{TTL: ptr(uint32(0))}); err == nil {
		t.Fatal("unknown profile accepted")
	}
	if got := answerTTL(t, s); got != 0 {
		t.Fatalf("after a refused change: answered TTL %d, want 0", got)
	}
	s.Close()

	s = startFrom(t, path)
	if got := answerTTL(t, s); got != 0 {
		t.Fatalf("after a restart: TTL %d, the lowered TTL was lost", got)
	}
	if err := s.ReloadFile(); err != nil {
		t.Fatal(err)
	}
	if got := answerTTL(t, s); got != 0 {
		t.Fatalf("after a reload: TTL %d", got)
	}
	if st, err = apiClient(t, s).ResetProfile(ctx, "app.example.test"); err != nil || st.TTL != 5 || st.Override != nil {
		t.Fatalf("reset: %+v, %v", st, err)
	}
	if got := answerTTL(t, s); got != 5 {
		t.Fatalf("after reset: TTL %d, want the config's 5", got)
	}
	// Lowered again (a failback after a failover), reset again.
	if _, err := apiClient(t, s).UpdateProfile(ctx, "app.example.test", ProfilePatch{TTL: ptr(uint32(0))}); err != nil {
		t.Fatal(err)
	}
	if got := answerTTL(t, s); got != 0 {
		t.Fatalf("lowered after a reset: TTL %d, want 0", got)
	}
	if _, err := apiClient(t, s).ResetProfile(ctx, "app.example.test"); err != nil {
		t.Fatal(err)
	}
	if got := answerTTL(t, s); got != 5 {
		t.Fatalf("after the second reset: TTL %d, want the config's 5", got)
	}
	s.Close()
	s = startFrom(t, path)
	if got := answerTTL(t, s); got != 5 {
		t.Fatalf("restart after reset: TTL %d", got)
	}
}

// TestMergeAdoptsProfileTTL: a profile's TTL reaches a server that missed
// the change from a peer's state (as a restarted cluster member catches
// up), and an older one from a peer does not undo a newer reset.
func TestMergeAdoptsProfileTTL(t *testing.T) {
	s := startFrom(t, writeConfig(t, stateConfig))
	n, err := s.Merge([]EndpointOverride{{Profile: "app.example.test.", Override: Override{TTL: ptr(uint32(0)), Generation: 10}}})
	if err != nil || n != 1 {
		t.Fatalf("merge: %d adopted, %v", n, err)
	}
	if got := answerTTL(t, s); got != 0 {
		t.Fatalf("after adopting a peer's TTL 0: answered %d", got)
	}
	if _, err := s.ResetProfileAt("app.example.test", 20); err != nil {
		t.Fatal(err)
	}
	if n, err = s.Merge([]EndpointOverride{{Profile: "app.example.test.", Override: Override{TTL: ptr(uint32(0)), Generation: 15}}}); err != nil || n != 0 {
		t.Fatalf("an older override adopted over a newer reset: %d, %v", n, err)
	}
	if got := answerTTL(t, s); got != 5 {
		t.Fatalf("after the reset and an older peer's TTL: answered %d, want the config's 5", got)
	}
	if _, err := s.Merge([]EndpointOverride{{Profile: "app.example.test.", Override: Override{TTL: ptr(uint32(1 << 31)), Generation: 30}}}); err == nil {
		t.Fatal("a TTL over 2^31-1 from a peer was adopted")
	}
}
