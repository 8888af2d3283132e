package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/store"
)

// TestScheduledDrillEndToEnd: the real server runs a plan's drill by
// itself every few seconds against the real recovery site: a passed drill
// (its check reaches the test copy's web server), an overdue alert while
// a drill keeps its copy past the next instant, a failing check failing
// the next drill with an alert; then the monthly report, checked against
// the history the server recorded (its state database), through the API,
// the CLI and the console page in headless Chromium.
func TestScheduledDrillEndToEnd(t *testing.T) {
	s := newDRSite(t)
	ctx := context.Background()
	s.kill("server", syscall.SIGTERM)
	s.serverExtra = "drill_grace: 3s\n"
	s.startServer()
	s.apply()
	s.waitPoints(1)

	flag := filepath.Join(s.dir, "drill-fail")
	check := fmt.Sprintf(`test ! -e %s && ip netns exec \"$HAVEN_SITE_NS\" curl -fsS -o /dev/null --max-time 5 \"http://$HAVEN_ADDR_WEB/\"`, flag)
	drill := `    drill: {schedule: "@every 6s", keep: 15s, checks: [{name: app, type: script, run: "` + check + `"}]}` + "\n"
	doc := strings.Replace(s.protection(), "  - name: shop\n", "  - name: shop\n"+drill, 1)
	if doc == s.protection() {
		t.Fatal("no plan shop in the protection document")
	}
	s.applyDoc(doc)

	// A drill passes by itself; while it keeps its copy (15 s) the next
	// instant (6 s on) passes its grace (3 s): overdue.
	var overdue bool
	passed := s.waitDrill(t, "a scheduled drill passes", func(d api.Drill) bool { return d.Passed }, func(st *api.Status) {
		overdue = overdue || detailOf(st, "drill-overdue/shop") != nil
	})
	if !overdue {
		t.Error("no drill-overdue alert while a drill kept its copy past the next instant")
	}
	if passed.RTOSeconds <= 0 || len(passed.PointAges) != 2 || passed.PointAges["db"] <= 0 {
		t.Fatalf("passed drill record: %+v", passed)
	}
	j, err := s.client.Job(ctx, passed.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if err != nil || !slices.ContainsFunc(j.Steps, func(st api.Step) bool { return st.Name == "drill check: script app" && st.State == "done" }) {
		t.Fatalf("the drill's test failover did not run its check: %+v, %v", j, err)
	}

	// The check fails from now on: the next drill fails, with an alert.
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	failed := s.waitDrill(t, "a scheduled drill fails", func(d api.Drill) bool {
		return !d.Passed && d.Skipped == "" && d.Started.After(passed.Started)
	}, nil)
	if !strings.Contains(failed.Error, "drill check: script app") {
		t.Fatalf("failed drill's error: %q", failed.Error)
	}
	s.eventually(30*time.Second, "drill-failed alert", func() error {
		st, err := s.client.Status(ctx)
		if err != nil {
			return err
		}
		if a := detailOf(st, "drill-failed/shop"); a == nil || !strings.Contains(a.Summary, "drill check") {
			return fmt.Errorf("alerts: %v", st.Alerts)
		}
		return nil
	})

	// Freeze the history: no schedule (the drill in flight ends), no
	// agent (no new points), then read the report.
	s.apply()
	s.eventually(2*time.Minute, "the last drill ends", func() error {
		st, err := s.client.Status(ctx)
		if err != nil {
			return err
		}
		if len(st.Jobs) > 0 || (len(st.Plans) > 0 && st.Plans[0].Test != "") {
			return fmt.Errorf("%d active jobs, plans %+v", len(st.Jobs), st.Plans)
		}
		return nil
	})
	s.kill("agent", syscall.SIGTERM)
	time.Sleep(3 * time.Second) // standby_interval 1s: every point seen is recorded
	month := time.Now().UTC().Format("2006-01")
	rep, err := s.client.SLAReport(ctx, "shop", month)
	if err != nil {
		t.Fatal(err)
	}
	drills, err := s.client.Drills(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	checkDrillFigures(t, rep, drills)
	checkRPOFigures(t, s, rep)

	cli := mustHaven(t, s.serverEnv(), "report", "--plan", "shop", "--month", month, "--format", "csv")
	for _, d := range rep.Drills {
		if !strings.Contains(cli, "drill,"+d.Job+",") {
			t.Errorf("CSV report lacks drill %s:\n%s", d.Job, cli)
		}
	}
	text := mustHaven(t, s.serverEnv(), "report", "--plan", "shop", "--month", month)
	if want := fmt.Sprintf("Drills: %d run, %d passed", rep.DrillsRun, rep.Passed); !strings.Contains(text, want) {
		t.Errorf("text report lacks %q:\n%s", want, text)
	}
	c := checkReportPage(t, s, month, rep, passed.JobID, failed.JobID)
	checkCharts(t, s, c, j)
}

// checkCharts: the server's SVG pictures carry what the state says, and
// the console shows them (screenshots machine-db-rpo.png, sitemap.png,
// job-timeline.png among the artefacts).
func checkCharts(t *testing.T, s *drSite, c *chrome, drillJob *api.Job) {
	t.Helper()
	base := fmt.Sprintf("http://127.0.0.1:%d", s.serverPort)
	svg := func(path string) string {
		admin, _ := os.ReadFile(filepath.Join(s.serverState, "admin.token"))
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(admin)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/svg+xml" {
			t.Fatalf("GET %s: %s %s\n%s", path, resp.Status, resp.Header.Get("Content-Type"), b)
		}
		return string(b)
	}
	if m := svg("/v1/sitemap.svg"); !strings.Contains(m, "● shop/db") || !strings.Contains(m, "PRIMARY  onprem") ||
		!strings.Contains(m, "→ 10.1.0.20") || !strings.Contains(m, "marker-end") {
		t.Errorf("site map lacks shop/db at the primary or DNS answering 10.1.0.20 with an arrow:\n%s", m)
	}
	started := 0
	for _, st := range drillJob.Steps {
		if st.Started != nil {
			started++
		}
	}
	if tl := svg("/v1/jobs/" + drillJob.ID + "/timeline.svg"); strings.Count(tl, `<rect class="step `) != started || started == 0 {
		t.Errorf("timeline of %s has %d step bars, the job %d started steps", drillJob.ID, strings.Count(tl, `<rect class="step `), started)
	}
	if r := svg("/v1/machines/db/rpo.svg?span=day"); !strings.Contains(r, `<polyline class="rpo"`) || !strings.Contains(r, `class="target"`) {
		t.Errorf("db's RPO chart has no series or no target line:\n%s", r)
	}
	loaded := func(sel string) {
		t.Helper()
		js := fmt.Sprintf(`(i => i && i.complete && i.naturalWidth > 0)(document.querySelector(%q))`, sel)
		s.eventually(30*time.Second, sel+" drawn", func() error {
			if !get(c, "image "+sel, chromedp.Evaluate[bool](js)) {
				return fmt.Errorf("%s not loaded", sel)
			}
			return nil
		})
	}
	c.page(base, "#/machine/db", "#rpo-day", "machine-db")
	loaded("#rpo-day")
	loaded("#rpo-month")
	c.shot("machine-db-rpo")
	c.page(base, "#/", "#sitemap", "dashboard")
	loaded("#sitemap")
	c.shot("sitemap")
	c.page(base, "#/job/"+drillJob.ID, "#job-timeline", "job")
	loaded("#job-timeline")
	c.shot("job-timeline")
}

// waitDrill waits for a drill record of shop the server ran by itself
// that matches; each status read meanwhile goes to seen.
func (s *drSite) waitDrill(t *testing.T, what string, match func(api.Drill) bool, seen func(*api.Status)) api.Drill {
	t.Helper()
	var got api.Drill
	s.eventually(4*time.Minute, what, func() error {
		if seen != nil {
			if st, err := s.client.Status(context.Background()); err == nil {
				seen(st)
			}
		}
		ds, err := s.client.Drills(context.Background(), "shop")
		if err != nil {
			return err
		}
		for _, d := range ds {
			if d.Scheduled != nil && match(d) {
				got = d
				return nil
			}
		}
		return fmt.Errorf("%d drill records, none matches", len(ds))
	})
	return got
}

func detailOf(st *api.Status, id string) *api.Alert {
	for i := range st.AlertDetails {
		if st.AlertDetails[i].ID == id {
			return &st.AlertDetails[i]
		}
	}
	return nil
}

// checkDrillFigures: the report's drills are the month's records.
func checkDrillFigures(t *testing.T, rep *api.SLAReport, drills []api.Drill) {
	t.Helper()
	run, passed, skipped := 0, 0, 0
	byJob := map[string]api.Drill{}
	for _, d := range drills {
		if d.Started.Before(rep.From) {
			continue
		}
		byJob[d.JobID] = d
		switch {
		case d.Skipped != "":
			skipped++
		case d.Passed:
			run, passed = run+1, passed+1
		default:
			run++
		}
	}
	if rep.DrillsRun != run || rep.Passed != passed || rep.Skipped != skipped || len(rep.Drills) != len(byJob) || passed < 1 || run == passed {
		t.Fatalf("report: %d run, %d passed, %d skipped, %d rows; history: %d, %d, %d, %d", rep.DrillsRun, rep.Passed, rep.Skipped,
			len(rep.Drills), run, passed, skipped, len(byJob))
	}
	for _, x := range rep.Drills {
		d := byJob[x.Job]
		var oldest float64
		for _, a := range d.PointAges {
			oldest = max(oldest, a)
		}
		switch {
		case x.Passed != d.Passed:
			t.Errorf("drill %s: passed %v, recorded %v", x.Job, x.Passed, d.Passed)
		case d.Passed && (x.RTOSeconds == nil || *x.RTOSeconds != d.RTOSeconds):
			t.Errorf("drill %s: RTO %v, recorded %v", x.Job, x.RTOSeconds, d.RTOSeconds)
		case len(d.PointAges) > 0 && (x.RPOSeconds == nil || *x.RPOSeconds != oldest):
			t.Errorf("drill %s: RPO %v, recorded point ages %v", x.Job, x.RPOSeconds, d.PointAges)
		}
	}
}

// checkRPOFigures recomputes each machine's RPO figures from the point
// history in the server's state database, over the report's time.
func checkRPOFigures(t *testing.T, s *drSite, rep *api.SLAReport) {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), filepath.Join(s.serverState, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if len(rep.Machines) != 2 {
		t.Fatalf("report machines: %+v", rep.Machines)
	}
	for _, m := range rep.Machines {
		recs, err := st.PointHistory(context.Background(), m.Machine, rep.From, rep.To)
		if err != nil {
			t.Fatal(err)
		}
		want := orchestrator.MachineRPO(m.Machine, recs, rep.From, rep.To)
		near := func(a, b float64) bool { return math.Abs(a-b) < 1e-6 }
		if m.Points != want.Points || m.Points < 2 || m.TargetSeconds != 60 || m.WithinTarget == nil || want.WithinTarget == nil ||
			!near(*m.WithinTarget, *want.WithinTarget) || !near(m.WorstRPOSeconds, want.WorstRPOSeconds) ||
			!near(m.MeasuredSeconds, want.MeasuredSeconds) {
			w, _ := json.Marshal(want)
			t.Errorf("machine %s: report %+v, recomputed from %d records %s", m.Machine, m, len(recs), w)
		}
		// Never older than the target: all the time within it (points
		// seen before the agent first reported its target included).
		if m.WorstRPOSeconds <= m.TargetSeconds && (m.WithinTarget == nil || *m.WithinTarget < 1-1e-9) {
			t.Errorf("machine %s: worst RPO %.0fs within the %.0fs target, but %v of the time within it", m.Machine,
				m.WorstRPOSeconds, m.TargetSeconds, m.WithinTarget)
		}
	}
}

// checkReportPage opens the console's report page in headless Chromium
// (screenshot report.png among the test's artefacts).
func checkReportPage(t *testing.T, s *drSite, month string, rep *api.SLAReport, passed, failed string) *chrome {
	t.Helper()
	c := newChrome(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", s.serverPort)
	admin, err := os.ReadFile(filepath.Join(s.serverState, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	c.run("log in", chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), strings.TrimSpace(string(admin))), chromedp.Click(chromedp.CSS("#submit")),
		chromedp.WaitVisible(chromedp.CSS("#machines")))
	c.page(base, "#/report/shop/"+month, "#report-drills", "report")
	if h := c.text("#report h3:nth-of-type(2)"); !strings.Contains(h, fmt.Sprintf("%d run, %d passed", rep.DrillsRun, rep.Passed)) {
		t.Errorf("report page drills heading %q, want %d run, %d passed", h, rep.DrillsRun, rep.Passed)
	}
	for job, want := range map[string]string{passed: "passed", failed: "failed"} {
		if row := c.text(fmt.Sprintf(`#report-drills tr[data-job=%q]`, job)); !strings.Contains(row, want) {
			t.Errorf("report page row of drill %s: %q, want %s", job, row, want)
		}
	}
	if row := c.text(`#report-machines tr[data-machine="db"]`); !strings.Contains(row, " %") || !strings.Contains(row, "60 s") {
		t.Errorf("report page row of db: %q, want a share in %% and the 1 min target", row)
	}
	if n := c.count(`#report-machines tbody tr`); n != len(rep.Machines) {
		t.Errorf("report page shows %d machines, the API %d", n, len(rep.Machines))
	}
	return c
}
