package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/agent"
	"github.com/haven-dr/haven/internal/alert"
	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/server"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/vault"
)

// hook is a real webhook receiver on loopback that refuses (500) the
// first failures requests.
type hook struct {
	*httptest.Server
	mu       sync.Mutex
	failures int
	events   chan alert.Event
}

func newHook(t *testing.T, failures int) *hook {
	h := &hook{failures: failures, events: make(chan alert.Event, 64)}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.failures--
		fail := h.failures >= 0
		h.mu.Unlock()
		if fail {
			http.Error(w, "down for a moment", http.StatusInternalServerError)
			return
		}
		var e alert.Event
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil || r.Header.Get("X-Haven-Test") != "yes" {
			http.Error(w, fmt.Sprintf("bad delivery: %v, header %q", err, r.Header.Get("X-Haven-Test")), http.StatusBadRequest)
			return
		}
		h.events <- e
	}))
	t.Cleanup(h.Close)
	return h
}

// until reads events until one matches state:id and returns all read.
func (h *hook) until(t *testing.T, want string) []string {
	t.Helper()
	var got []string
	for {
		select {
		case e := <-h.events:
			got = append(got, e.State+":"+e.ID)
			if got[len(got)-1] == want {
				return got
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("no %s; got %v", want, got)
		}
	}
}

// metric scrapes /metrics for the value of the series line prefix.
func metric(t *testing.T, r *running, series string) (float64, bool) {
	t.Helper()
	a := r.admin(t, "GET", "/metrics", nil)
	sc := bufio.NewScanner(bytes.NewReader(a.body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f, true
		}
	}
	return 0, false
}

// waitEvaluations waits until the alert loop has run n more times.
func waitEvaluations(t *testing.T, r *running, n float64) {
	t.Helper()
	start, _ := metric(t, r, "haven_alert_evaluations_total")
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if v, _ := metric(t, r, "haven_alert_evaluations_total"); v >= start+n {
			return
		}
	}
	t.Fatalf("the alert loop did not run %v more times", n)
}

// TestAlertsDeliveredOnTransitions: with a webhook that is down for its
// first requests, the server delivers each alert once when it fires and
// once when it resolves (an agent's heartbeat), however many evaluations
// run in between; status, /metrics and the webhook agree.
func TestAlertsDeliveredOnTransitions(t *testing.T) {
	e := newEnv(t, nil)
	h := newHook(t, 2)
	e.cfg.Alerts = alert.Config{Interval: 20 * time.Millisecond,
		Webhook: &alert.WebhookConfig{URL: h.URL + "/haven", Headers: map[string]string{"X-Haven-Test": "yes"}}}
	if err := e.cfg.Defaults(); err != nil {
		t.Fatal(err)
	}
	r := e.startWith(t, server.Options{AlertRetry: alert.Retry{Attempts: 10, Backoff: time.Millisecond, Max: 5 * time.Millisecond}})
	r.mustApply(t, e.doc())

	got := h.until(t, "firing:agent-silent/dc1-agent")
	waitEvaluations(t, r, 5)
	rep, _ := json.Marshal(agent.Report{Version: 1, Host: "dc1", Time: time.Now().UTC()})
	if a := r.call(t, "POST", "/v1/agents/dc1-agent/heartbeat", e.agentTok["dc1-agent"], rep); a.status != http.StatusNoContent {
		t.Fatalf("heartbeat: %d %s", a.status, a.body)
	}
	got = append(got, h.until(t, "resolved:agent-silent/dc1-agent")...)
	waitEvaluations(t, r, 5)
	for _, want := range []string{"firing:agent-silent/dc1-backup", "firing:rpo/db", "firing:rpo/web"} {
		if !slices.Contains(got, want) {
			select {
			case ev := <-h.events:
				got = append(got, ev.State+":"+ev.ID)
			case <-time.After(60 * time.Second):
			}
		}
	}
	counts := map[string]int{}
	for _, g := range got {
		counts[g]++
	}
	for _, want := range []string{"firing:agent-silent/dc1-agent", "resolved:agent-silent/dc1-agent",
		"firing:agent-silent/dc1-backup", "firing:rpo/db", "firing:rpo/web"} {
		if counts[want] != 1 {
			t.Errorf("%s delivered %d times, want once (all: %v)", want, counts[want], got)
		}
	}
	select {
	case ev := <-h.events:
		t.Errorf("a further delivery without a transition: %+v", ev)
	default:
	}

	st := status(t, r)
	var ids []string
	for i, a := range st.AlertDetails {
		ids = append(ids, a.ID)
		if st.Alerts[i] != a.Summary {
			t.Errorf("alerts[%d] = %q, detail summary %q", i, st.Alerts[i], a.Summary)
		}
	}
	if !slices.Equal(ids, []string{"agent-silent/dc1-backup", "rpo/db", "rpo/web"}) {
		t.Errorf("status alert ids %v", ids)
	}
	for series, want := range map[string]float64{
		`haven_alerts{id="agent-silent/dc1-agent",severity="critical"}`:  0,
		`haven_alerts{id="agent-silent/dc1-backup",severity="critical"}`: 1,
		`haven_alert_deliveries_total{result="ok",sink="webhook"}`:       5,
		`haven_alert_deliveries_total{result="retry",sink="webhook"}`:    2,
	} {
		if v, ok := metric(t, r, series); !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", series, v, ok, want)
		}
	}
}

// TestDrillAndVaultAlerts: a plan first applied 200 days ago and never
// drilled is alerted until a passed drill is recorded; a vault with a
// pack missing is alerted by the periodic check.
func TestDrillAndVaultAlerts(t *testing.T) {
	e := newEnv(t, func(v *vault.Vault) {
		img := filepath.Join(t.TempDir(), "db-root.img")
		if err := os.WriteFile(img, []byte(strings.Repeat("haven ", 20000)), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := v.Snapshot(context.Background(), vault.SnapshotOptions{Machine: "db",
			Disks: []vault.DiskSource{{Name: "root", Path: img}}, Consistency: vault.CrashConsistent}); err != nil {
			t.Fatal(err)
		}
	})
	packs, _ := filepath.Glob(filepath.Join(e.vaultDir, "data", "*", "*"))
	if len(packs) == 0 {
		t.Fatal("the seeded vault has no pack")
	}
	if err := os.Remove(packs[0]); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(e.cfg.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	applied := time.Now().UTC().Add(-200 * 24 * time.Hour)
	seen, _ := json.Marshal(map[string]time.Time{"shop": applied})
	if err := os.WriteFile(filepath.Join(e.cfg.StateDir, "alerts-plans.json"), seen, 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.start(t)
	r.mustApply(t, e.doc())

	var st *api.Status
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		st = status(t, r)
		if hasAlert(st, "vault check found") || time.Now().After(deadline) {
			break
		}
	}
	if d := detail(st, "vault-check"); d == nil || d.Severity != string(alert.Critical) || !strings.Contains(d.Summary, "object missing") {
		t.Errorf("missing pack not alerted: %q", st.Alerts)
	}
	drill := detail(st, "drill/shop")
	if drill == nil || drill.Severity != string(alert.Warning) || !drill.Since.Equal(applied.Add(180*24*time.Hour)) ||
		!strings.HasPrefix(drill.Summary, "plan shop: no passed test failover for 200 days (never drilled") {
		t.Errorf("drill alert %+v, want one from %v", drill, applied)
	}
	ctx := context.Background()
	now := time.Now().UTC()
	if err := r.Orchestrator().Store.AddDrill(ctx, store.Drill{JobID: "failed-one", Plan: "shop", Started: now, CleanedUp: now}); err != nil {
		t.Fatal(err)
	}
	if detail(status(t, r), "drill/shop") == nil {
		t.Error("a failed drill cleared the drill alert")
	}
	if err := r.Orchestrator().Store.AddDrill(ctx, store.Drill{JobID: "passed-one", Plan: "shop", Started: now, CleanedUp: now, Passed: true}); err != nil {
		t.Fatal(err)
	}
	if d := detail(status(t, r), "drill/shop"); d != nil {
		t.Errorf("after a passed drill: %+v", d)
	}
}

func detail(st *api.Status, id string) *api.Alert {
	for i := range st.AlertDetails {
		if st.AlertDetails[i].ID == id {
			return &st.AlertDetails[i]
		}
	}
	return nil
}

// TestLoadConfigAlerts: the alerts section and the rule settings parse
// from YAML with their defaults; a typo or a bad address is refused.
func TestLoadConfigAlerts(t *testing.T) {
	dir := t.TempDir()
	write := func(doc string) string {
		p := filepath.Join(dir, "server.yaml")
		if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := server.LoadConfig(write(`vault: file:///tmp/v
drill_max_age: 720h
alerts:
  webhook: {url: "http://127.0.0.1:9/hook", headers: {Authorization: "Bearer x"}}
  smtp: {addr: "127.0.0.1:25", from: haven@example.test, to: [ops@example.test], starttls: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.DrillMaxAge != 720*time.Hour || c.VaultCheckInterval != 24*time.Hour || c.Alerts.Interval != 10*time.Second ||
		c.Alerts.Webhook.Timeout != 10*time.Second || c.Alerts.Webhook.Headers["Authorization"] != "Bearer x" ||
		!c.Alerts.SMTP.StartTLS || c.Alerts.SMTP.To[0] != "ops@example.test" {
		t.Errorf("parsed %+v, webhook %+v, smtp %+v", c, c.Alerts.Webhook, c.Alerts.SMTP)
	}
	if c, err := server.LoadConfig(write("vault: file:///tmp/v\n")); err != nil || c.DrillMaxAge != 180*24*time.Hour {
		t.Errorf("default drill_max_age: %v, %v", c, err)
	}
	for _, bad := range []string{"alerts: {webhok: {url: http://x}}", "alerts: {webhook: {url: mailto:x}}",
		"alerts: {smtp: {addr: nohost, from: a@b, to: [c@d]}}"} {
		if _, err := server.LoadConfig(write("vault: file:///tmp/v\n" + bad + "\n")); !errors.Is(err, server.ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", bad, err)
		}
	}
}
