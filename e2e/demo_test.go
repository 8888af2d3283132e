package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/demo"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
)

// TestDemoScenario runs `haven demo --keep --json` and checks every figure
// of its report against what the test sees for itself: the customers'
// order log against PostgreSQL queried with psql, its own resolver query
// and order through the resolver, Haven's job reports, and what is left on
// the host before and after the teardown script.
func TestDemoScenario(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.PostgresBin(t)
	psql := testenv.LookPath(t, "psql")
	for _, tool := range []string{"unbound", "mkfs.xfs", "dig", "curl"} {
		testenv.LookPath(t, tool)
	}
	dir := filepath.Join(testenv.Dir(t), "hvdemo")
	teardown := filepath.Join(os.TempDir(), filepath.Base(dir)+"-teardown.sh")
	t.Cleanup(func() {
		if _, err := os.Stat(teardown); err == nil {
			exec.Command("sh", teardown).Run()
			os.Remove(teardown)
		}
	})
	r := haven(t, nil, "demo", "--keep", "--json", "--dir", dir)
	if r.code != 0 {
		t.Fatalf("haven demo: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var rep demo.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, r.stdout)
	}
	for _, cmd := range []string{"$ haven apply -f", "$ haven failover test --plan shop", "$ haven failover unplanned --plan shop",
		"$ haven reprotect --plan shop", "$ haven failback --plan shop", "$ haven agent run --config"} {
		if !strings.Contains(r.stderr, cmd) {
			t.Errorf("the demo did not show %q", cmd)
		}
	}
	w := rep.Where
	// Every host change is shown as the command that makes it, so a user
	// can repeat it: the customers' network, the cut, and the return of
	// the primary with the routes it lost (the link and the customers'
	// route are shown once when built, again when the primary returns).
	for cmd, n := range map[string]int{
		"$ ip netns add " + w.Customers + "\n":                      1,
		"$ ip -n " + w.Internet + " link set to-prim down\n":        1,
		"$ ip -n " + w.Internet + " link set to-prim up\n":          2,
		"$ ip -n " + w.Internet + " route replace 10.1.0.0/24 via ": 1,
		"$ ip -n " + w.Primary + " route replace 10.9.0.0/30 via ":  2,
	} {
		if got := strings.Count(r.stderr, cmd); got != n {
			t.Errorf("the demo showed %q %d times, want %d", strings.TrimSpace(cmd), got, n)
		}
	}
	prefixes := []string{strings.Split(w.Customers, "-")[0] + "-"}
	if b, err := os.ReadFile(filepath.Join(w.ServerState, "host", "host-id")); err == nil {
		prefixes = append(prefixes, strings.TrimSpace(string(b))+"-")
	}
	during := demoResources(dir, prefixes)
	if during.total() == 0 {
		t.Fatalf("the resource count sees nothing of the running demo: %+v", during)
	}
	// The customers have a namespace of their own, linked to inet (where
	// haven dns runs) by a veth pair.
	if w.Customers == w.Internet || !nsHasVeth(w.Customers, "uplink") || !nsHasVeth(w.Internet, "to-customers") {
		t.Fatalf("customers %q and internet %q: want two namespaces joined by a veth pair", w.Customers, w.Internet)
	}

	acks := readAcks(t, w.OrdersLog)
	db := ordersInDB(t, psql, w.Primary)

	t.Run("data lost in the disaster", func(t *testing.T) {
		var before, lost int
		var oldest time.Time
		for _, a := range acks {
			if a.At.Before(rep.Disaster.At) {
				before++
				if !db[a.ID] {
					lost++
					if oldest.IsZero() {
						oldest = a.At
					}
				}
			}
		}
		if before != rep.Disaster.AckedBefore || lost != rep.Disaster.Lost {
			t.Fatalf("test counts %d acknowledged before the disaster, %d missing from PostgreSQL; report says %d, %d",
				before, lost, rep.Disaster.AckedBefore, rep.Disaster.Lost)
		}
		if lost > 0 && !approx(rep.Disaster.At.Sub(oldest).Seconds(), rep.Disaster.LostSeconds) {
			t.Fatalf("lost window %.3fs, report %.3fs", rep.Disaster.At.Sub(oldest).Seconds(), rep.Disaster.LostSeconds)
		}
		if before == 0 {
			t.Fatal("no order acknowledged before the disaster")
		}
		// Crash consistency: the recovered database is a prefix of what
		// customers were told. Every order acknowledged before the
		// database's point was captured is there, and once one is
		// missing, so is every later one.
		job := jobReport(t, w.ServerState, rep.Failover.Job)
		var point time.Time
		for _, p := range job.Points {
			if p.Machine == "db" {
				point = p.Time
			}
		}
		if point.IsZero() || !point.Before(rep.Disaster.At) {
			t.Fatalf("database point %v, disaster %v", point, rep.Disaster.At)
		}
		missing := false
		for _, a := range acks {
			if !a.At.Before(rep.Disaster.At) {
				break
			}
			if a.At.Before(point) && !db[a.ID] {
				t.Fatalf("order %s acknowledged at %v, before the point at %v, is not in the recovered database", a.ID, a.At, point)
			}
			if missing && db[a.ID] {
				t.Fatalf("order %s is present after a missing one: not a crash-consistent copy", a.ID)
			}
			missing = missing || !db[a.ID]
		}
	})

	t.Run("RTO from the customers' side", func(t *testing.T) {
		var first *ack
		for i, a := range acks {
			if a.At.After(rep.Disaster.At) && a.At.Before(rep.Failover.Command) {
				t.Fatalf("order %s acknowledged between the disaster and the failover command: the primary was not down", a.ID)
			}
			if first == nil && a.At.After(rep.Failover.Command) {
				first = &acks[i]
			}
		}
		if first == nil || first.ID != rep.Failover.FirstOrder || first.Addr != "10.2.0.20" {
			t.Fatalf("first order after the failover command: %+v; report %s", first, rep.Failover.FirstOrder)
		}
		if got := first.At.Sub(rep.Failover.Command).Seconds(); !approx(got, rep.Failover.RTOSeconds) {
			t.Fatalf("RTO %.3fs by the log, report %.3fs", got, rep.Failover.RTOSeconds)
		}
		job := jobReport(t, w.ServerState, rep.Failover.Job)
		if job.Type != "unplanned-failover" || job.Started.Before(rep.Failover.Command) || job.Started.Sub(rep.Failover.Command) > 10*time.Second {
			t.Fatalf("failover job %s: type %s started %v, demo's command at %v", job.Job, job.Type, job.Started, rep.Failover.Command)
		}
	})

	t.Run("test failover", func(t *testing.T) {
		if !rep.Test.Passed || rep.Test.TestOrder == "" || rep.Test.CustomerFailures != 0 || rep.Test.DNSAnswer != "10.1.0.20" {
			t.Fatalf("drill: %+v", rep.Test)
		}
		if db[rep.Test.TestOrder] {
			t.Fatalf("the drill's order %s reached the production database", rep.Test.TestOrder)
		}
		out := mustHaven(t, serverEnvAt(w.ServerState), "job", "drills", "--plan", "shop", "--json")
		if !strings.Contains(out, rep.Test.Job) || !strings.Contains(out, `"passed": true`) {
			t.Fatalf("drill history lacks the passed drill %s:\n%s", rep.Test.Job, out)
		}
	})

	t.Run("failback", func(t *testing.T) {
		var checked, lost int
		for _, a := range acks {
			if a.At.After(rep.Failover.Command) {
				checked++
				if !db[a.ID] {
					lost++
				}
			}
		}
		if checked == 0 || checked != rep.Failback.OrdersChecked || lost != rep.Failback.Lost || lost != 0 {
			t.Fatalf("test: %d orders since the failover, %d missing; report %d, %d", checked, lost, rep.Failback.OrdersChecked, rep.Failback.Lost)
		}
		if last := acks[len(acks)-1]; last.Addr != "10.1.0.20" {
			t.Fatalf("the last order went to %s, not the primary", last.Addr)
		}
		job := jobReport(t, w.ServerState, rep.Failback.Job)
		var written, size int64
		for _, d := range job.Failback {
			written += d.BytesWritten
			size += d.Size
		}
		if written != rep.Failback.BytesWritten || size != rep.Failback.DiskBytes || written == 0 || written*4 > size {
			t.Fatalf("failback job wrote %d of %d; report %d of %d", written, size, rep.Failback.BytesWritten, rep.Failback.DiskBytes)
		}
	})

	t.Run("customers through the resolver now", func(t *testing.T) {
		out, err := exec.Command("ip", "netns", "exec", w.Customers, "dig", "+short", "@127.0.0.2", demo.ShopName, "A").Output()
		addr := strings.TrimSpace(string(out))
		if err != nil || addr != "10.1.0.20" || rep.Failback.DNSAnswer != addr {
			t.Fatalf("resolver answers %q (%v); report %s", out, err, rep.Failback.DNSAnswer)
		}
		id := fmt.Sprintf("test-%d", time.Now().UnixNano())
		if out, err := exec.Command("ip", "netns", "exec", w.Customers, "curl", "-fsS", "-X", "POST",
			"http://"+demo.ShopName+"/order?id="+id, "--resolve", demo.ShopName+":80:"+addr).CombinedOutput(); err != nil {
			t.Fatalf("order through the resolver's answer: %v %s", err, out)
		}
		if !ordersInDB(t, psql, w.Primary)[id] {
			t.Fatalf("order %s is not in PostgreSQL", id)
		}
	})

	if out, err := exec.Command("sh", teardown).CombinedOutput(); err != nil {
		t.Fatalf("teardown: %v\n%s", err, out)
	}
	if after := demoResources(dir, prefixes); after.total() != 0 {
		t.Fatalf("left after the teardown script: %+v", after)
	}
}

func approx(a, b float64) bool { return a-b < 0.01 && b-a < 0.01 }

type ack struct {
	ID   string
	At   time.Time
	Addr string
}

func readAcks(t *testing.T, path string) []ack {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []ack
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			t.Fatalf("orders log line %q", l)
		}
		at, err := time.Parse(time.RFC3339Nano, f[1])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ack{f[0], at, f[2]})
	}
	return out
}

// ordersInDB asks PostgreSQL on the primary's database machine directly.
func ordersInDB(t *testing.T, psql, ns string) map[string]bool {
	out, err := exec.Command("ip", "netns", "exec", ns, psql, "-h", "10.1.0.10", "-U", "postgres", "-Atc", "SELECT id FROM orders").CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v %s", err, out)
	}
	m := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		m[l] = true
	}
	return m
}

func serverEnvAt(state string) []string {
	return []string{"HAVEN_SERVER=" + serverAddr(state), "HAVEN_TOKEN_FILE=" + filepath.Join(state, "admin.token")}
}

// serverAddr reads the listen address from the demo's server config.
func serverAddr(state string) string {
	b, _ := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(state)), "server.yaml"))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "listen: "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func jobReport(t *testing.T, state, id string) *orchestrator.Report {
	out := mustHaven(t, serverEnvAt(state), "job", "show", id, "--json")
	var rep orchestrator.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("job %s: %v\n%s", id, err, out)
	}
	return &rep
}

// demoCount is what the demo has on the host: namespaces of its lab and
// server (the customers' among them) and their veth links, loop devices and mounts of its directory, processes running
// from it.
type demoCount struct{ netns, veths, loops, mounts, procs int }

func (c demoCount) total() int { return c.netns + c.veths + c.loops + c.mounts + c.procs }

// vethsIn lists the veth links of namespace ns.
func vethsIn(ns string) []string {
	out, _ := exec.Command("ip", "-n", ns, "-o", "link", "show", "type", "veth").Output()
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			names = append(names, strings.Split(strings.TrimSuffix(f[1], ":"), "@")[0])
		}
	}
	return names
}

func nsHasVeth(ns, link string) bool {
	for _, v := range vethsIn(ns) {
		if v == link {
			return true
		}
	}
	return false
}

func demoResources(dir string, prefixes []string) demoCount {
	var c demoCount
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		for _, p := range prefixes {
			if strings.HasPrefix(e.Name(), p) && strings.HasPrefix(e.Name(), vnet.Prefix) {
				c.netns++
				c.veths += len(vethsIn(e.Name()))
			}
		}
	}
	loops, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, l := range loops {
		if b, _ := os.ReadFile(l); strings.HasPrefix(string(b), dir) {
			c.loops++
		}
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	c.mounts = strings.Count(string(mi), dir)
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, _ := os.ReadFile(p); strings.Contains(string(b), dir) {
			c.procs++
		}
	}
	return c
}

// TestDemoInterrupted sends Ctrl-C (SIGINT) to `haven demo` while its test
// failover runs and checks it removed everything it had made.
func TestDemoInterrupted(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.PostgresBin(t)
	testenv.LookPath(t, "unbound")
	dir := filepath.Join(testenv.Dir(t), "hvdemo")
	cmd := exec.Command(havenBin, "demo", "--json", "--dir", dir)
	cmd.Env = append(os.Environ(), "HAVEN_TEST_KDF=fast")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	var prefixes []string
	var seen strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(seen.String(), "$ haven failover test") {
		n, err := stderr.Read(buf)
		seen.Write(buf[:n])
		if err != nil {
			t.Fatalf("demo ended before its test failover: %v\n%s", err, seen.String())
		}
	}
	for _, f := range strings.Fields(seen.String()) {
		if lab, ok := strings.CutSuffix(f, "-inet"); ok && strings.HasPrefix(lab, vnet.Prefix) {
			prefixes = append(prefixes, lab+"-")
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "hvdisks", "server", "host", "host-id"))
	if err != nil || len(prefixes) == 0 {
		t.Fatalf("host id %v, lab %v\n%s", err, prefixes, seen.String())
	}
	prefixes = append(prefixes, strings.TrimSpace(string(b))+"-")
	if during := demoResources(dir, prefixes); during.total() == 0 {
		t.Fatalf("the count sees nothing of the running demo: %+v", during)
	}
	time.Sleep(300 * time.Millisecond)
	cmd.Process.Signal(os.Interrupt)
	rest, _ := readAll(stderr)
	werr := cmd.Wait()
	if werr == nil {
		t.Fatalf("interrupted demo exited 0\n%s%s", seen.String(), rest)
	}
	if !strings.Contains(rest, "removing everything") {
		t.Fatalf("no teardown said:\n%s", rest)
	}
	if after := demoResources(dir, prefixes); after.total() != 0 {
		t.Fatalf("left after Ctrl-C: %+v\n%s", after, rest)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("work directory still there: %v", err)
	}
}

func readAll(r interface{ Read([]byte) (int, error) }) (string, error) {
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String(), nil
		}
	}
}

// TestDemoMissingUnbound: without Unbound the demo names the package to
// install and creates nothing.
func TestDemoMissingUnbound(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.PostgresBin(t)
	bin := testenv.Dir(t)
	for _, tool := range []string{"psql", "mkfs.xfs", "mkfs.ext4", "ip", "losetup", "go"} {
		p := testenv.LookPath(t, tool)
		if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(testenv.Dir(t), "hvdemo")
	cmd := exec.Command(havenBin, "demo", "--dir", dir)
	cmd.Env = []string{"PATH=" + bin, "HOME=" + os.Getenv("HOME")}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "apt-get install unbound") {
		t.Fatalf("demo without unbound: %v\n%s", err, out)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the demo created %s before failing: %v", dir, err)
	}
}
