package demo

import (
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/haven-dr/haven/internal/demo/rig"
)

// Planned is a planned failover of the shop as its customers saw it:
// every figure but the job's own comes from the customers' order log and
// the recovered database.
type Planned struct {
	Job     string    `json:"job"`
	Command time.Time `json:"command"`
	// JobSeconds: the command to its end, as the client saw it.
	JobSeconds float64 `json:"job_seconds"`
	// LastPrimary, FirstRecovery: the last order acknowledged by the
	// primary and the first by the recovery site, seconds after the
	// command. Their difference is the customers' outage.
	LastPrimarySeconds   float64  `json:"last_primary_seconds"`
	FirstRecoverySeconds float64  `json:"first_recovery_seconds"`
	OutageSeconds        float64  `json:"outage_seconds"`
	FailedAttempts       int      `json:"failed_attempts"` // orders not acknowledged meanwhile (customers retry)
	OrdersChecked        int      `json:"orders_checked"`  // acknowledged by the primary, looked up at the recovery site
	Lost                 int      `json:"lost_orders"`
	LostIDs              []string `json:"lost_ids,omitempty"`
	// HavenSteps: the job's steps from its report (seconds each).
	HavenSteps []Step   `json:"haven_steps"`
	Disks      []string `json:"disks"` // machine/disk: method, bytes written
	DNSSeconds float64  `json:"haven_dns_seconds"`
}

// planned fails the shop over to the recovery site while customers order,
// and measures their outage and the orders the recovery site lacks.
func (s *scenario) planned() error {
	s.step("planned failover")
	// A point and a standby refresh have just happened at protect; let
	// the customers order on for a while so the final point carries
	// writes the standby does not hold, as it would in real life.
	time.Sleep(5 * time.Second)
	_, fails0 := s.cust.snapshot()
	cmdAt := time.Now()
	rep, err := s.job("failover", "planned", "--plan", "shop")
	if err != nil {
		return err
	}
	p := &Planned{Job: rep.Job, Command: cmdAt, JobSeconds: time.Since(cmdAt).Seconds()}
	s.rep.Planned = p
	if rep.DNSSeconds != nil {
		p.DNSSeconds = *rep.DNSSeconds
	}
	for _, st := range rep.Steps {
		p.HavenSteps = append(p.HavenSteps, Step{Name: st.Name, Seconds: st.Seconds})
	}
	for _, d := range rep.Disks {
		p.Disks = append(p.Disks, fmt.Sprintf("%s/%s: %s, %d bytes written, %.3fs", d.Machine, d.Disk, d.Method, d.BytesWritten, d.Seconds))
	}
	var first Ack
	err = rig.Eventually(s.ctx, time.Minute, "a customer order at the recovery site", func() error {
		a, ok := s.cust.firstAt(cmdAt, recWeb)
		if !ok {
			return fmt.Errorf("no order at %s since the failover command", recWeb)
		}
		first = a
		return nil
	})
	if err != nil {
		return err
	}
	acks, fails1 := s.cust.snapshot()
	p.FailedAttempts = fails1 - fails0
	var last Ack
	for _, a := range acks {
		if a.Addr == primWeb && a.At.After(last.At) {
			last = a
		}
	}
	p.LastPrimarySeconds = last.At.Sub(cmdAt).Seconds()
	p.FirstRecoverySeconds = first.At.Sub(cmdAt).Seconds()
	p.OutageSeconds = first.At.Sub(last.At).Seconds()
	list, err := rig.HTTPIn(s.ctx, s.custNS, "GET", "http://"+recWeb+"/orders", "")
	if err != nil {
		return err
	}
	have := lines(list)
	for _, a := range acks {
		if a.Addr == primWeb {
			p.OrdersChecked++
			if !have[a.ID] {
				p.Lost++
				p.LostIDs = append(p.LostIDs, a.ID)
			}
		}
	}
	sort.Strings(p.LostIDs)
	s.rep.Orders = len(acks)
	s.Say("   customers' outage %.2fs (last order at the primary %.2fs, first at the recovery site %.2fs after the command); job %.2fs",
		p.OutageSeconds, p.LastPrimarySeconds, p.FirstRecoverySeconds, p.JobSeconds)
	s.Say("   %d of %d orders acknowledged by the primary are missing at the recovery site", p.Lost, p.OrdersChecked)
	return nil
}

// printPlanned is the report of a --planned run.
func (r *Report) printPlanned(w io.Writer) {
	p := func(f string, a ...any) { fmt.Fprintf(w, f+"\n", a...) }
	x := r.Planned
	p("\n=== Planned failover report ===")
	p("Outage           %.2fs: last order at the primary %.2fs, first at the recovery site %.2fs after `haven failover planned`", x.OutageSeconds, x.LastPrimarySeconds, x.FirstRecoverySeconds)
	p("Job              %s: %.2fs (DNS answered the recovery site at %.2fs); %d customer attempts failed meanwhile", x.Job, x.JobSeconds, x.DNSSeconds, x.FailedAttempts)
	p("Orders lost      %d of %d acknowledged by the primary", x.Lost, x.OrdersChecked)
	p("Targets          ≤ 3 s outage: %s; 0 lost: %s", met(x.OutageSeconds <= 3), met(x.Lost == 0))
	p("Job steps:")
	for _, s := range x.HavenSteps {
		p("  %-44s %6.3fs", s.Name, s.Seconds)
	}
	for _, d := range x.Disks {
		p("  disk %s", d)
	}
}
