package demo

import (
	"strings"
	"testing"
)

// TestReportTargets: the text report says which of the targets a
// run missed, from the measured figures.
func TestReportTargets(t *testing.T) {
	r := &Report{Disaster: Disaster{Lost: 300, LostSeconds: 16}, Failover: Failover{RTOSeconds: 4}, Failback: Failback{Lost: 0, OrdersChecked: 9}}
	var b strings.Builder
	r.Print(&b)
	if !strings.Contains(b.String(), "≤ 15 s of orders lost: MISSED; served again within 30 s: met; nothing lost in failback: met") {
		t.Fatalf("report:\n%s", b.String())
	}
	r.Disaster.LostSeconds, r.Failback.Lost = 5, 1
	b.Reset()
	r.Print(&b)
	if !strings.Contains(b.String(), "≤ 15 s of orders lost: met; served again within 30 s: met; nothing lost in failback: MISSED") {
		t.Fatalf("report:\n%s", b.String())
	}
}
