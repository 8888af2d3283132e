package server_test

import (
	"encoding/csv"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/api"
)

// TestReportAndChartRequests: the monthly report and the pictures answer
// what they are asked for, and refuse bad input with a clear error.
func TestReportAndChartRequests(t *testing.T) {
	e := newEnv(t, nil)
	r := e.start(t)
	r.mustApply(t, e.doc())
	month := time.Now().UTC().Format("2006-01")

	var rep api.SLAReport
	a := r.admin(t, "GET", "/v1/plans/shop/report?month="+month, nil)
	a.decode(t, &rep)
	if rep.Plan != "shop" || rep.Month != month || len(rep.Machines) == 0 || rep.DrillsRun != 0 || rep.Drills == nil || rep.Failovers == nil {
		t.Fatalf("report of a plan never drilled: %+v", rep)
	}
	for _, m := range rep.Machines {
		if m.Points != 0 || m.WithinTarget != nil || m.MeasuredSeconds != 0 {
			t.Errorf("machine %s without any recorded point: %+v", m.Machine, m)
		}
	}
	a = r.admin(t, "GET", "/v1/plans/shop/report?format=csv", nil)
	rows, err := csv.NewReader(strings.NewReader(string(a.body))).ReadAll()
	if a.status != 200 || err != nil || len(rows) != 2+len(rep.Machines) || rows[0][0] != "section" || rows[1][0] != "summary" {
		t.Fatalf("CSV: %d %v\n%s", a.status, err, a.body)
	}
	for _, tc := range []struct {
		path   string
		status int
		says   string
	}{
		{"/v1/plans/shop/report?month=2026-13", 400, "want YYYY-MM"},
		{"/v1/plans/shop/report?month=december", 400, "want YYYY-MM"},
		{"/v1/plans/shop/report?format=pdf", 400, "want json or csv"},
		{"/v1/plans/nope/report", 404, `no plan "nope"`},
		{"/v1/machines/nope/rpo.svg", 404, `no machine "nope"`},
		{"/v1/machines/db/rpo.svg?span=week", 400, "want day or month"},
		{"/v1/jobs/nope/timeline.svg", 404, "nope"},
	} {
		a := r.admin(t, "GET", tc.path, nil)
		if a.status != tc.status || !strings.Contains(a.apiError(t).Error, tc.says) {
			t.Errorf("GET %s: %d %s, want %d saying %q", tc.path, a.status, a.body, tc.status, tc.says)
		}
	}
	for _, path := range []string{"/v1/machines/db/rpo.svg?span=month", "/v1/sitemap.svg"} {
		a := r.admin(t, "GET", path, nil)
		if a.status != 200 || !strings.HasPrefix(string(a.body), "<svg ") || !strings.HasSuffix(strings.TrimSpace(string(a.body)), "</svg>") {
			t.Errorf("GET %s: %d %.200s", path, a.status, a.body)
		}
	}
	// A client cannot mark its own test failover as a scheduled drill.
	a = r.admin(t, "POST", "/v1/plans/shop/jobs", []byte(`{"type":"test-failover","params":{"drill":"2026-12-06T03:00:00Z"}}`))
	if a.status != 400 || !strings.Contains(a.apiError(t).Error, "drill scheduler") {
		t.Fatalf("submit with drill: %d %s", a.status, a.body)
	}
}
