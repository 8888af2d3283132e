package demo

import (
	"fmt"
	"io"
	"time"
)

// Report is the drill report: every figure is measured by the demo itself
// (its customers' acknowledged orders, the databases it queries), next to
// what Haven's own job reports say.
type Report struct {
	Dir       string   `json:"dir"`
	Where     Where    `json:"where"`
	Protect   Protect  `json:"protect"`
	Test      TestRun  `json:"test_failover"`
	Disaster  Disaster `json:"disaster"`
	Failover  Failover `json:"unplanned_failover"`
	Failback  Failback `json:"failback"`
	Planned   *Planned `json:"planned_failover,omitempty"` // --planned runs only this
	Orders    int      `json:"orders_acknowledged"`
	Steps     []Step   `json:"steps"`
	TotalSecs float64  `json:"total_seconds"`
}

// Where the demo's parts are, for trying things by hand (and for tests).
type Where struct {
	Customers   string `json:"customers_netns"` // Unbound and the load generator
	Internet    string `json:"internet_netns"`  // haven dns; routes customers to both sites
	Primary     string `json:"primary_netns"`
	Resolver    string `json:"resolver"`
	ServerState string `json:"server_state_dir"`
	OrdersLog   string `json:"orders_log"` // every acknowledged order: id, RFC 3339 time, address
}

// Protect: the first points, as `haven status` showed them.
type Protect struct {
	RPOSeconds map[string]float64 `json:"rpo_seconds"`
	Points     map[string]int     `json:"points"`
}

// TestRun is the drill in the isolated network.
type TestRun struct {
	Job              string  `json:"job"`
	Passed           bool    `json:"passed"`
	RTOSeconds       float64 `json:"haven_rto_seconds"`
	TestOrder        string  `json:"test_order"` // placed and read back inside the test network
	CustomerFailures int     `json:"customer_failures"`
	CustomerOrders   int     `json:"customer_orders"`
	DNSAnswer        string  `json:"dns_answer"` // the resolver's answer during the drill
}

// Disaster: what the customers had been told before the primary died, and
// what the recovered database lacks.
type Disaster struct {
	At          time.Time `json:"at"`
	AckedBefore int       `json:"acked_before"`
	Lost        int       `json:"lost_orders"`
	LostSeconds float64   `json:"lost_seconds"` // disaster minus the oldest lost order's acknowledgement
	LostIDs     []string  `json:"lost_ids,omitempty"`
}

// Failover is the unplanned failover as customers saw it.
type Failover struct {
	Job             string             `json:"job"`
	Command         time.Time          `json:"command"`
	FirstOrder      string             `json:"first_order"`
	FirstOrderAt    time.Time          `json:"first_order_at"`
	RTOSeconds      float64            `json:"rto_seconds"` // command -> first acknowledged order through the resolver
	HavenRTOSeconds float64            `json:"haven_rto_seconds"`
	DataLossSeconds map[string]float64 `json:"haven_data_loss_seconds"`
	DNSAnswer       string             `json:"dns_answer"`
}

// Failback is the planned return to the primary's old disks.
type Failback struct {
	Job           string         `json:"job"`
	BytesWritten  int64          `json:"bytes_written"`
	DiskBytes     int64          `json:"disk_bytes"`
	Disks         []FailbackDisk `json:"disks"`
	OrdersChecked int            `json:"orders_checked"` // acknowledged after the failover command
	Lost          int            `json:"lost_orders"`
	LostIDs       []string       `json:"lost_ids,omitempty"`
	DNSAnswer     string         `json:"dns_answer"`
}

// FailbackDisk is one disk of the old primary.
type FailbackDisk struct {
	Machine      string `json:"machine"`
	Disk         string `json:"disk"`
	BytesWritten int64  `json:"bytes_written"`
	Size         int64  `json:"size"`
}

// Step is one stage of the demo and how long it took.
type Step struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// Print writes the report for people.
func (r *Report) Print(w io.Writer) {
	p := func(f string, a ...any) { fmt.Fprintf(w, f+"\n", a...) }
	if r.Planned != nil {
		r.printPlanned(w)
		r.printSteps(w)
		return
	}
	p("\n=== Drill report ===")
	p("Protection       RPO at first points: db %.1fs, web %.1fs", r.Protect.RPOSeconds["db"], r.Protect.RPOSeconds["web"])
	verdict := "PASSED"
	if !r.Test.Passed {
		verdict = "FAILED"
	}
	p("Test failover    %s: shop up in the isolated network in %.1fs, test order %q placed and read back;", verdict, r.Test.RTOSeconds, r.Test.TestOrder)
	p("                 customers meanwhile: %d orders, %d failed, DNS answered %s", r.Test.CustomerOrders, r.Test.CustomerFailures, r.Test.DNSAnswer)
	p("Disaster         %s: %d orders acknowledged before it", r.Disaster.At.UTC().Format("15:04:05.000"), r.Disaster.AckedBefore)
	p("Data lost        %d acknowledged orders missing from the recovered database (the last %.1fs before the disaster)", r.Disaster.Lost, r.Disaster.LostSeconds)
	p("RTO              %.1fs from `haven failover unplanned` to the first customer order through the resolver (%s at %s)", r.Failover.RTOSeconds, r.Failover.FirstOrder, r.Failover.DNSAnswer)
	p("Failback         wrote %s of %s disks onto the old primary; %d of %d orders placed since the failover lost", mib(r.Failback.BytesWritten), mib(r.Failback.DiskBytes), r.Failback.Lost, r.Failback.OrdersChecked)
	p("Targets          ≤ 15 s of orders lost: %s; served again within 30 s: %s; nothing lost in failback: %s",
		met(r.Disaster.LostSeconds <= 15), met(r.Failover.RTOSeconds <= 30), met(r.Failback.Lost == 0))
	r.printSteps(w)
}

func (r *Report) printSteps(w io.Writer) {
	p := func(f string, a ...any) { fmt.Fprintf(w, f+"\n", a...) }
	p("Orders           %d acknowledged in all", r.Orders)
	p("Steps:")
	for _, s := range r.Steps {
		p("  %-34s %6.1fs", s.Name, s.Seconds)
	}
	p("  %-34s %6.1fs", "total", r.TotalSecs)
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}
