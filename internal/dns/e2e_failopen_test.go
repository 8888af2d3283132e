package dns

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/testenv"
)

const failOpenConfig = `listen: 127.0.0.1:0
zones: [{name: example.test}]
profiles:
  - name: prio.example.test
    monitor: &dead {protocol: tcp, port: %[1]d, interval: 1s, timeout: 500ms, tolerated_failures: 0}
    endpoints:
      - {name: off, target: 127.0.0.20, priority: 1, enabled: false}
      - {name: primary, target: 127.0.0.21, priority: 2}
      - {name: recovery, target: 127.0.0.22, priority: 3}
  - name: w.example.test
    routing: weighted
    monitor: *dead
    endpoints:
      - {name: light, target: 127.0.0.21, weight: 1}
      - {name: heavy, target: 127.0.0.22, weight: 3}
      - {name: off, target: 127.0.0.20, weight: 1000, enabled: false}
  - name: mv.example.test
    routing: multivalue
    max_answers: 2
    monitor: *dead
    endpoints:
      - {name: a, target: 127.0.0.21}
      - {name: b, target: 127.0.0.22}
      - {name: c, target: 127.0.0.23}
      - {name: d, target: 127.0.0.24}
      - {name: off, target: 127.0.0.20, enabled: false}
  - name: sn.example.test
    routing: subnet
    monitor: *dead
    endpoints:
      - {name: office, target: 127.0.0.21, subnets: [10.1.0.0/16]}
      - {name: rest, target: 127.0.0.22}
  - name: geo.example.test
    routing: geographic
    geo_file: %[2]s
    monitor: *dead
    endpoints:
      - {name: eu, target: 127.0.0.21, regions: [europe]}
      - {name: world, target: 127.0.0.22, regions: [WORLD]}
`

// TestFailOpenKeepsRoutingMethod: with every endpoint failing its real
// probe, each profile answers as if all enabled endpoints were healthy under
// its own routing method (Traffic Manager's fail open): one site for
// priority, weighted and subnet/geographic, at most max_answers for
// multivalue, never a disabled endpoint.
func TestFailOpenKeepsRoutingMethod(t *testing.T) {
	hosts := []string{"127.0.0.20", "127.0.0.21", "127.0.0.22", "127.0.0.23", "127.0.0.24"}
	ls, port := testenv.LoopbackListeners(t, hosts...)
	for _, l := range ls {
		l.Close() // nothing listens: every probe is refused
	}
	geo := filepath.Join(t.TempDir(), "geo.txt")
	if err := os.WriteFile(geo, []byte("10.0.0.0/8 europe\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, fmt.Sprintf(failOpenConfig, port, geo))
	for _, name := range []string{"prio", "w", "mv", "sn", "geo"} {
		testenv.Eventually(t, 20*time.Second, name+" Degraded", func() bool {
			return s.table.Load().profile(name+".example.test").state() == "Degraded"
		})
	}
	addr := s.DNSAddr()
	one := func(name string, client netip.Prefix) string {
		t.Helper()
		var got []string
		if client.IsValid() {
			got, _ = exchangeECS(t, addr, name, client)
		} else {
			got = exchangeA(t, addr, name)
		}
		if len(got) != 1 {
			t.Fatalf("%s from %v answered %v, want one site", name, client, got)
		}
		return got[0]
	}
	if got := one("prio.example.test.", netip.Prefix{}); got != "127.0.0.21" {
		t.Errorf("priority failed open to %s, want the enabled primary 127.0.0.21", got)
	}
	if got := one("sn.example.test.", netip.MustParsePrefix("10.1.2.0/24")); got != "127.0.0.21" {
		t.Errorf("subnet 10.1.2.0/24 failed open to %s, want office", got)
	}
	if got := one("sn.example.test.", netip.MustParsePrefix("192.0.2.0/24")); got != "127.0.0.22" {
		t.Errorf("subnet 192.0.2.0/24 failed open to %s, want rest", got)
	}
	if got := one("geo.example.test.", netip.MustParsePrefix("10.9.0.0/16")); got != "127.0.0.21" {
		t.Errorf("geographic europe failed open to %s, want eu", got)
	}
	weighted := map[string]int{}
	for range 100 {
		weighted[one("w.example.test.", netip.Prefix{})]++
	}
	if weighted["127.0.0.21"] == 0 || weighted["127.0.0.22"] == 0 || len(weighted) != 2 {
		t.Errorf("weighted fail open answered %v; want light and heavy, never the disabled one", weighted)
	}
	seen := map[string]bool{}
	for range 50 {
		got := exchangeA(t, addr, "mv.example.test.")
		if len(got) != 2 || slices.Contains(got, "127.0.0.20") {
			t.Fatalf("multivalue failed open with %v, want 2 enabled addresses", got)
		}
		for _, a := range got {
			seen[a] = true
		}
	}
	if len(seen) != 4 {
		t.Errorf("multivalue fail open used %v, want all 4 enabled endpoints over time", seen)
	}
}
