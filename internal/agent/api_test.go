package agent

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestStatusAPI serves the status API on a loopback port and reads it back
// through the typed client and a Prometheus scrape.
func TestStatusAPI(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v := newVault(t, nil)
	disk := filepath.Join(t.TempDir(), "disk.img")
	writeRandom(t, disk, 1<<20)
	a := newAgent(testConfig(t, ProviderNone, disk), v)
	if err := a.Cycle(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go a.Serve(ctx, ln)

	r, err := (&Client{Addr: ln.Addr().String()}).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := r.Machines[0]
	if r.Version != ReportVersion || m.Name != "m1" || m.LastPoint == nil || m.LastPoint.Provider != "none" ||
		m.LastPoint.Consistency != "inconsistent" || m.RPOSeconds <= 0 || m.UploadedBytes == 0 || m.RPOAlert {
		t.Fatalf("report %+v machine %+v", r, m)
	}
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`haven_agent_rpo_seconds{group="m1",machine="m1"}`, `haven_agent_points_total{group="m1",machine="m1"} 1`, "haven_agent_rpo_alert"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
