package server_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestSubmitRefusals: jobs that cannot run are refused before anything
// is recorded or started, with 400 for a bad request and 412 for a job
// the plan's phase does not allow. No request here may start a failover.
func TestSubmitRefusals(t *testing.T) {
	e := newEnv(t, nil)
	r := e.start(t)
	if a := r.admin(t, "POST", "/v1/plans/shop/jobs", []byte(`{"type":"test-failover"}`)); a.status != http.StatusNotFound {
		t.Fatalf("submit before any config: %d %s, want 404", a.status, a.body)
	}
	r.mustApply(t, e.doc())

	for _, tc := range []struct {
		name, plan, body string
		status           int
		code             string
		says             []string
	}{
		{"unknown plan", "nope", `{"type":"test-failover"}`, 400, "invalid", []string{`no plan "nope"`}},
		{"unknown job type", "shop", `{"type":"teleport"}`, 400, "invalid", []string{`unknown job type "teleport"`}},
		{"unknown field", "shop", `{"type":"test-failover","pointt":"latest"}`, 400, "invalid", []string{`unknown field "pointt"`}},
		{"unknown param", "shop", `{"type":"test-failover","params":{"pointt":"latest"}}`, 400, "invalid", []string{`unknown field "pointt"`}},
		{"not JSON", "shop", `type: commit`, 400, "invalid", []string{"body"}},
		{"point on a planned failover", "shop", `{"type":"planned-failover","params":{"point":"latest"}}`, 400, "invalid", []string{"--point"}},
		{"commit before any failover", "shop", `{"type":"commit"}`, 412, "precondition",
			[]string{"plan shop is protected", "only an uncommitted failover"}},
		{"change-point before any failover", "shop", `{"type":"change-point","params":{"point":"latest"}}`, 412, "precondition",
			[]string{"plan shop is protected"}},
		{"cancel-failover before any failover", "shop", `{"type":"cancel-failover"}`, 412, "precondition", []string{"plan shop is protected"}},
		{"cleanup without a test copy", "shop", `{"type":"test-cleanup"}`, 412, "precondition", []string{"no test failover to clean up"}},
		{"reprotect without a committed failover", "shop", `{"type":"reprotect"}`, 412, "precondition", []string{"reprotect follows a committed failover"}},
		{"failback without reprotect", "shop", `{"type":"failback"}`, 412, "precondition", []string{"failback needs reprotect first"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := r.admin(t, "POST", "/v1/plans/"+tc.plan+"/jobs", []byte(tc.body))
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			ae := a.apiError(t)
			if ae.Code != tc.code {
				t.Errorf("code %q, want %q", ae.Code, tc.code)
			}
			for _, s := range tc.says {
				if !strings.Contains(ae.Error, s) {
					t.Errorf("error %q does not say %q", ae.Error, s)
				}
			}
		})
	}

	var jobs []map[string]any
	r.admin(t, "GET", "/v1/jobs", nil).decode(t, &jobs)
	if len(jobs) != 0 {
		t.Errorf("refused submissions recorded jobs: %v", jobs)
	}
	var st struct{ Phase, Test, Failover string }
	r.admin(t, "GET", "/v1/plans/shop", nil).decode(t, &st)
	if st.Phase != "protected" || st.Test != "" || st.Failover != "" {
		t.Errorf("plan state after refusals: %+v", st)
	}
}
