package dns

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// exchangeECS asks the real server over UDP with an EDNS Client Subnet
// option and returns the addresses answered and the scope echoed.
func exchangeECS(t *testing.T, server, name string, client netip.Prefix) ([]string, int) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	m.SetEdns0(1232, false)
	fam := uint16(1)
	if client.Addr().Is6() {
		fam = 2
	}
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: fam,
		SourceNetmask: uint8(client.Bits()), Address: net.IP(client.Masked().Addr().AsSlice())})
	c := &dns.Client{Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, server)
	if err != nil {
		t.Fatal(err)
	}
	opt := r.IsEdns0()
	if opt == nil || len(opt.Option) != 1 {
		t.Fatalf("%s from %s: no ECS in reply %v", name, client, r)
	}
	e := opt.Option[0].(*dns.EDNS0_SUBNET)
	if e.SourceNetmask != uint8(client.Bits()) {
		t.Fatalf("source prefix %d echoed as %d", client.Bits(), e.SourceNetmask)
	}
	return addrsOf(r), int(e.SourceScope)
}

// TestECSScopeHoldsForEveryClientInside asks the real server with ECS and
// checks RFC 7871 section 7.2.1 for each reply: every client inside the
// returned scope gets the same answer (each configured prefix is probed if
// it lies inside), and the scope is the shortest that does so. The three
// broken cases of issue 8 are the fallback after no match, a nested profile,
// and a broad match with a narrower prefix inside that maps elsewhere.
func TestECSScopeHoldsForEveryClientInside(t *testing.T) {
	s := startRoutingServer(t)
	probes := []string{"10.0.0.0/32", "10.1.0.0/32", "10.1.255.255/32", "10.200.0.0/32", "172.16.0.0/32",
		"172.31.255.255/32", "10.255.255.255/32", "198.51.100.0/32", "203.0.113.0/32"}
	for _, tc := range []struct {
		name, client string
		scope        int
	}{
		{"sn.example.test.", "10.1.2.0/24", 16},
		{"sn.example.test.", "10.2.0.0/16", 15},     // no match; 10.1/16 is close
		{"sn.example.test.", "203.0.113.0/24", 1},   // no match; 10.1/16 is 0/1
		{"nsn.example.test.", "10.1.2.0/24", 16},    // the child's scope
		{"nsn.example.test.", "10.2.0.0/16", 15},    // the child's scope
		{"geo.example.test.", "10.9.0.0/16", 9},     // 10/8 matched, 10.200/16 maps elsewhere
		{"geo.example.test.", "10.200.7.0/24", 16},  // the narrow match itself
		{"geo.example.test.", "198.51.100.0/24", 2}, // WORLD; 172.16/12 is 128/2 apart
		{"w.example.test.", "10.1.2.0/24", 0},       // weighted ignores the client
	} {
		client := netip.MustParsePrefix(tc.client)
		want, scope := exchangeECS(t, s.DNSAddr(), tc.name, client)
		if scope != tc.scope {
			t.Errorf("%s from %s: %v with scope %d, want scope %d", tc.name, client, want, scope, tc.scope)
		}
		if tc.name == "w.example.test." {
			continue
		}
		covered, _ := client.Addr().Prefix(scope)
		for _, p := range probes {
			pp := netip.MustParsePrefix(p)
			if !covered.Contains(pp.Addr()) {
				continue
			}
			if got, _ := exchangeECS(t, s.DNSAddr(), tc.name, pp); !slices.Equal(got, want) {
				t.Errorf("%s: %s answered %v (scope %s) but %s inside the scope gets %v",
					tc.name, client, want, covered, pp.Addr(), got)
			}
		}
	}
}
