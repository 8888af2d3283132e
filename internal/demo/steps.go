package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/haven-dr/haven/internal/demo/rig"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/store"
)

// setup makes the work directory, a copy of this haven binary (so the
// agent's hooks outlive `go run`) and the agent's token.
func (s *scenario) setup(dir string) error {
	var err error
	if dir == "" {
		dir, err = os.MkdirTemp("/var/tmp", "hvdemo")
	} else {
		err = os.Mkdir(dir, 0o755)
	}
	if err != nil {
		return fmt.Errorf("work directory: %w", err)
	}
	s.Dir = dir
	os.Chmod(dir, 0o755)
	s.Defer("rm -rf "+dir, func() error { return os.RemoveAll(dir) })
	s.LogDir = filepath.Join(dir, "logs")
	os.MkdirAll(s.LogDir, 0o755)
	// Pushed after the directory's removal, so it runs before it: a failed
	// demo's logs survive it.
	s.keptLogs = filepath.Join(os.TempDir(), filepath.Base(dir)+"-logs")
	s.Defer("", func() error {
		if s.failed {
			os.RemoveAll(s.keptLogs)
			exec.Command("cp", "-r", s.LogDir, s.keptLogs).Run()
		}
		return nil
	})
	self, err := os.Executable()
	if err != nil {
		return err
	}
	os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
	s.Bin = filepath.Join(dir, "bin", "haven")
	if err := copyFile(self, s.Bin, 0o755); err != nil {
		return err
	}
	s.token = filepath.Join(dir, "agent.token")
	if err := os.WriteFile(s.token, []byte("demo-agent-token-"+strings.Repeat("x", 24)+"\n"), 0o600); err != nil {
		return err
	}
	s.server = rig.Server{State: filepath.Join(dir, "hvdisks", "server")}
	if s.agentPort, err = rig.FreePort(); err != nil {
		return err
	}
	if s.server.Port, err = rig.FreePort(); err != nil {
		return err
	}
	s.Say("   work directory %s (logs in %s)", dir, s.LogDir)
	return nil
}

// build is the primary site, the customers' internet and Haven.
func (s *scenario) build() error {
	s.step("primary site, customers, Haven")
	ctx := s.ctx
	if err := s.MountXFS(4 << 10); err != nil {
		return err
	}
	if err := s.network(); err != nil {
		return err
	}
	if err := s.InitVault(ctx, "haven-demo-password"); err != nil {
		return err
	}
	s.server.Vault, s.server.PasswordFile, s.server.Edge = s.Vault, s.PasswordFile, s.Inet
	if err := s.machinesUp(ctx, s.imgs); err != nil {
		return fmt.Errorf("%w\ndb console:\n%s", err, rig.Tail(filepath.Join(s.LogDir, "db.console.log")))
	}
	steps := []func() error{
		func() error { return s.StartDNS(ctx, dnsAddr) },
		func() error { return s.startUnbound(ctx) },
		s.startAgent,
		func() error { return s.startServer(ctx) },
	}
	for _, f := range steps {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

// protect applies the protection and waits for the first points of both
// machines and their standby images; customers start ordering.
func (s *scenario) protect() error {
	s.step("protect")
	path, err := s.Write("protection.yaml", s.protection())
	if err != nil {
		return err
	}
	if _, err := s.Haven(s.ctx, s.server.Env(), "apply", "-f", path); err != nil {
		return err
	}
	inflight := 1
	if s.plannedOnly {
		inflight = 30 // an order every 100 ms, each given up after 3 s
	}
	if s.cust, err = startCustomers(s.ctx, s.custNS, filepath.Join(s.Dir, "orders.log"), inflight); err != nil {
		return err
	}
	s.Say("   customers place orders through their resolver (Unbound, %s) at http://%s/", resolverAddr, ShopName)
	s.rep.Protect = Protect{RPOSeconds: map[string]float64{}, Points: map[string]int{}}
	err = rig.Eventually(s.ctx, 3*time.Minute, "first points and standby images", func() error {
		st, err := s.client.Status(s.ctx)
		if err != nil {
			return err
		}
		if len(st.Machines) != 2 {
			return fmt.Errorf("%d machines", len(st.Machines))
		}
		for _, m := range st.Machines {
			if m.Points < 1 || m.Standby == "" || m.RPOSeconds == nil {
				return fmt.Errorf("%s: %d points, standby %q", m.Name, m.Points, m.Standby)
			}
		}
		for _, m := range st.Machines {
			s.rep.Protect.RPOSeconds[m.Name] = *m.RPOSeconds
			s.rep.Protect.Points[m.Name] = m.Points
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w\nagent log:\n%s", err, s.Log("agent"))
	}
	out, _ := s.Haven(s.ctx, s.server.Env(), "status")
	s.Say("%s", indent(out))
	acks, _ := s.cust.snapshot()
	if len(acks) == 0 {
		return fmt.Errorf("no customer order acknowledged yet; shop console:\n%s", rig.Tail(filepath.Join(s.LogDir, "web.console.log")))
	}
	return nil
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = "     " + lines[i]
	}
	return strings.Join(lines, "\n")
}

// job runs a haven job command with --json and reads its report.
func (s *scenario) job(args ...string) (*orchestrator.Report, error) {
	out, err := s.Haven(s.ctx, s.server.Env(), append(args, "--json")...)
	var rep orchestrator.Report
	if jerr := json.Unmarshal([]byte(out), &rep); jerr != nil {
		if err == nil {
			err = jerr
		}
		return nil, fmt.Errorf("%w\nserver log:\n%s", err, s.Log("server"))
	}
	if err != nil || rep.State != string(store.Succeeded) {
		return &rep, fmt.Errorf("haven %s: job %s %s: %s\nserver log:\n%s", strings.Join(args, " "), rep.Job, rep.State, rep.Error, s.Log("server"))
	}
	if rep.RTOSeconds != nil {
		s.Say("     job %s succeeded; Haven's RTO %.1fs", rep.Job, *rep.RTOSeconds)
	} else {
		s.Say("     job %s succeeded", rep.Job)
	}
	return &rep, nil
}

// testFailover runs a drill in the isolated test network: an order placed
// there, customers untouched, then cleanup.
func (s *scenario) testFailover() error {
	s.step("test failover")
	before, fails0 := s.cust.snapshot()
	rep, err := s.job("failover", "test", "--plan", "shop")
	if err != nil {
		return err
	}
	s.rep.Test.Job = rep.Job
	if rep.RTOSeconds != nil {
		s.rep.Test.RTOSeconds = *rep.RTOSeconds
	}
	testNS := rig.HostID(s.server.State) + "-test"
	id := "drill-" + time.Now().UTC().Format("150405")
	order := "http://" + recWeb + "/order?customer=drill&id=" + id
	s.Say("   $ ip netns exec %s curl -X POST '%s'", testNS, order)
	_, err = rig.HTTPIn(s.ctx, testNS, "POST", order, "")
	if err == nil {
		var list string
		list, err = rig.HTTPIn(s.ctx, testNS, "GET", "http://"+recWeb+"/orders", "")
		if err == nil && !hasLine(list, id) {
			err = fmt.Errorf("test order %s not in the test copy's database", id)
		}
	}
	if err == nil {
		// Isolated: the test copy must not answer the customers.
		ictx, cancel := context.WithTimeout(s.ctx, 3*time.Second)
		_, herr := rig.HTTPIn(ictx, s.custNS, "GET", "http://"+recWeb+"/", "")
		cancel()
		if herr == nil {
			err = fmt.Errorf("the test copy at %s answers the customers' namespace", recWeb)
		}
	}
	if err == nil {
		s.rep.Test.TestOrder = id
	} else {
		s.Say("   the test copy did not take an order: %v", err)
	}
	ips, _ := rig.Resolve(s.custNS, resolverAddr)
	s.rep.Test.DNSAnswer = strings.Join(ips, ",")
	if _, err := s.job("failover", "cleanup", "--plan", "shop", "--note", "haven demo drill"); err != nil {
		return err
	}
	after, fails1 := s.cust.snapshot()
	s.rep.Test.CustomerOrders = len(after) - len(before)
	s.rep.Test.CustomerFailures = fails1 - fails0
	s.rep.Test.Passed = s.rep.Test.TestOrder != "" && s.rep.Test.DNSAnswer == primWeb && s.rep.Test.CustomerFailures == 0
	s.Say("   drill %s: test order %q, customers had %d failures, DNS answered %s", map[bool]string{true: "passed", false: "FAILED"}[s.rep.Test.Passed],
		s.rep.Test.TestOrder, s.rep.Test.CustomerFailures, s.rep.Test.DNSAnswer)
	return nil
}

func hasLine(list, id string) bool {
	for _, l := range strings.Split(list, "\n") {
		if l == id {
			return true
		}
	}
	return false
}

// disaster waits for a fresh point, lets customers order for a few seconds
// more, then kills the primary site at once: its machines, its agent, its
// link to the internet.
func (s *scenario) disaster() error {
	s.step("disaster")
	since := time.Now()
	err := rig.Eventually(s.ctx, 2*time.Minute, "a new point of every machine", func() error {
		st, err := s.client.Status(s.ctx)
		if err != nil {
			return err
		}
		for _, m := range st.Machines {
			if m.PointTime == nil || m.PointTime.Before(since) {
				return fmt.Errorf("%s: newest point %v", m.Name, m.PointTime)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	time.Sleep(5 * time.Second)
	// Machines and uplink first, without waiting: the disaster moment is
	// taken once the primary can no longer acknowledge anything, so no
	// order acknowledged after it came from the primary.
	web, db := s.KillMachine("web"), s.KillMachine("db")
	s.Say("   $ kill -KILL %d %d  # web, db", web, db)
	if err := s.CutPrimary(); err != nil {
		return fmt.Errorf("cut the primary off: %w", err)
	}
	if a := s.Procs["agent"]; a != nil {
		s.Say("   $ kill -KILL -- -%d  # the agent", a.Process.Pid)
	}
	s.Kill("agent", syscall.SIGKILL)
	at := time.Now()
	acks, _ := s.cust.snapshot()
	s.rep.Disaster.At = at
	for _, a := range acks {
		if a.At.Before(at) {
			s.rep.Disaster.AckedBefore++
		}
	}
	s.Say("   the primary site is gone at %s; customers had %d orders acknowledged", at.UTC().Format("15:04:05.000"), s.rep.Disaster.AckedBefore)
	return nil
}

// unplanned fails over to the latest points and measures, from the
// customers' side, the RTO and the orders the recovered database lacks.
func (s *scenario) unplanned() error {
	s.step("unplanned failover")
	cmdAt := time.Now()
	rep, err := s.job("failover", "unplanned", "--plan", "shop")
	if err != nil {
		return err
	}
	f := &s.rep.Failover
	f.Job, f.Command, f.DataLossSeconds = rep.Job, cmdAt, map[string]float64{}
	if rep.RTOSeconds != nil {
		f.HavenRTOSeconds = *rep.RTOSeconds
	}
	for _, p := range rep.Points {
		if p.DataLossSeconds != nil {
			f.DataLossSeconds[p.Machine] = *p.DataLossSeconds
		}
	}
	var first Ack
	err = rig.Eventually(s.ctx, 2*time.Minute, "a customer order at the recovery site", func() error {
		a, ok := s.cust.firstAfter(cmdAt)
		if !ok {
			return fmt.Errorf("no order acknowledged since the failover command")
		}
		first = a
		return nil
	})
	if err != nil {
		return err
	}
	f.FirstOrder, f.FirstOrderAt, f.DNSAnswer = first.ID, first.At, first.Addr
	f.RTOSeconds = first.At.Sub(cmdAt).Seconds()
	s.Say("   customers order again: %s acknowledged by %s, %.1fs after the failover command", first.ID, first.Addr, f.RTOSeconds)
	list, err := rig.HTTPIn(s.ctx, s.custNS, "GET", "http://"+recWeb+"/orders", "")
	if err != nil {
		return err
	}
	have := lines(list)
	acks, _ := s.cust.snapshot()
	d := &s.rep.Disaster
	var oldest time.Time
	for _, a := range acks {
		if a.At.Before(d.At) && !have[a.ID] {
			d.Lost++
			d.LostIDs = append(d.LostIDs, a.ID)
			if oldest.IsZero() {
				oldest = a.At
			}
		}
	}
	if d.Lost > 0 {
		d.LostSeconds = d.At.Sub(oldest).Seconds()
	}
	s.Say("   the recovered database lacks %d of %d orders acknowledged before the disaster (%.1fs)", d.Lost, d.AckedBefore, d.LostSeconds)
	return nil
}

func lines(list string) map[string]bool {
	m := map[string]bool{}
	for _, l := range strings.Split(list, "\n") {
		if l != "" {
			m[l] = true
		}
	}
	return m
}

// reprotectFailback commits, replicates the recovery site back, brings the
// primary's network and agent back and fails back while customers order.
func (s *scenario) reprotectFailback() error {
	s.step("commit and reprotect")
	if _, err := s.Haven(s.ctx, s.server.Env(), "failover", "commit", "--plan", "shop"); err != nil {
		return err
	}
	if _, err := s.job("reprotect", "--plan", "shop"); err != nil {
		return err
	}
	s.step("planned failback")
	s.Say("   the primary site is back: its link and routes, its agent (its machines stay down until failback)")
	if err := s.reconnect(); err != nil {
		return err
	}
	if err := s.RunAgent(); err != nil {
		return err
	}
	time.Sleep(3 * time.Second)
	rep, err := s.job("failback", "--plan", "shop")
	if err != nil {
		return fmt.Errorf("%w\nagent log:\n%s", err, s.Log("agent"))
	}
	fb := &s.rep.Failback
	fb.Job = rep.Job
	for _, d := range rep.Failback {
		fb.Disks = append(fb.Disks, FailbackDisk{Machine: d.Machine, Disk: d.Disk, BytesWritten: d.BytesWritten, Size: d.Size})
		fb.BytesWritten += d.BytesWritten
		fb.DiskBytes += d.Size
	}
	done := time.Now()
	if err := rig.Eventually(s.ctx, time.Minute, "a customer order at the primary again", func() error {
		if a, ok := s.cust.firstAfter(done); ok && a.Addr == primWeb {
			return nil
		}
		return fmt.Errorf("no order at %s since the failback", primWeb)
	}); err != nil {
		return err
	}
	s.cust.stop()
	acks, _ := s.cust.snapshot()
	s.cust = nil
	list, err := rig.HTTPIn(s.ctx, s.custNS, "GET", "http://"+primWeb+"/orders", "")
	if err != nil {
		return err
	}
	have := lines(list)
	for _, a := range acks {
		if a.At.After(s.rep.Failover.Command) {
			fb.OrdersChecked++
			if !have[a.ID] {
				fb.Lost++
				fb.LostIDs = append(fb.LostIDs, a.ID)
			}
		}
	}
	ips, _ := rig.Resolve(s.custNS, resolverAddr)
	fb.DNSAnswer = strings.Join(ips, ",")
	s.rep.Orders = len(acks)
	s.Say("   failback wrote %s of %s; %d of %d orders placed since the failover are missing at the primary", mib(fb.BytesWritten), mib(fb.DiskBytes), fb.Lost, fb.OrdersChecked)
	return nil
}

// reconnect undoes the disaster's cut: the link, the route to prod and
// the primary's route back to the customers.
func (s *scenario) reconnect() error {
	if err := s.Reconnect(); err != nil {
		return err
	}
	return s.routeCustomers()
}

// keepHelp says what to try on the running demo and how to remove it.
func (s *scenario) keepHelp() {
	td := filepath.Join(os.TempDir(), filepath.Base(s.Dir)+"-teardown.sh")
	script := "#!/bin/sh\n# Removes everything `haven demo --keep` left running.\n" + s.Script()
	if err := os.WriteFile(td, []byte(script), 0o755); err != nil {
		s.Say("teardown script: %v", err)
	}
	env := strings.Join(s.server.Env(), " ")
	s.Say("\nThe demo is still running (--keep). Try:")
	s.Say("  %s %s status", env, s.Bin)
	s.Say("  %s %s job list", env, s.Bin)
	s.Say("  ip netns exec %s dig @%s %s +short", s.custNS, strings.Split(resolverAddr, ":")[0], ShopName)
	s.Say("  ip netns exec %s curl -s http://%s/", s.custNS, primWeb)
	s.Say("Remove it all with:\n  sh %s", td)
}
