package upgrade_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/api"
)

// TestAgentProtocolReplay: the requests an agent of the fixture's release
// sent are replayed against this build's server, with and without the
// version header (agents before it sent none), and must get the answers
// they got then and still reach the status; an agent older than the
// policy allows is refused with both versions named, and nothing stored.
func TestAgentProtocolReplay(t *testing.T) { eachFixture(t, testAgentProtocolReplay) }

func testAgentProtocolReplay(t *testing.T, f *fixture) {
	if len(f.Exchanges) == 0 {
		t.Fatal("the fixture recorded no agent exchange")
	}
	s := fixtureSite(t, f, "sqlite", "", "state.db")
	r := s.start(t)
	// The fixture's config names the generator's token file: apply the
	// same plan with this test's.
	if status, b := r.call(t, "POST", "/v1/apply", f.AdminToken, nil, []byte(s.doc())); status != http.StatusOK {
		t.Fatalf("apply: %d %s", status, b)
	}
	legacy := func(h map[string]string) map[string]string {
		h = maps.Clone(h)
		delete(h, api.AgentVersionHeader)
		return h
	}
	for _, ex := range f.Exchanges {
		for name, h := range map[string]map[string]string{"as recorded": ex.Header, "without the version header": legacy(ex.Header)} {
			before := time.Now().UTC()
			status, b := r.call(t, ex.Method, ex.Path, s.agentTok, h, ex.Body)
			if status != ex.Status || string(b) != ex.Response {
				t.Errorf("%s %s %s: %d %q, recorded %d %q", ex.Method, ex.Path, name, status, b, ex.Status, ex.Response)
			}
			if as := agentStatus(t, r, f.AdminToken); as.LastHeartbeat == nil || as.LastHeartbeat.Before(before) || !as.Healthy {
				t.Errorf("%s: agent status %+v, want healthy with a heartbeat after %v", name, as, before)
			}
		}
	}
	// What the recorded report said reaches the status.
	var st api.Status
	r.get(t, "/v1/status", f.AdminToken, &st)
	for _, m := range st.Machines {
		if m.Name == "web" && m.LastError != "disk read: EIO" {
			t.Errorf("web's last error = %q, want the recorded report's", m.LastError)
		}
	}

	ex := f.Exchanges[0]
	last := agentStatus(t, r, f.AdminToken).LastHeartbeat
	old := maps.Clone(ex.Header)
	old[api.AgentVersionHeader] = "0.9"
	status, b := r.call(t, ex.Method, ex.Path, s.agentTok, old, ex.Body)
	var e api.Error
	if status != http.StatusBadRequest || json.Unmarshal(b, &e) != nil || e.Code != api.CodeInvalid ||
		!strings.Contains(e.Error, "0.9") || !strings.Contains(e.Error, api.AgentAPIVersion()) || !strings.Contains(e.Error, "upgrade the agent") {
		t.Errorf("a 0.9 agent: %d %s, want 400 naming 0.9 and %s", status, b, api.AgentAPIVersion())
	}
	if now := agentStatus(t, r, f.AdminToken).LastHeartbeat; now == nil || !now.Equal(*last) {
		t.Errorf("the refused heartbeat was stored: last heartbeat %v, was %v", now, last)
	}
	// The version is checked after the token: a stranger learns nothing.
	if status, _ := r.call(t, ex.Method, ex.Path, "not-the-token-0123456789", old, ex.Body); status != http.StatusUnauthorized {
		t.Errorf("a 0.9 agent with a wrong token: %d, want 401", status)
	}
}

func agentStatus(t *testing.T, r *running, tok string) api.AgentStatus {
	t.Helper()
	var st api.Status
	r.get(t, "/v1/status", tok, &st)
	for _, a := range st.Agents {
		if a.Name == "dc1-agent" {
			return a
		}
	}
	t.Fatalf("no dc1-agent in the status: %+v", st.Agents)
	return api.AgentStatus{}
}
