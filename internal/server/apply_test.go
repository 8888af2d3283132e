package server_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/store"
)

// TestApplyRefusesAtomically: a bad document is refused with the line and
// field of each problem, and the config in force stays as it was.
func TestApplyRefusesAtomically(t *testing.T) {
	e := newEnv(t, nil)
	r := e.start(t)
	good := e.doc()

	// Before anything is applied, a refusal stores nothing either.
	if a := r.admin(t, "POST", "/v1/apply", []byte("sites: {primary: a\n")); a.status != http.StatusBadRequest {
		t.Fatalf("bad first document: %d %s", a.status, a.body)
	}
	if a := r.admin(t, "GET", "/v1/config", nil); a.status != http.StatusNotFound || a.apiError(t).Code != "not_found" {
		t.Fatalf("config after a refused first apply: %d %s, want 404", a.status, a.body)
	}

	v := r.mustApply(t, good)
	before := r.admin(t, "GET", "/v1/config", nil)
	if before.status != http.StatusOK {
		t.Fatalf("config: %d %s", before.status, before.body)
	}

	type problem struct {
		anchor string // text whose line the problem is reported on
		field  string
		msg    string
	}
	for _, tc := range []struct {
		name     string
		old, new string
		want     []problem
	}{
		{"unknown key", "      tcp_port: 5432\n", "      tcp_port: 5432\n    cpu: 2\n",
			[]problem{{"    cpu: 2\n", "machines[0].cpu", "unknown"}}},
		{"plan names an unknown machine", "        machines: [web]\n", "        machines: [web, cache]\n",
			[]problem{{"        machines: [web, cache]\n", "plans[0].groups[1].machines[1]", `unknown machine "cache"`}}},
		{"address outside the mapped subnet",
			"    - name: rec\n      subnet: 10.1.0.0/24\n      gateway: 10.1.0.1\n",
			"    - name: rec\n      subnet: 10.2.0.0/24\n      gateway: 10.2.0.1\n",
			[]problem{
				{"        address: 10.1.0.10/24\n", "machines[0].nics[0].address", "10.1.0.10 is outside the mapped network rec (10.2.0.0/24)"},
				{"        address: 10.1.0.20/24\n", "machines[1].nics[0].address", "10.1.0.20 is outside the mapped network rec (10.2.0.0/24)"}}},
		{"two machines claim one address", "        address: 10.1.0.20/24\n", "        address: 10.1.0.10/24\n    # dup\n",
			[]problem{{"        address: 10.1.0.10/24\n    # dup\n", "machines[1].nics[0].address", "10.1.0.10 is already claimed by db/eth0"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := edit(t, good, tc.old, tc.new)
			a := r.admin(t, "POST", "/v1/apply", []byte(bad))
			if a.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", a.status, a.body)
			}
			ae := a.apiError(t)
			if ae.Code != "invalid" {
				t.Errorf("code %q, want invalid", ae.Code)
			}
			for _, p := range tc.want {
				want := fmt.Sprintf("line %d: %s: ", lineOf(t, bad, p.anchor), p.field)
				if !strings.Contains(ae.Error, want) || !strings.Contains(ae.Error, p.msg) {
					t.Errorf("error %q\nwant it to name %q and say %q", ae.Error, want, p.msg)
				}
			}
			after := r.admin(t, "GET", "/v1/config", nil)
			if after.status != http.StatusOK || !bytes.Equal(after.body, before.body) {
				t.Errorf("config changed by a refused apply:\nbefore %s\nafter  %d %s", before.body, after.status, after.body)
			}
		})
	}

	// Idempotent: the same document is the same version; a change is a
	// new one (so the version is not simply constant).
	if again := r.mustApply(t, good); again != v {
		t.Errorf("applying the same document again: version %d, want %d", again, v)
	}
	if a := r.admin(t, "GET", "/v1/config", nil); !bytes.Equal(a.body, before.body) {
		t.Errorf("config after re-applying the same document differs:\n%s\n%s", before.body, a.body)
	}
	changed := edit(t, good, "      http_port: 80\n", "      http_port: 8080\n")
	if v2 := r.mustApply(t, changed); v2 != v+1 {
		t.Errorf("a changed document: version %d, want %d", v2, v+1)
	}
}

// TestApplyTooLarge: a document over the limit is refused whole (413)
// and the config in force stays; it was cut at the limit and the prefix
// applied, which here would have been a valid document of its own.
func TestApplyTooLarge(t *testing.T) {
	e := newEnv(t, nil)
	r := e.start(t)
	r.mustApply(t, e.doc())
	before := r.admin(t, "GET", "/v1/config", nil)
	changed := edit(t, e.doc(), "      http_port: 80\n", "      http_port: 8080\n")
	big := []byte(changed + "# " + strings.Repeat("x", 4<<20) + "\n")
	a := r.admin(t, "POST", "/v1/apply", big)
	if a.status != http.StatusRequestEntityTooLarge || a.apiError(t).Code != "too_large" {
		t.Fatalf("apply of %d bytes: %d %s, want 413 too_large", len(big), a.status, a.body)
	}
	if after := r.admin(t, "GET", "/v1/config", nil); !bytes.Equal(after.body, before.body) {
		t.Errorf("config changed by a refused apply:\nbefore %s\nafter  %s", before.body, after.body)
	}
}

// TestApplyRefusesDroppingBusyPlan: a document that drops a plan which
// is failed over, has an active job or a test copy up is refused (412,
// naming the plan and why) and changes nothing; a protected idle plan
// may be dropped.
func TestApplyRefusesDroppingBusyPlan(t *testing.T) {
	e := newEnv(t, nil)
	r := e.start(t)
	ctx := context.Background()
	st := r.Orchestrator().Store
	two := edit(t, e.doc(), "      - name: frontend\n        machines: [web]\n",
		"  - name: spare\n    groups:\n      - name: frontend\n        machines: [web]\n")
	one := edit(t, e.doc(), "      - name: frontend\n        machines: [web]\n", "")
	for _, tc := range []struct {
		name, why string
		set       func(t *testing.T)
		undo      func(t *testing.T)
	}{
		{"failed over", "is failed-over, not protected",
			func(t *testing.T) {
				putPlan(t, st, &store.PlanState{Plan: "spare", Phase: "failed-over", Failover: "j-fo"})
			},
			func(t *testing.T) { putPlan(t, st, &store.PlanState{Plan: "spare", Phase: "protected"}) }},
		{"test copy up", "has a test copy up",
			func(t *testing.T) {
				putPlan(t, st, &store.PlanState{Plan: "spare", Phase: "protected", Test: "j-test"})
			},
			func(t *testing.T) { putPlan(t, st, &store.PlanState{Plan: "spare", Phase: "protected"}) }},
		{"active job", "has an active job j-run",
			func(t *testing.T) {
				j := &store.Job{ID: "j-run", Plan: "spare", Type: "test-failover", State: store.Failed, Created: time.Now().UTC()}
				if err := st.CreateJob(ctx, j); err != nil {
					t.Fatal(err)
				}
			},
			func(t *testing.T) {
				j, err := st.Job(ctx, "j-run")
				if err != nil {
					t.Fatal(err)
				}
				j.State = store.Canceled
				if err := st.SaveJob(ctx, j); err != nil {
					t.Fatal(err)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r.mustApply(t, two)
			before := r.admin(t, "GET", "/v1/config", nil)
			tc.set(t)
			a := r.admin(t, "POST", "/v1/apply", []byte(one))
			if a.status != http.StatusPreconditionFailed || !strings.Contains(a.apiError(t).Error, "plan spare "+tc.why) {
				t.Errorf("dropping plan spare that %s: %d %s", tc.why, a.status, a.body)
			}
			if after := r.admin(t, "GET", "/v1/config", nil); !bytes.Equal(after.body, before.body) {
				t.Errorf("config changed by a refused apply")
			}
			tc.undo(t)
		})
	}
	if a := r.admin(t, "POST", "/v1/apply", []byte(one)); a.status != http.StatusOK {
		t.Errorf("dropping an idle protected plan: %d %s", a.status, a.body)
	}
}

// putPlan overwrites plan ps.Plan's state with ps (compare-and-set at the
// stored version).
func putPlan(t *testing.T, st store.Store, ps *store.PlanState) {
	t.Helper()
	cur, err := st.PlanState(context.Background(), ps.Plan)
	if err != nil {
		t.Fatal(err)
	}
	ps.Version = cur.Version
	if err := st.PutPlanState(context.Background(), ps); err != nil {
		t.Fatal(err)
	}
}
