// Package dnsbench measures the traffic manager; nothing here runs in the
// normal test suite (benchmarks only run with -bench).
package dnsbench

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"

	havendns "github.com/haven-dr/haven/internal/dns"
	"github.com/haven-dr/haven/internal/testenv"
)

const cfg = `listen: 127.0.0.1:0
zones: [{name: example.test}]
profiles:
  - name: app.example.test
    ttl: 5
    monitor: {protocol: http, port: %d, path: /health, interval: 1s, timeout: 500ms, tolerated_failures: 1}
    endpoints:
      - {name: primary, target: 127.0.0.1, priority: 1}
      - {name: recovery, target: 127.0.0.2, priority: 2}
`

// BenchmarkFailoverDetection: with a 1 s interval and 1 tolerated failure,
// the time from stopping the primary's HTTP server until Haven answers with
// the secondary. Run: go test ./bench/dns -run '^$' -bench Failover -benchtime 10x
func BenchmarkFailoverDetection(b *testing.B) {
	var total, worst time.Duration
	for range b.N {
		d := failoverOnce(b)
		total += d
		worst = max(worst, d)
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/failover")
	b.ReportMetric(worst.Seconds(), "worst-s")
}

func failoverOnce(b *testing.B) time.Duration {
	ls, port := testenv.LoopbackListeners(b, "127.0.0.1", "127.0.0.2")
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	primary := testenv.NewHTTPEndpoint(b, ls[0], ok)
	testenv.NewHTTPEndpoint(b, ls[1], ok)
	path := filepath.Join(b.TempDir(), "dns.yaml")
	os.WriteFile(path, fmt.Appendf(nil, cfg, port), 0o600)
	c, err := havendns.LoadConfig(path)
	if err != nil {
		b.Fatal(err)
	}
	s, err := havendns.New(c, havendns.Options{})
	if err != nil || s.Start() != nil {
		b.Fatal(err)
	}
	defer s.Close()
	// Random phase against the probe ticker, like a real outage.
	time.Sleep(time.Duration(1000+time.Now().UnixNano()%1000) * time.Millisecond)
	start := time.Now()
	primary.Stop()
	for answer(b, s.DNSAddr()) != "127.0.0.2" {
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func answer(b *testing.B, server string) string {
	m := new(dns.Msg)
	m.SetQuestion("app.example.test.", dns.TypeA)
	r, err := dns.Exchange(m, server)
	if err != nil || len(r.Answer) == 0 {
		b.Fatal(err)
	}
	return r.Answer[0].(*dns.A).A.String()
}
