// Package orchbench measures the RTO of a two-machine recovery plan (db,
// then web, then a DNS cut-over through a real `haven dns`): from the
// unplanned failover's submission to both health checks passing and DNS
// answering the recovery site, with standby images and without, for data
// disks of 1, 4 and 16 GiB. Run (root, a few GiB free under $TMPDIR):
//
//	go test -run '^$' -bench RTO -benchtime 3x -timeout 2h ./bench/orchestrator/
//
// HAVEN_RTO_SIZES=1,4 limits the sizes (GiB). docs/orchestrator-bench.md
// has the method and the numbers.
package orchbench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/testenv"
)

// result is one size and mode, averaged over the iterations.
type result struct {
	gib     int
	standby bool
	n       int
	// Seconds from the job's report; MiB written to the disks and
	// fetched from the vault.
	rto, rtoMax, dns, written, fetched float64
	steps                              map[string]float64 // seconds by step kind, all groups
	refresh                            float64            // standby build before timing (not in RTO)
	// Standby only, measured apart from any job: one data disk's
	// reflink clone, and the compare of the clone against its point.
	clone, verify float64
	load          string // 1-minute load average when the mode started
}

func BenchmarkRTO(b *testing.B) {
	var results []result
	for _, gib := range sizes(b) {
		b.Run(fmt.Sprintf("disk=%dGiB", gib), func(b *testing.B) {
			r := newRig(b, gib)
			// Without standby first: the standby directory is still
			// empty, so nothing but the flag could make it clone.
			for _, standby := range []bool{false, true} {
				name := map[bool]string{false: "no-standby", true: "standby"}[standby]
				b.Run(name, func(b *testing.B) { results = append(results, r.bench(b, gib, standby)) })
			}
		})
	}
	printTable(b, results)
}

func sizes(b *testing.B) []int {
	s := os.Getenv("HAVEN_RTO_SIZES")
	if s == "" {
		s = "1,4,16"
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.Fatalf("HAVEN_RTO_SIZES=%q: want GiB counts like 1,4,16", s)
		}
		out = append(out, n)
	}
	return out
}

// bench fails the plan over b.N times and cancels each failover (not
// timed) so the next one starts from a protected plan with no site.
func (r *rig) bench(b *testing.B, gib int, standby bool) result {
	ctx := context.Background()
	res := result{gib: gib, standby: standby, load: loadAvg(), steps: map[string]float64{}}
	if standby {
		t0 := time.Now()
		if err := r.orch.RefreshStandby(ctx); err != nil {
			b.Fatal(err)
		}
		res.refresh = time.Since(t0).Seconds()
		for _, m := range machines {
			for _, d := range []string{"root", "data"} {
				if r.host.StandbyPoint(m, d) == "" {
					b.Fatalf("RefreshStandby made no standby image of %s/%s", m, d)
				}
			}
		}
	}
	for b.Loop() {
		b.StopTimer()
		testenv.Evict(b, filepath.Join(r.dir, "vault"), filepath.Join(r.xfs, "server", "host", "standby"))
		b.StartTimer()
		j := r.run(b, string(orchestrator.UnplannedFailover), orchestrator.Params{NoStandby: !standby})
		b.StopTimer()
		res.add(b, j, standby)
		r.run(b, string(orchestrator.CancelFailover), orchestrator.Params{})
		r.waitEdgeClean(b)
		b.StartTimer()
	}
	res.mean()
	b.ReportMetric(res.rto, "rto-s")
	b.ReportMetric(res.rtoMax, "rto-max-s")
	b.ReportMetric(res.dns, "dns-s")
	b.ReportMetric(res.steps["disks"], "disk-prep-s")
	b.ReportMetric(res.written, "written-MiB")
	b.ReportMetric(res.fetched, "fetched-MiB")
	if standby {
		for _, m := range machines {
			c, v := r.splitPrep(b, m)
			res.clone += c.Seconds() / float64(len(machines))
			res.verify += v.Seconds() / float64(len(machines))
		}
	}
	return res
}

// run submits a job on the shop plan and waits for it; anything but
// success stops the benchmark with the job's error and log.
func (r *rig) run(b *testing.B, typ string, p orchestrator.Params) *store.Job {
	ctx := context.Background()
	j, err := r.orch.Submit(ctx, orchestrator.JobType(typ), "shop", p)
	if err != nil {
		b.Fatalf("%s: %v", typ, err)
	}
	r.orch.Wait(j.ID)
	if j, err = r.orch.Store.Job(ctx, j.ID); err != nil {
		b.Fatal(err)
	}
	if j.State != store.Succeeded {
		lines, _ := r.orch.Store.Logs(ctx, j.ID, 0)
		// Undo what the failed job made, so the plan is free for the
		// next mode and nothing is left for the cleanup to find.
		if _, err := r.orch.Cancel(ctx, j.ID); err == nil {
			r.orch.Wait(j.ID)
		}
		b.Fatalf("%s %s: %s: %s\nlog: %v", typ, j.ID, j.State, j.Error, lines)
	}
	return j
}

// add takes one failover's report; it also checks that every disk was
// made the way the mode says, so a silent fallback cannot pass as a
// standby measurement.
func (res *result) add(b *testing.B, j *store.Job, standby bool) {
	var rep orchestrator.Report
	if err := json.Unmarshal(j.Report, &rep); err != nil {
		b.Fatal(err)
	}
	if rep.RTOSeconds == nil || rep.DNSSeconds == nil {
		b.Fatalf("job %s: report has no RTO or DNS time: %s", j.ID, j.Report)
	}
	want := map[bool]string{false: "restore", true: "standby-clone"}[standby]
	if len(rep.Disks) != 2*len(machines) {
		b.Fatalf("job %s: %d disks prepared, want %d", j.ID, len(rep.Disks), 2*len(machines))
	}
	for _, d := range rep.Disks {
		if d.Method != want {
			b.Fatalf("job %s: %s/%s prepared by %s, want %s", j.ID, d.Machine, d.Disk, d.Method, want)
		}
		res.written += float64(d.BytesWritten) / (1 << 20)
		res.fetched += float64(d.BytesFetched) / (1 << 20)
	}
	for _, s := range rep.Steps {
		res.steps[kind(s.Name)] += s.Seconds
	}
	res.n++
	res.rto += *rep.RTOSeconds
	res.rtoMax = max(res.rtoMax, *rep.RTOSeconds)
	res.dns += *rep.DNSSeconds
}

func (res *result) mean() {
	n := float64(res.n)
	res.rto, res.dns, res.written, res.fetched = res.rto/n, res.dns/n, res.written/n, res.fetched/n
	for k := range res.steps {
		res.steps[k] /= n
	}
}

// kind groups a failover's steps: "group 2 (web): disks" is disks.
func kind(step string) string {
	for _, k := range []string{"disks", "start", "health"} {
		if strings.HasSuffix(step, ": "+k) {
			return k
		}
	}
	switch {
	case step == "network":
		return step
	case strings.Contains(step, ": dns "):
		return "dns"
	}
	return "other"
}

func printTable(b *testing.B, results []result) {
	if len(results) == 0 {
		return
	}
	var sb strings.Builder
	w := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "data disk\tstandby\truns\tRTO s\tmax s\tDNS s\tnetwork\tdisks\tstart\thealth\tdns step\tother\twritten MiB\tfetched MiB\tstandby build s\tclone s\tverify s\tload\t")
	for _, x := range results {
		fmt.Fprintf(w, "%d GiB\t%v\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.0f\t%.0f\t%.1f\t%.3f\t%.2f\t%s\t\n",
			x.gib, x.standby, x.n, x.rto, x.rtoMax, x.dns, x.steps["network"], x.steps["disks"], x.steps["start"],
			x.steps["health"], x.steps["dns"], x.steps["other"], x.written, x.fetched, x.refresh, x.clone, x.verify, x.load)
	}
	w.Flush()
	var gibs []int
	for _, x := range results {
		gibs = append(gibs, x.gib)
	}
	for _, gib := range slices.Compact(gibs) {
		fmt.Fprintf(&sb, "%d GiB: RTO without standby / with standby = %s\n", gib, ratio(results, gib))
	}
	fmt.Fprintf(&sb, "load average (1 min) at end: %s\n", loadAvg())
	fmt.Print(sb.String())
}

func ratio(results []result, gib int) string {
	var on, off float64
	for _, x := range results {
		if x.gib == gib && x.standby {
			on = x.rto
		} else if x.gib == gib {
			off = x.rto
		}
	}
	if on == 0 || off == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1fx", off/on)
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// waitEdgeClean checks (untimed) that the cancel left no uplink in the
// edge namespace. The kernel tears a deleted namespace down
// asynchronously, so the edge's end of the uplink may outlive it for a
// moment (host.joinEdge removes such a leftover itself); a namespace that
// some thread still sits in would never be torn down, and this fails.
func (r *rig) waitEdgeClean(b *testing.B) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		links := r.edgeLinks()
		if links == "" {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("edge namespace %s still has %s 30s after the failover was canceled", r.inet, links)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// edgeLinks lists the hv… links in the edge namespace (its uplinks).
func (r *rig) edgeLinks() string {
	out, _ := exec.Command("ip", "-n", r.inet, "-o", "link", "show").CombinedOutput()
	var hv []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(f[1], "hv") {
			hv = append(hv, strings.TrimSuffix(f[1], ":"))
		}
	}
	return strings.Join(hv, " ")
}
