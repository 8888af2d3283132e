package dns

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/haven-dr/haven/internal/testenv"
)

// askVia queries a recursive resolver with RD and an ECS option.
func askVia(t *testing.T, resolver, name string, client netip.Prefix) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1,
		SourceNetmask: uint8(client.Bits()), Address: net.IP(client.Masked().Addr().AsSlice())})
	c := &dns.Client{Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, resolver)
	if err != nil {
		t.Fatal(err)
	}
	if r.Rcode != dns.RcodeSuccess {
		t.Fatalf("%s via Unbound for %s: %s", name, client, dns.RcodeToString[r.Rcode])
	}
	return addrsOf(r)
}

// TestECSScopesThroughUnbound puts a real caching resolver (Unbound with
// its subnet cache) in front of the server: one client's answer is cached
// under the scope Haven returns, and a second client must still get its own
// answer. With a scope that is too broad (the three cases of issue 8) the
// resolver hands the first client's answer to the second.
func TestECSScopesThroughUnbound(t *testing.T) {
	s := startRoutingServer(t)
	port := s.lis.tcp.Addr().(*net.TCPAddr).Port
	resolver := testenv.Unbound(t, "example.test.", port)
	for _, tc := range []struct {
		name, first, second, want string
	}{
		{"sn.example.test.", "10.2.0.0/24", "10.1.2.0/24", "192.0.2.21"},     // fallback was /0
		{"nsn.example.test.", "10.1.2.0/24", "10.2.0.0/24", "192.0.2.22"},    // nested lost /16
		{"geo.example.test.", "10.9.0.0/24", "10.200.7.0/24", "192.0.2.32"},  // broad /8 over 10.200/16
		{"geo.example.test.", "10.200.9.0/24", "10.9.0.0/24", "192.0.2.31"},  // and back
		{"sn.example.test.", "203.0.113.0/24", "10.1.9.0/24", "192.0.2.21"},  // fallback far away
		{"nsn.example.test.", "203.0.113.0/24", "10.1.7.0/24", "192.0.2.21"}, // nested fallback
	} {
		askVia(t, resolver, tc.name, netip.MustParsePrefix(tc.first))
		if got := askVia(t, resolver, tc.name, netip.MustParsePrefix(tc.second)); !slices.Equal(got, []string{tc.want}) {
			t.Errorf("%s: after %s asked, %s got %v from the resolver, want %s", tc.name, tc.first, tc.second, got, tc.want)
		}
	}
}
