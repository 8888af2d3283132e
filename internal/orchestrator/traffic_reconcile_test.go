package orchestrator

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/dns"
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/testenv"
)

// TestReconcileTrafficRePushes: three real `haven dns` servers (in
// process, no peers configured, so only the control plane can bring one
// up to date). The third is down while a change is made on a quorum; it
// comes back answering the old site (its own persisted state), and the
// control plane's reconcile re-pushes the change, after which it answers
// the new one. A second reconcile has nothing to push.
func TestReconcileTrafficRePushes(t *testing.T) {
	dir := t.TempDir()
	var cfgs []string
	var tr protection.Traffic
	for i := range 3 {
		tok := filepath.Join(dir, fmt.Sprintf("tok%d", i))
		if err := os.WriteFile(tok, []byte(strings.Repeat("t", 32)), 0o600); err != nil {
			t.Fatal(err)
		}
		dnsPort, apiPort := testenv.FreePort(t), testenv.FreePort(t)
		cfg := filepath.Join(dir, fmt.Sprintf("dns%d.yaml", i))
		doc := fmt.Sprintf(`listen: 127.0.0.1:%d
api: 127.0.0.1:%d
api_token_file: %s
zones: [{name: example.test}]
profiles:
  - name: %s
    ttl: 1
    endpoints:
      - {name: dc1, target: %s, priority: 1}
      - {name: dc2, target: %s, priority: 2}
`, dnsPort, apiPort, tok, trafficProfile, siteOld, siteNew)
		if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		cfgs = append(cfgs, cfg)
		tr.Servers = append(tr.Servers, protection.TrafficServer{Name: fmt.Sprintf("dns%d", i),
			API: fmt.Sprintf("http://127.0.0.1:%d", apiPort), TokenFile: tok, Resolve: fmt.Sprintf("127.0.0.1:%d", dnsPort)})
	}
	start := func(i int) *dns.Server {
		c, err := dns.LoadConfig(cfgs[i])
		if err != nil {
			t.Fatal(err)
		}
		s, err := dns.New(c, dns.Options{ConfigPath: cfgs[i], Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	start(0)
	start(1)
	o := New(Options{Traffic: DNSTraffic, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	off := false
	if err := o.traffic(&tr).UpdateEndpoint(context.Background(), trafficProfile, "dc1", dns.EndpointPatch{Enabled: &off}); err != nil {
		t.Fatalf("change on two of three: %v", err)
	}
	late := start(2)
	if got, _ := askServer(late.DNSAddr(), false); !slices.Equal(got, []string{siteOld}) {
		t.Fatalf("the server that missed the change answers %v before the reconcile, want %s", got, siteOld)
	}
	st := o.ReconcileTraffic(context.Background(), &tr)
	if !st[2].Reachable || st[2].Pushed != 1 || st[2].Generation != st[0].Generation || st[0].Pushed != 0 {
		t.Fatalf("reconcile: %+v", st)
	}
	if got, _ := askServer(late.DNSAddr(), false); !slices.Equal(got, []string{siteNew}) {
		t.Fatalf("after the re-push it answers %v, want %s", got, siteNew)
	}
	for _, s := range o.ReconcileTraffic(context.Background(), &tr) {
		if s.Pushed != 0 || s.Error != "" {
			t.Errorf("second reconcile: %+v", s)
		}
	}
}
