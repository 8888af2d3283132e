package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/orchestrator/orchtest"
	"github.com/haven-dr/haven/internal/store"
)

// sized is the two-plan config with CPUs and memory on every machine
// (databases 4 CPUs, web servers 2; the web servers publish, so they need
// the edge host) and the databases in one anti-affinity group.
func sized() string {
	doc := twoPlansConfig()
	doc = strings.ReplaceAll(doc, "    health: {tcp_port: 5432}", "    cpus: 4\n    memory_mb: 4096\n    anti_affinity: db\n    health: {tcp_port: 5432}")
	return strings.ReplaceAll(doc, "    health: {tcp_port: 80}", "    cpus: 2\n    memory_mb: 1024\n    health: {tcp_port: 80}")
}

// hostsWorld is a world whose recovery site is three fake hosts of 8
// CPUs and 16 GiB, a with the uplink, and the sized config applied.
func hostsWorld(t *testing.T) (*world, map[string]*orchtest.Host) {
	w := newWorld(t)
	fakes := map[string]*orchtest.Host{}
	for i, n := range []string{"a", "b", "c"} {
		fakes[n] = orchtest.NewHost(w.env.Vault)
		fakes[n].SetUnderlay(netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}))
		w.hosts = append(w.hosts, SiteHost{Name: n, Host: fakes[n], CPUs: 8, MemoryMB: 16384, Edge: n == "a"})
	}
	w.o.Close()
	w.start()
	if _, err := w.o.ApplyDoc(context.Background(), []byte(sized())); err != nil {
		t.Fatal(err)
	}
	return w, fakes
}

func (w *world) placed() map[string]string {
	w.t.Helper()
	p, err := w.o.Placements(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

func TestHostsApplyPlacesAndRefuses(t *testing.T) {
	w, _ := hostsWorld(t)
	ctx := context.Background()
	p := w.placed()
	if p["alpha-web"] != "a" || p["beta-web"] != "a" {
		t.Fatalf("machines that publish run on the edge host a: %v", p)
	}
	if p["alpha-db"] == p["beta-db"] || p["alpha-db"] == "" {
		t.Fatalf("the databases are in one anti-affinity group: %v", p)
	}
	a, err := w.o.ApplyDoc(ctx, []byte(sized()))
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(a.Placement, p) || !maps.Equal(w.placed(), p) {
		t.Fatalf("applied again, every machine stays (sticky): %v, then %v", p, a.Placement)
	}
	// Only a has the uplink: losing it leaves the web servers nowhere.
	warns := strings.Join(a.Warnings, "\n")
	if len(a.Warnings) != 1 || !strings.Contains(warns, "without host a") || !strings.Contains(warns, "alpha-web") || !strings.Contains(warns, "beta-web") {
		t.Fatalf("N+1 warnings: %q", a.Warnings)
	}

	_, v0, err := w.o.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Replace(sized(), "cpus: 4\n", "cpus: 12\n", 1)
	_, err = w.o.ApplyDoc(ctx, []byte(big))
	if !errors.Is(err, ErrPrecondition) || !strings.Contains(err.Error(), "alpha-db (12 CPUs") {
		t.Fatalf("a database of 12 CPUs on hosts of 8: want a refusal naming it, got %v", err)
	}
	if _, v1, _ := w.o.Config(ctx); v1 != v0 || !maps.Equal(w.placed(), p) {
		t.Fatalf("a refused document changed the config (%d -> %d) or the placement (%v)", v0, v1, w.placed())
	}
}

// boots is how many times m was booted on the recovery site on each host.
func boots(fakes map[string]*orchtest.Host, m string) map[string]int {
	out := map[string]int{}
	for n, h := range fakes {
		if b := h.Boots(SiteRecovery, m); b > 0 {
			out[n] = b
		}
	}
	return out
}

// TestHostLostMidFailoverRetry: the database's host dies while the
// database is waited for; the step says which host; a retry places it on
// another host, restores it there and finishes, and nothing is booted
// twice on a host that answers.
func TestHostLostMidFailoverRetry(t *testing.T) {
	w, fakes := hostsWorld(t)
	x := w.placed()["alpha-db"]
	lost := errors.New("connection refused")
	fakes[x].SetHook(func(_ context.Context, c orchtest.Call) error {
		if c.Method == "WaitHealthy" && c.Machine == "alpha-db" {
			fakes[x].Lose(lost)
			return lost
		}
		return nil
	})
	j := w.wait(w.submit(PlannedFailover, "alpha", Params{}).ID)
	if j.State != store.Failed || !strings.Contains(j.Error, "host "+x+": ") || !strings.Contains(j.Error, "health") {
		t.Fatalf("job %s: %s, want failed at the health step naming host %s", j.State, j.Error, x)
	}
	if _, err := w.o.Retry(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	j = w.wait(j.ID)
	if j.State != store.Succeeded {
		t.Fatalf("retry: %s: %s", j.State, j.Error)
	}
	to := w.placed()["alpha-db"]
	if to == x || to == "" {
		t.Fatalf("alpha-db still placed on the lost host %s", x)
	}
	if b := boots(fakes, "alpha-db"); b[x] != 1 || b[to] != 1 || len(b) != 2 {
		t.Fatalf("alpha-db boots per host %v: once on lost %s, once on %s", b, x, to)
	}
	if b := boots(fakes, "alpha-web"); b["a"] != 1 || len(b) != 1 {
		t.Fatalf("alpha-web boots per host %v: once, on a", b)
	}
	if !fakes[to].Running(SiteRecovery, "alpha-db") {
		t.Fatalf("alpha-db does not run on %s", to)
	}
	out := outputsOf(t, j)
	if out.Placement["alpha-db"] != to || out.Machines["alpha-db"].Host != to {
		t.Fatalf("the job records alpha-db on %q / %q, want %s", out.Placement["alpha-db"], out.Machines["alpha-db"].Host, to)
	}
	if !slices.ContainsFunc(out.Warnings, func(s string) bool { return strings.Contains(s, "host "+x+" does not answer") }) {
		t.Fatalf("no warning names the lost host: %q", out.Warnings)
	}
}

// TestHostLostAfterGroupRetry: the database's host dies after its group
// passed, while the web server starts; the retry finishes the web server
// and brings the database up elsewhere in the finish step.
func TestHostLostAfterGroupRetry(t *testing.T) {
	w, fakes := hostsWorld(t)
	x := w.placed()["alpha-db"]
	fakes["a"].FailNext("StartMachine", errors.New("host a: blip"))
	fakes["a"].SetHook(func(_ context.Context, c orchtest.Call) error {
		if c.Method == "StartMachine" && c.Machine == "alpha-web" {
			fakes[x].Lose(nil)
		}
		return nil
	})
	j := w.wait(w.submit(PlannedFailover, "alpha", Params{}).ID)
	if j.State != store.Failed || !strings.Contains(j.Error, "front): start") {
		t.Fatalf("job %s: %s, want failed at the web server's start", j.State, j.Error)
	}
	fakes["a"].SetHook(nil)
	if _, err := w.o.Retry(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	if j = w.wait(j.ID); j.State != store.Succeeded {
		t.Fatalf("retry: %s: %s", j.State, j.Error)
	}
	to := w.placed()["alpha-db"]
	if b := boots(fakes, "alpha-db"); to == x || b[x] != 1 || b[to] != 1 || len(b) != 2 {
		t.Fatalf("alpha-db boots per host %v, now placed on %s (lost %s)", b, to, x)
	}
	if b := boots(fakes, "alpha-web"); b["a"] != 1 || len(b) != 1 {
		t.Fatalf("alpha-web boots per host %v: once, on a", b)
	}
}

// TestRecoverMachines: after a failover succeeded, the database's host
// dies; recover-machines brings it up on another host from its newest
// point and tells the failover job, and leaves the web server alone.
func TestRecoverMachines(t *testing.T) {
	w, fakes := hostsWorld(t)
	fo := w.run(PlannedFailover, "alpha", Params{})
	x := w.placed()["alpha-db"]
	fakes[x].Lose(nil)
	lh := w.o.LostHosts(context.Background())
	if len(lh) != 1 || lh[0].Name != x || !slices.Equal(lh[0].Plans, []string{"alpha"}) {
		t.Fatalf("lost hosts = %+v, want %s with plan alpha", lh, x)
	}
	j := w.run(RecoverMachines, "alpha", Params{})
	out := outputsOf(t, j)
	if !slices.Equal(out.Lost, []string{"alpha-db"}) {
		t.Fatalf("lost = %v, want [alpha-db]", out.Lost)
	}
	to := w.placed()["alpha-db"]
	if to == x || !fakes[to].Running(SiteRecovery, "alpha-db") {
		t.Fatalf("alpha-db placed on %s (lost %s), running there: %v", to, x, fakes[to].Running(SiteRecovery, "alpha-db"))
	}
	if b := boots(fakes, "alpha-web"); b["a"] != 1 || len(b) != 1 {
		t.Fatalf("alpha-web boots per host %v: once, on a", b)
	}
	fo, err := w.env.Store.Job(context.Background(), fo.ID)
	if err != nil {
		t.Fatal(err)
	}
	if fout := outputsOf(t, fo); fout.Placement["alpha-db"] != to || fout.Machines["alpha-db"].Host != to {
		t.Fatalf("the failover job still places alpha-db on %s", fout.Placement["alpha-db"])
	}
	// Nothing more is lost: a second run finds nothing to do.
	j = w.run(RecoverMachines, "alpha", Params{})
	if out := outputsOf(t, j); len(out.Lost) != 0 || boots(fakes, "alpha-db")[to] != 1 {
		t.Fatalf("second recover-machines: lost %v, boots %v", out.Lost, boots(fakes, "alpha-db"))
	}
	if _, err := w.o.Submit(context.Background(), RecoverMachines, "beta", Params{}); !errors.Is(err, ErrPrecondition) {
		t.Fatalf("recover-machines of a protected plan: %v", err)
	}
	// The failover's cancel removes the machine where it runs now and
	// leaves the lost host alone.
	w.run(CancelFailover, "alpha", Params{})
	for n, h := range fakes {
		for _, m := range []string{"alpha-db", "alpha-web"} {
			if n != x && h.Running(SiteRecovery, m) {
				t.Fatalf("%s still runs on %s after the cancel", m, n)
			}
		}
	}
	if _, ok := fakes[to].Site(SiteRecovery); ok {
		t.Fatalf("the recovery site is left on %s", to)
	}
}

// TestHostsSitesAndEdge: a test failover makes its site on every host
// without an uplink; a failover's site has the uplink on the edge host
// only.
func TestHostsSitesAndEdge(t *testing.T) {
	w, fakes := hostsWorld(t)
	w.run(TestFailover, "alpha", Params{})
	w.run(PlannedFailover, "beta", Params{})
	for n, h := range fakes {
		ts, ok := h.Site(SiteTest)
		if !ok || ts.Edge != "" {
			t.Fatalf("host %s: test site %+v (made %v): want one, isolated", n, ts, ok)
		}
		rs, ok := h.Site(SiteRecovery)
		want := ""
		if n == "a" {
			want = "fake-edge"
		}
		if !ok || rs.Edge != want {
			t.Fatalf("host %s: recovery site %+v (made %v): want edge %q", n, rs, ok, want)
		}
	}
}

// TestStandbyMovesOffLostHost: the standby loop keeps each machine's
// standby image on its host; a host that stops answering has its
// machines placed again and their images built on the new host.
func TestStandbyMovesOffLostHost(t *testing.T) {
	w, fakes := standbyWorld(t)
	ctx := context.Background()
	x := w.placed()["beta-db"]
	if n := standbyCalls(fakes[x], "beta-db"); n == 0 {
		t.Fatalf("no standby image of beta-db on its host %s", x)
	}
	fakes[x].Lose(nil)
	if err := w.o.RefreshStandby(ctx); err != nil {
		t.Fatal(err)
	}
	to := w.placed()["beta-db"]
	if to == x || standbyCalls(fakes[to], "beta-db") == 0 {
		t.Fatalf("beta-db placed on %s (lost %s) with standby calls %d", to, x, standbyCalls(fakes[to], "beta-db"))
	}
	// The lost host comes back with what it kept on disk: its copy of
	// beta-db is stray (beta-db stays where it was placed) and goes.
	if !hasStandby(fakes[x], "beta-db") {
		t.Fatalf("the fake lost its standby of beta-db while lost")
	}
	fakes[x].Back()
	if err := w.o.RefreshStandby(ctx); err != nil {
		t.Fatal(err)
	}
	if p := w.placed()["beta-db"]; p != to {
		t.Fatalf("beta-db moved back to %s: placement is sticky (%s)", p, to)
	}
	if hasStandby(fakes[x], "beta-db") || !hasStandby(fakes[to], "beta-db") {
		t.Fatalf("after %s came back: standby of beta-db on it %v, on %s %v; want only on %s", x, hasStandby(fakes[x], "beta-db"), to, hasStandby(fakes[to], "beta-db"), to)
	}
}

// TestStrayStandbysDropped: standby images a host keeps for a machine
// placed elsewhere or no longer in the config are removed by the refresh;
// those of the machines placed there stay.
func TestStrayStandbysDropped(t *testing.T) {
	w, fakes := standbyWorld(t)
	ctx := context.Background()
	p := w.placed()
	other := map[string]string{"a": "b", "b": "c", "c": "a"}[p["beta-db"]]
	for _, img := range []struct{ on, m string }{{other, "beta-db"}, {"a", "ghost"}} {
		if _, err := fakes[img.on].UpdateStandby(ctx, img.m, "root", "p-stray"); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.o.RefreshStandby(ctx); err != nil {
		t.Fatal(err)
	}
	if hasStandby(fakes[other], "beta-db") || hasStandby(fakes["a"], "ghost") {
		t.Fatalf("stray images kept: %s %v, a %v", other, fakes[other].StandbyImages(), fakes["a"].StandbyImages())
	}
	for m, h := range p {
		if !hasStandby(fakes[h], m) {
			t.Fatalf("%s lost its standby image on its host %s: %v", m, h, fakes[h].StandbyImages())
		}
	}
	// A host that refuses the removal is an error of the refresh, and the
	// next refresh removes it.
	fakes["a"].UpdateStandby(ctx, "ghost", "root", "p-stray")
	fakes["a"].FailNext("RemoveStandby", nil)
	if err := w.o.RefreshStandby(ctx); err == nil || !strings.Contains(err.Error(), "ghost") {
		t.Fatalf("refresh with a failed removal: %v", err)
	}
	if err := w.o.RefreshStandby(ctx); err != nil || hasStandby(fakes["a"], "ghost") {
		t.Fatalf("second refresh: %v, ghost kept %v", err, hasStandby(fakes["a"], "ghost"))
	}
}

// standbyWorld is hostsWorld with standby images on, refreshed once.
func standbyWorld(t *testing.T) (*world, map[string]*orchtest.Host) {
	w, fakes := hostsWorld(t)
	w.standby = true
	w.restart()
	if err := w.o.RefreshStandby(context.Background()); err != nil {
		t.Fatal(err)
	}
	return w, fakes
}

func hasStandby(h *orchtest.Host, m string) bool {
	return slices.ContainsFunc(h.StandbyImages(), func(i host.StandbyImage) bool { return i.Machine == m })
}

func standbyCalls(h *orchtest.Host, m string) int {
	n := 0
	for _, c := range h.Calls() {
		if c.Method == "UpdateStandby" && c.Machine == m && c.Err == nil {
			n++
		}
	}
	return n
}

func outputsOf(t testing.TB, j *store.Job) *Outputs {
	t.Helper()
	var out Outputs
	if err := json.Unmarshal(j.Outputs, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

// TestRecoverMachinesCrashAnywhereResumes: a server that dies right after
// any step of recover-machines was saved, restarted on the same store and
// vault, finishes it: the lost database comes up once, on one host that
// answers, and the web server is not started again.
func TestRecoverMachinesCrashAnywhereResumes(t *testing.T) {
	w, fakes := hostsWorld(t)
	w.run(PlannedFailover, "alpha", Params{})
	x := w.placed()["alpha-db"]
	fakes[x].Lose(nil)
	w.crashThrough(RecoverMachines, "alpha")
	to := w.placed()["alpha-db"]
	if b := boots(fakes, "alpha-db"); to == x || b[to] != 1 || !fakes[to].Running(SiteRecovery, "alpha-db") {
		t.Fatalf("alpha-db placed on %s (lost %s), boots per host %v: want once on a host that answers", to, x, b)
	}
	if b := boots(fakes, "alpha-web"); b["a"] != 1 || len(b) != 1 {
		t.Fatalf("alpha-web boots per host %v: once, on a", b)
	}
}

// TestReprotectRefusesRemoteHosts: a plan with a machine on a remote
// host that cannot replicate back (this fake has no replication back;
// a `haven host` without a vault says so) is refused at reprotect's
// first step, naming machine and host, before anything is replicated;
// on hosts of this machine it runs.
func TestReprotectRefusesRemoteHosts(t *testing.T) {
	w, _ := hostsWorld(t)
	w.run(PlannedFailover, "alpha", Params{})
	w.run(Commit, "alpha", Params{})
	remote := w.placed()["alpha-db"]
	for i := range w.hosts {
		w.hosts[i].Remote = w.hosts[i].Name == remote
	}
	w.o.Close()
	w.start()
	j := w.wait(w.submit(Reprotect, "alpha", Params{}).ID)
	if j.State != store.Failed || !strings.Contains(j.Error, "alpha-db runs on recovery host "+remote+", a haven host on another machine") {
		t.Fatalf("reprotect: %s: %q, want refused naming alpha-db on %s", j.State, j.Error, remote)
	}
	if out := outputsOf(t, j); slices.ContainsFunc(out.Resources, func(x Resource) bool { return x.Kind == ResReplicating }) {
		t.Fatalf("replication back recorded before the refusal: %+v", out.Resources)
	}
	for i := range w.hosts {
		w.hosts[i].Remote = false
	}
	w.o.Close()
	w.start()
	if _, err := w.o.Retry(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	if j = w.wait(j.ID); j.State != store.Succeeded {
		t.Fatalf("reprotect on local hosts: %s: %s", j.State, j.Error)
	}
}

// TestStartsOnHostsAtOnce: the machines of one group placed on different
// hosts start at once, not host after host. Each host's start waits (15
// s at most) until the other host's start has begun: a start step
// that goes one host at a time fails on that wait, whatever the speed.
func TestStartsOnHostsAtOnce(t *testing.T) {
	w, fakes := hostsWorld(t)
	// alpha's two machines in one group, and in one anti-affinity group
	// so they are on two hosts.
	doc := strings.Replace(sized(), "      - name: data\n        machines: [alpha-db]\n        after: [{type: wait-health}]\n      - name: front\n        machines: [alpha-web]",
		"      - name: front\n        machines: [alpha-db, alpha-web]", 1)
	doc = strings.Replace(doc, "    cpus: 2\n", "    cpus: 2\n    anti_affinity: db\n", 1)
	if doc == sized() {
		t.Fatal("the document's layout changed: this test's edit no longer applies")
	}
	if _, err := w.o.ApplyDoc(context.Background(), []byte(doc)); err != nil {
		t.Fatal(err)
	}
	p := w.placed()
	db, web := p["alpha-db"], p["alpha-web"]
	if db == web || db == "" || web == "" {
		t.Fatalf("alpha-db and alpha-web on %q and %q, want two hosts", db, web)
	}
	barrier := meetAt("StartMachine", 2, "the other host's start has not begun: starts go host by host")
	fakes[db].SetHook(barrier)
	fakes[web].SetHook(barrier)
	j := w.run(PlannedFailover, "alpha", Params{})
	if b := boots(fakes, "alpha-db"); b[db] != 1 || len(b) != 1 {
		t.Fatalf("alpha-db boots per host %v: once, on %s", b, db)
	}
	if b := boots(fakes, "alpha-web"); b[web] != 1 || len(b) != 1 {
		t.Fatalf("alpha-web boots per host %v: once, on %s", b, web)
	}
	out := outputsOf(t, j)
	for m, h := range map[string]string{"alpha-db": db, "alpha-web": web} {
		if mr := out.Machines[m]; mr == nil || mr.Host != h || mr.Started == nil || mr.HealthyAt == nil {
			t.Fatalf("%s recorded %+v, want started and healthy on %s", m, mr, h)
		}
	}
}

// TestDisksOnHostsAtOnce: a group's disks are prepared four at a time on
// each host, not four at a time over all hosts. One group holds all four
// machines (six disks, at most four on one host); each PrepareDisk waits
// (15 s at most) until five are under way, which a limit over all hosts
// never lets happen.
func TestDisksOnHostsAtOnce(t *testing.T) {
	w, fakes := hostsWorld(t)
	doc := sized()
	doc = doc[:strings.Index(doc, "plans:\n")] + "plans:\n  - name: all\n    groups:\n      - {name: all, machines: [alpha-db, alpha-web, beta-db, beta-web]}\n"
	if _, err := w.o.ApplyDoc(context.Background(), []byte(doc)); err != nil {
		t.Fatal(err)
	}
	disks := map[string]int{}
	for m, h := range w.placed() {
		disks[h] += len(w.cfg.Machine(m).Disks)
	}
	if len(disks) < 2 || disks["a"] > 4 || disks["b"] > 4 || disks["c"] > 4 {
		t.Fatalf("disks per host %v: want two hosts or more, four disks at most on each", disks)
	}
	barrier := meetAt("PrepareDisk", 5, "fewer than five disks under way: the limit is over all hosts")
	for _, f := range fakes {
		f.SetHook(barrier)
	}
	j := w.run(PlannedFailover, "all", Params{})
	out := outputsOf(t, j)
	for _, m := range []string{"alpha-db", "alpha-web", "beta-db", "beta-web"} {
		if len(out.Disks[m]) != len(w.cfg.Machine(m).Disks) {
			t.Fatalf("%s: disks prepared %v", m, out.Disks[m])
		}
	}
}

// meetAt is a fake host hook: each call of method waits until n such
// calls have begun (15 s at most; a job is waited for 20 s), then goes
// on; one that waits in vain fails with why. Calls after the n-th pass.
func meetAt(method string, n int32, why string) func(context.Context, orchtest.Call) error {
	var seen atomic.Int32
	met := make(chan struct{})
	return func(_ context.Context, c orchtest.Call) error {
		if c.Method != method {
			return nil
		}
		if seen.Add(1) == n {
			close(met)
		}
		select {
		case <-met:
			return nil
		case <-time.After(15 * time.Second):
			return errors.New(why)
		}
	}
}
