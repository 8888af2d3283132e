package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/agent"
	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/vault"
)

// TestHeartbeatAndStatus: an agent reports with its own token only; the
// status shows it healthy, an agent silent past agent_silent as an alert,
// and a machine without any point as "RPO unknown".
func TestHeartbeatAndStatus(t *testing.T) {
	var dbPoint string
	e := newEnv(t, func(v *vault.Vault) {
		// db has a recovery point in the vault; web has none.
		img := filepath.Join(t.TempDir(), "db-root.img")
		if err := os.WriteFile(img, []byte(strings.Repeat("haven ", 20000)), 0o600); err != nil {
			t.Fatal(err)
		}
		p, _, err := v.Snapshot(context.Background(), vault.SnapshotOptions{Machine: "db",
			Disks: []vault.DiskSource{{Name: "root", Path: img}}, Consistency: vault.CrashConsistent})
		if err != nil {
			t.Fatal(err)
		}
		dbPoint = p.ID
	})
	r := e.start(t)
	r.mustApply(t, e.doc())

	silent := func(a string) string { return "agent " + a + " silent" }
	st := status(t, r)
	if as := agentStatus(t, st, "dc1-agent"); as.Healthy || as.LastHeartbeat != nil || !hasAlert(st, silent("dc1-agent")) {
		t.Errorf("before any heartbeat: %+v, alerts %q; want unhealthy and a silence alert", as, st.Alerts)
	}

	rep, _ := json.Marshal(agent.Report{Version: 1, Host: "dc1", Time: time.Now().UTC(), Machines: []agent.MachineStatus{
		{Name: "db", RPOAlertSeconds: 3600}, {Name: "web", RPOAlertSeconds: 3600, LastError: "disk read: EIO"}}})
	beat := "/v1/agents/dc1-agent/heartbeat"
	// An unknown token is 401, a known one that is not this agent's 403.
	for name, tc := range map[string]struct {
		tok  string
		want int
	}{"wrong": {"wrong-token-0123456789", http.StatusUnauthorized}, "another agent's": {e.agentTok["dc1-backup"], http.StatusForbidden},
		"the admin's": {r.token, http.StatusForbidden}} {
		if a := r.call(t, "POST", beat, tc.tok, rep); a.status != tc.want {
			t.Errorf("%s token: %d %s, want %d", name, a.status, a.body, tc.want)
		}
	}
	if a := r.call(t, "POST", "/v1/agents/ghost/heartbeat", e.agentTok["dc1-agent"], rep); a.status != http.StatusUnauthorized {
		t.Errorf("unknown agent: %d %s, want 401", a.status, a.body)
	}
	if as := agentStatus(t, status(t, r), "dc1-agent"); as.LastHeartbeat != nil {
		t.Fatalf("a refused heartbeat was stored: %+v", as)
	}
	if a := r.call(t, "POST", beat, e.agentTok["dc1-agent"], []byte("not json")); a.status != http.StatusBadRequest {
		t.Errorf("non-JSON report: %d %s, want 400", a.status, a.body)
	}
	if a := r.call(t, "POST", beat, e.agentTok["dc1-agent"], rep); a.status != http.StatusNoContent {
		t.Fatalf("heartbeat with the agent's token: %d %s, want 204", a.status, a.body)
	}

	// dc1-backup was last heard from two hours ago, far past the
	// default agent_silent of one minute.
	old := time.Now().UTC().Add(-2 * time.Hour)
	if err := r.Orchestrator().Store.PutHeartbeat(context.Background(), store.Heartbeat{Agent: "dc1-backup", Time: old, Report: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}

	st = status(t, r)
	if as := agentStatus(t, st, "dc1-agent"); !as.Healthy || as.LastHeartbeat == nil || hasAlert(st, silent("dc1-agent")) {
		t.Errorf("after its heartbeat: %+v, alerts %q; want healthy, no silence alert", as, st.Alerts)
	}
	if as := agentStatus(t, st, "dc1-backup"); as.Healthy || as.LastHeartbeat == nil || !as.LastHeartbeat.Equal(old) ||
		!hasAlert(st, silent("dc1-backup")) {
		t.Errorf("silent agent: %+v, alerts %q; want unhealthy since %v and a silence alert", as, st.Alerts, old)
	}

	db, web := machineStatus(t, st, "db"), machineStatus(t, st, "web")
	if db.LastPoint != dbPoint || db.Points != 1 || db.RPOSeconds == nil || db.RPOAlertSeconds != 3600 {
		t.Errorf("db = %+v, want point %s, an RPO and the agent's target", db, dbPoint)
	}
	if web.Points != 0 || web.RPOSeconds != nil || !hasAlert(st, "machine web: no recovery point yet (RPO unknown)") {
		t.Errorf("web = %+v, alerts %q; want no RPO and an RPO-unknown alert", web, st.Alerts)
	}
	if hasAlert(st, "machine db: no recovery point") {
		t.Errorf("db has a point but is alerted as without one: %q", st.Alerts)
	}
	if web.LastError != "disk read: EIO" || !hasAlert(st, "machine web: replication failing: disk read: EIO") {
		t.Errorf("web = %+v, alerts %q; want the agent's replication error", web, st.Alerts)
	}
}

func status(t *testing.T, r *running) *api.Status {
	t.Helper()
	a := r.admin(t, "GET", "/v1/status", nil)
	if a.status != http.StatusOK {
		t.Fatalf("status: %d %s", a.status, a.body)
	}
	var st api.Status
	a.decode(t, &st)
	return &st
}

func agentStatus(t *testing.T, st *api.Status, name string) api.AgentStatus {
	t.Helper()
	i := slices.IndexFunc(st.Agents, func(a api.AgentStatus) bool { return a.Name == name })
	if i < 0 {
		t.Fatalf("agent %s not in status %+v", name, st.Agents)
	}
	return st.Agents[i]
}

func machineStatus(t *testing.T, st *api.Status, name string) api.MachineStatus {
	t.Helper()
	i := slices.IndexFunc(st.Machines, func(m api.MachineStatus) bool { return m.Name == name })
	if i < 0 {
		t.Fatalf("machine %s not in status %+v", name, st.Machines)
	}
	return st.Machines[i]
}

func hasAlert(st *api.Status, prefix string) bool {
	return slices.ContainsFunc(st.Alerts, func(a string) bool { return strings.HasPrefix(a, prefix) })
}
