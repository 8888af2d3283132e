// Package hostsbench measures, in one run, the RTO of the same six-machine
// plan (ns machines, each a root disk and a data disk with real data, one
// point each in the vault, standby images current) failed over onto one
// recovery host and onto three, each host a real `haven host` process in
// a network namespace of its own with its own state directory, driven by
// an in-process haven server through its HTTP API. The two layouts run
// alternately (1, 3, 3, 1, ...) so a drift of the shared machine hits both.
// Run (root; see bench/hosts/run.sh and results.md):
//
//	go test -run '^$' -bench HostsRTO -benchtime 1x -timeout 1h ./bench/hosts/
//
// HAVEN_HOSTS_RUNS (default 5) is the failovers per layout,
// HAVEN_HOSTS_DISK_MIB (default 512) each data disk's size.
package hostsbench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/host/hostapi"
	"github.com/haven-dr/haven/internal/httpauth"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/server"
	"github.com/haven-dr/haven/internal/server/client"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/testenv/hostrig"
	"github.com/haven-dr/haven/internal/vault"
)

var machines = []string{"m1", "m2", "m3", "m4", "m5", "m6"}

// layout is one recovery site: a server whose hosts: list names hosts of
// the rig, with its own vault copy.
type layout struct {
	name   string
	hosts  []string
	cpus   int // each host's capacity; every machine wants 2
	vault  string
	dir    string
	c      *client.Client
	runs   []run
	placed map[string]string
}

// run is one failover, from the job's record.
type run struct {
	wall  float64 // submit to the job seen succeeded (client, polled)
	rto   float64 // the report's: job start to every machine healthy
	steps map[string]float64
	// startSpread: first machine started to last; healthSpread: first
	// healthy to last; disk: the slowest disk prepare.
	startSpread, healthSpread, disk float64
	load                            string
}

func BenchmarkHostsRTO(b *testing.B) {
	testenv.RequireRoot(b)
	for _, p := range []string{"nsenter", "mkfs.ext4", "mkfs.xfs", "losetup", "cp"} {
		testenv.LookPath(b, p)
	}
	runs, mib := envInt(b, "HAVEN_HOSTS_RUNS", 5), envInt(b, "HAVEN_HOSTS_DISK_MIB", 512)
	for b.Loop() {
		// Vault (twice, reflinked), standby images and failover clones of
		// six machines on two layouts, with room to spare.
		base := testenv.XFS(b, int64(8*mib+4096))
		bin := buildHaven(b, base)
		pw := filepath.Join(base, "password")
		if err := os.WriteFile(pw, []byte("correct horse\n"), 0o600); err != nil {
			b.Fatal(err)
		}
		one := &layout{name: "1 host", hosts: []string{"solo"}, cpus: 2 * len(machines), vault: filepath.Join(base, "vault1"), dir: filepath.Join(base, "server1")}
		three := &layout{name: "3 hosts", hosts: []string{"a", "b", "c"}, cpus: 4, vault: filepath.Join(base, "vault3"), dir: filepath.Join(base, "server3")}
		seed(b, bin, base, one.vault, pw, mib)
		// Two servers on one vault would both write its catalog: each
		// layout gets an identical copy (same points), cloned.
		if out, err := exec.Command("cp", "-a", "--reflink=auto", one.vault, three.vault).CombinedOutput(); err != nil {
			b.Fatalf("copy vault: %v\n%s", err, out)
		}
		vaultOf := map[string]string{"solo": one.vault, "a": three.vault, "b": three.vault, "c": three.vault}
		r := newRig(b, bin, base, vaultOf, pw, "solo", "a", "b", "c")
		for _, l := range []*layout{one, three} {
			l.start(b, r, pw)
		}
		for i := range runs {
			order := []*layout{one, three}
			if i%2 == 1 {
				order = []*layout{three, one}
			}
			for _, l := range order {
				l.failover(b, r)
			}
		}
		report(b, mib, one, three)
	}
}

func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive number", name, s)
	}
	return n
}

// seed makes the vault and one point of every machine.
func seed(b *testing.B, bin, base, vaultDir, pw string, mib int) {
	flags := []string{"--vault", "file://" + vaultDir, "--password-file", pw}
	cmd := exec.Command(bin, append([]string{"vault", "init"}, flags...)...)
	cmd.Env = env()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("vault init: %v\n%s", err, out)
	}
	for _, m := range machines {
		protect(b, bin, base, flags, m, mib)
	}
}

// start runs the layout's server in process (its API on loopback, its
// hosts reached from the rig's control namespace), applies the plan and
// builds the standby images, then checks they are on the hosts the
// placement chose.
func (l *layout) start(b *testing.B, r *hostrig.Rig, pw string) {
	ctx := context.Background()
	on := true
	cfg := &server.Config{Listen: "127.0.0.1:0", StateDir: l.dir, Vault: "file://" + l.vault, PasswordFile: pw,
		Standby: &on, StandbyInterval: time.Hour} // the benchmark refreshes them itself, before timing
	for _, n := range l.hosts {
		h := r.Named(n)
		cfg.Hosts = append(cfg.Hosts, server.HostConfig{Name: n, URL: h.URL(), TokenFile: h.Token(), CAFile: h.CAFile(), CPUs: l.cpus})
	}
	if err := cfg.Defaults(); err != nil {
		b.Fatal(err)
	}
	diskDir := filepath.Join(l.dir, "disks")
	clients := map[string]*hostapi.Client{}
	dial := func(_ context.Context, hc server.HostConfig, _ *vault.Vault) (host.Host, error) {
		c, err := r.Client(r.Named(hc.Name), diskDir)
		if err != nil {
			return nil, err
		}
		clients[hc.Name] = c
		return c, nil
	}
	s, err := server.New(ctx, cfg, server.Options{Hosts: dial, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(sctx, ln) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("server %s: %v", l.name, err)
		}
		s.Close()
	})
	tok, err := httpauth.ReadTokenFile(cfg.TokenFile)
	if err != nil {
		b.Fatal(err)
	}
	l.c = client.New("http://"+ln.Addr().String(), tok, time.Minute)
	res, err := l.c.Apply(ctx, []byte(plan()))
	if err != nil {
		b.Fatalf("%s: apply: %v", l.name, err)
	}
	l.placed = res.Placement
	used := map[string]bool{}
	for _, m := range machines {
		used[l.placed[m]] = true
	}
	if len(used) != len(l.hosts) {
		b.Fatalf("%s: placement %v uses %d hosts, want %d", l.name, l.placed, len(used), len(l.hosts))
	}
	t0 := time.Now()
	if err := s.Orchestrator().RefreshStandby(ctx); err != nil {
		b.Fatalf("%s: standby images: %v", l.name, err)
	}
	b.Logf("%s: placement %v, standby images built in %.1fs", l.name, l.placed, time.Since(t0).Seconds())
	for _, m := range machines {
		for _, d := range []string{"root", "data"} {
			if clients[l.placed[m]].StandbyPoint(m, d) == "" {
				b.Fatalf("%s: no standby image of %s/%s on host %s", l.name, m, d, l.placed[m])
			}
		}
	}
}

// failover times one unplanned failover of the plan, checks that every
// disk came from its standby image on the machine's placed host, then
// cancels it (untimed) so the next one starts from a protected plan with
// no site.
func (l *layout) failover(b *testing.B, r *hostrig.Rig) {
	ctx := context.Background()
	dirs := []string{l.vault}
	for _, n := range l.hosts {
		dirs = append(dirs, filepath.Join(r.Named(n).Dir, "standby"))
	}
	testenv.Evict(b, dirs...)
	load := loadAvg()
	t0 := time.Now()
	j, err := l.c.Submit(ctx, "shop", string(orchestrator.UnplannedFailover), api.Params{})
	if err != nil {
		b.Fatalf("%s: submit: %v", l.name, err)
	}
	j = l.wait(b, j.ID)
	wall := time.Since(t0).Seconds()
	if j.State != "succeeded" {
		l.c.Submit(ctx, "shop", string(orchestrator.CancelFailover), api.Params{})
		b.Fatalf("%s: failover %s: %s: %s", l.name, j.ID, j.State, j.Error)
	}
	l.runs = append(l.runs, l.record(b, j, wall, load))
	cj, err := l.c.Submit(ctx, "shop", string(orchestrator.CancelFailover), api.Params{})
	if err != nil {
		b.Fatalf("%s: cancel: %v", l.name, err)
	}
	if cj = l.wait(b, cj.ID); cj.State != "succeeded" {
		b.Fatalf("%s: cancel %s: %s: %s", l.name, cj.ID, cj.State, cj.Error)
	}
}

func (l *layout) wait(b *testing.B, id string) *api.Job {
	deadline := time.Now().Add(10 * time.Minute)
	for {
		j, err := l.c.Job(context.Background(), id)
		if err != nil {
			b.Fatal(err)
		}
		if j.State == "succeeded" || j.State == "failed" || j.State == "canceled" {
			return j
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: job %s still %s after 10m", l.name, id, j.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// record reads one failover's report and outputs; a disk that did not
// come from its standby, or a machine started elsewhere than placed,
// fails the benchmark: a silent fallback must not pass as a figure.
func (l *layout) record(b *testing.B, j *api.Job, wall float64, load string) run {
	var rep orchestrator.Report
	var out orchestrator.Outputs
	if err := json.Unmarshal(j.Report, &rep); err != nil {
		b.Fatal(err)
	}
	if err := json.Unmarshal(j.Outputs, &out); err != nil {
		b.Fatal(err)
	}
	if rep.RTOSeconds == nil || len(rep.Disks) != 2*len(machines) {
		b.Fatalf("%s: job %s: RTO %v, %d disks: %s", l.name, j.ID, rep.RTOSeconds, len(rep.Disks), j.Report)
	}
	ru := run{wall: wall, rto: *rep.RTOSeconds, steps: map[string]float64{}, load: load}
	for _, d := range rep.Disks {
		if d.Method != "standby-clone" {
			b.Fatalf("%s: job %s: %s/%s prepared by %s, want standby-clone", l.name, j.ID, d.Machine, d.Disk, d.Method)
		}
		ru.disk = max(ru.disk, d.Seconds)
	}
	var starts, healthy []time.Time
	for _, m := range machines {
		mr := out.Machines[m]
		if mr == nil || mr.Started == nil || mr.HealthyAt == nil || mr.Host != l.placed[m] {
			b.Fatalf("%s: job %s: %s ran %+v, placed on %s", l.name, j.ID, m, mr, l.placed[m])
		}
		starts, healthy = append(starts, *mr.Started), append(healthy, *mr.HealthyAt)
	}
	ru.startSpread = spread(starts)
	ru.healthSpread = spread(healthy)
	for _, s := range rep.Steps {
		ru.steps[kind(s.Name)] += s.Seconds
	}
	return ru
}

func spread(ts []time.Time) float64 {
	return slices.MaxFunc(ts, time.Time.Compare).Sub(slices.MinFunc(ts, time.Time.Compare)).Seconds()
}

// kind groups a failover's steps: "group 1 (all): disks" is disks.
func kind(step string) string {
	for _, k := range []string{"disks", "start", "health"} {
		if strings.HasSuffix(step, ": "+k) {
			return k
		}
	}
	if step == "network" || step == "choose recovery points" {
		return step
	}
	return "other"
}

// plan is six ns machines of the guest image (HTTP on port 80), each
// with a data disk mounted at /data, 2 CPUs each, in one group: nothing
// orders them, so the figure is the orchestrator's parallelism.
func plan() string {
	var sb strings.Builder
	sb.WriteString(`sites: {primary: onprem, recovery: cloud}
networks:
  primary: [{name: prod, subnet: 10.1.0.0/24, gateway: 10.1.0.1}]
  recovery: [{name: rec, subnet: 10.2.0.0/24, gateway: 10.2.0.1}]
  test: [{name: drill, subnet: 10.2.0.0/24, gateway: 10.2.0.1}]
mapping: {recovery: {prod: rec}, test: {prod: drill}}
machines:
`)
	for i, m := range machines {
		fmt.Fprintf(&sb, `  - {name: %s, cpus: 2, disks: [{name: root}, {name: data, mount: /data}], health: {http_port: 80, http_path: /}, health_timeout: 3m,
     nics: [{name: eth0, network: prod, address: 10.1.0.%d/24, recovery: static, static: 10.2.0.%d}]}
`, m, 11+i, 11+i)
	}
	fmt.Fprintf(&sb, "plans:\n  - name: shop\n    groups:\n      - {name: all, machines: [%s]}\n", strings.Join(machines, ", "))
	return sb.String()
}

// report prints each run, then min/median/max per layout and figure,
// and the ratios (of the medians, and the median of the pairs').
func report(b *testing.B, mib int, ls ...*layout) {
	var sb strings.Builder
	w := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "layout\trun\tsubmit→healthy s\treport RTO s\tpoints\tnetwork\tdisks\tstart\thealth\tother\tslowest disk\tstart spread\thealthy spread\tload\t")
	for _, l := range ls {
		for i, x := range l.runs {
			fmt.Fprintf(w, "%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t\n", l.name, i+1, x.wall, x.rto,
				x.steps["choose recovery points"], x.steps["network"], x.steps["disks"], x.steps["start"], x.steps["health"], x.steps["other"],
				x.disk, x.startSpread, x.healthSpread, x.load)
		}
	}
	w.Flush()
	fmt.Fprintf(&sb, "\n6 machines, each a 48 MiB root and a %d MiB data disk (half random data); standby images on the placed host\n", mib)
	w = tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "figure (s), min / median / max\t1 host\t3 hosts\t")
	figs := []struct {
		name string
		f    func(run) float64
	}{
		{"submit → every machine healthy", func(x run) float64 { return x.wall }},
		{"report RTO (job start → healthy)", func(x run) float64 { return x.rto }},
		{"step: network", func(x run) float64 { return x.steps["network"] }},
		{"step: disks", func(x run) float64 { return x.steps["disks"] }},
		{"step: start", func(x run) float64 { return x.steps["start"] }},
		{"step: health", func(x run) float64 { return x.steps["health"] }},
		{"steps: points + other", func(x run) float64 { return x.steps["choose recovery points"] + x.steps["other"] }},
		{"first → last machine started", func(x run) float64 { return x.startSpread }},
	}
	for _, fg := range figs {
		fmt.Fprintf(w, "%s\t%s\t%s\t\n", fg.name, mmm(ls[0].runs, fg.f), mmm(ls[1].runs, fg.f))
	}
	w.Flush()
	wall := func(x run) float64 { return x.wall }
	var pairs []float64
	for i := range min(len(ls[0].runs), len(ls[1].runs)) {
		pairs = append(pairs, ls[0].runs[i].wall/ls[1].runs[i].wall)
	}
	fmt.Fprintf(&sb, "RTO 1 host / 3 hosts: %.2fx (medians); pair by pair %s\n", median(ls[0].runs, wall)/median(ls[1].runs, wall), mmmOf(pairs, "x"))
	fmt.Fprintf(&sb, "load average (1 min) at end: %s\n", loadAvg())
	fmt.Print(sb.String())
	b.ReportMetric(median(ls[0].runs, wall), "rto-1host-s")
	b.ReportMetric(median(ls[1].runs, wall), "rto-3hosts-s")
}

func median(rs []run, f func(run) float64) float64 {
	var xs []float64
	for _, r := range rs {
		xs = append(xs, f(r))
	}
	return med(xs)
}

func med(xs []float64) float64 {
	xs = slices.Sorted(slices.Values(xs))
	if n := len(xs); n%2 == 1 {
		return xs[n/2]
	} else {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
}

func mmm(rs []run, f func(run) float64) string {
	var xs []float64
	for _, r := range rs {
		xs = append(xs, f(r))
	}
	return mmmOf(xs, "")
}

func mmmOf(xs []float64, unit string) string {
	return fmt.Sprintf("%.2f%s / %.2f%s / %.2f%s", slices.Min(xs), unit, med(xs), unit, slices.Max(xs), unit)
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

// buildHaven builds cmd/haven into dir (the hosts run it).
func buildHaven(b *testing.B, dir string) string {
	bin := filepath.Join(dir, "haven")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/haven-dr/haven/cmd/haven").CombinedOutput()
	if err != nil {
		b.Fatalf("build haven: %v\n%s", err, out)
	}
	return bin
}
