package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/testenv"
)

// chrome is a headless Chromium driven over the DevTools protocol.
type chrome struct {
	t       *testing.T
	ctx     context.Context
	shots   string
	profile string // the browser's HOME: every process of it names this dir
}

// newChrome starts Chromium with its own profile dir; at the end of the
// test it is stopped and no process of that profile may be left.
func newChrome(t *testing.T) *chrome {
	bin := testenv.LookPath(t, "chromium")
	// HOME and XDG dirs inside the test's dir: Chromium's helpers (crash
	// handler, caches) then name it too, so leftovers finds every one.
	home := filepath.Join(testenv.Dir(t), "hv-chromium-home")
	c := &chrome{t: t, shots: t.ArtifactDir(), profile: home}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.Headless, chromedp.DisableGPU, chromedp.UserDataDir(filepath.Join(home, "profile")), chromedp.WindowSize(1400, 1000),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-crash-reporter", true),
		chromedp.Env("HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, "config"), "XDG_CACHE_HOME="+filepath.Join(home, "cache")))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	c.ctx = ctx
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits for the browser process to exit
		c.leftovers(t)
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	t.Logf("console screenshots in %s", c.shots)
	return c
}

// leftovers fails the test for any process still running with this
// browser's profile (a renderer or zygote that outlived its parent).
func (c *chrome) leftovers(t *testing.T) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), c.profile) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			t.Errorf("chromium process %d outlived the test: %.200q", pid, b)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func (c *chrome) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		c.failed(what, err)
	}
}

// failed ends the test with a screenshot and the page's text.
func (c *chrome) failed(what string, err error) {
	c.t.Helper()
	c.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
	c.t.Fatalf("browser: %s: %v\npage:\n%s", what, err, page)
}

func (c *chrome) shot(name string) {
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG, not JPEG
	if err != nil {
		c.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(c.shots, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		c.t.Error(err)
	}
}

// text reads a visible element's text in one script run, so a page that
// re-renders the element meanwhile (the job page does every second) can
// never hand over a node that is gone.
func (c *chrome) text(sel string) string {
	c.t.Helper()
	js := fmt.Sprintf(`(e => e && e.checkVisibility() ? e.innerText : null)(document.querySelector(%q))`, sel)
	deadline := time.Now().Add(time.Minute)
	for {
		if s := get(c, "read "+sel, chromedp.Evaluate[*string](js)); s != nil {
			return *s
		}
		if time.Now().After(deadline) {
			c.failed("read "+sel, fmt.Errorf("no visible %s", sel))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// count is how many elements match sel now.
func (c *chrome) count(sel string) int {
	c.t.Helper()
	js := fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)
	return get(c, "count "+sel, chromedp.Evaluate[int](js))
}

// get runs wait steps, then a with a value.
func get[T any](c *chrome, what string, a chromedp.Action[T], wait ...chromedp.Action[chromedp.Void]) T {
	c.t.Helper()
	c.run(what, wait...)
	ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		c.failed(what, err)
	}
	return v
}

func (c *chrome) login(base, token string) {
	c.t.Helper()
	c.run("log in", chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS("#submit")),
		chromedp.WaitVisible(chromedp.CSS(`#machines tr[data-machine="db"] td.rpo`)))
}

// page opens a console page, waits for sel and checks it shows no error.
func (c *chrome) page(base, hash, sel, shot string) {
	c.t.Helper()
	c.run("open "+hash, chromedp.Navigate(base+"/ui/"+hash), chromedp.WaitVisible(chromedp.CSS(sel)))
	if msg := get(c, "error line of "+hash, chromedp.Evaluate[string](`(e => e.hidden ? "" : e.textContent)(document.getElementById("error"))`)); msg != "" {
		c.t.Fatalf("%s shows the error %q", hash, msg)
	}
	c.shot(shot)
}

// act presses a plan's action button and confirms the dialog, which must
// name what will happen; it returns the job the console then follows.
func (c *chrome) act(action string, mustSay ...string) string {
	c.t.Helper()
	btn := fmt.Sprintf(`#plans button[data-action=%q][data-plan="shop"]`, action)
	c.run("press "+action, chromedp.WaitEnabled(chromedp.CSS(btn)), chromedp.Click(chromedp.CSS(btn)),
		chromedp.WaitVisible(chromedp.CSS("#confirm-yes")))
	say := c.text("#confirm-text")
	for _, w := range mustSay {
		if !strings.Contains(say, w) {
			c.t.Errorf("confirmation of %s says %q, which does not name %q", action, say, w)
		}
	}
	c.shot("confirm-" + action)
	loc := get(c, "confirm "+action, chromedp.Location(), chromedp.Click(chromedp.CSS("#confirm-yes")),
		chromedp.WaitVisible(chromedp.CSS("#job-state")))
	id, ok := strings.CutPrefix(loc[strings.Index(loc, "#"):], "#/job/")
	if !ok {
		c.t.Fatalf("after confirming %s the console shows %s, not a job", action, loc)
	}
	return id
}

// follow watches the job page until the job ends and returns its state
// as the page shows it.
func (c *chrome) follow(s *drSite, job string) string {
	c.t.Helper()
	var state string
	s.eventually(5*time.Minute, "job "+job+" ends in the console", func() error {
		state = c.text("#job-state")
		if state == string(store.Running) || state == string(store.Canceling) {
			return fmt.Errorf("job page shows %s", state)
		}
		return nil
	})
	return state
}

// TestConsoleBrowser drives the web console in headless Chromium: log in,
// read a machine's RPO, run a test failover from the UI to the end, clean
// it up, and check a viewer has no buttons and is refused by the server.
func TestConsoleBrowser(t *testing.T) {
	s := newDRSite(t)
	ctx := context.Background()
	s.apply()
	s.waitPoints(1)
	c := newChrome(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", s.serverPort)
	admin, err := os.ReadFile(filepath.Join(s.serverState, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	before, err := s.client.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.login(base, strings.TrimSpace(string(admin)))
	rpo := c.text(`#machines tr[data-machine="db"] td.rpo`)
	point := c.text(`#machines tr[data-machine="db"] td:nth-child(3)`)
	after, err := s.client.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(rpo, " s") && !strings.Contains(rpo, " min ") {
		t.Fatalf("db's RPO shows %q, want a duration", rpo)
	}
	// A point may land while the page loads (every 15 s): the page shows
	// the newest point as of one of the two API reads around it.
	if point != lastPoint(before, "db") && point != lastPoint(after, "db") {
		t.Fatalf("db's last point shows %q; the API says %q then %q", point, lastPoint(before, "db"), lastPoint(after, "db"))
	}
	if row := c.text(`#sites tr[data-site="primary"]`); !strings.Contains(row, "onprem") || !strings.Contains(row, "shop (db, web)") {
		t.Fatalf("dashboard sites: primary row %q, want onprem running shop", row)
	}
	c.shot("dashboard")
	c.page(base, "#/machine/db", "#machine td.rpo", "machine-db")
	if disks := c.text("#disks"); !strings.Contains(disks, "root") {
		t.Fatalf("machine page of db: disks %q, want root", disks)
	}
	// The points timeline lists what the vault has, newest first.
	pts, err := s.client.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if first := c.text("#points tbody tr"); !strings.Contains(first, lastPoint(pts, "db")) && !strings.Contains(first, point) {
		t.Fatalf("machine page of db: newest point row %q, want %q", first, lastPoint(pts, "db"))
	}
	if ticks := c.count("#timeline .tick"); ticks < 1 {
		t.Fatalf("machine page of db: %d ticks on the timeline", ticks)
	}
	if row := c.text("#machine"); !strings.Contains(row, point) && !strings.Contains(row, lastPoint(after, "db")) {
		t.Fatalf("machine page of db: %q, want its last point", row)
	}
	c.page(base, "#/", "#plans tr[data-plan]", "dashboard-again")

	job := c.act("test-failover", "test network", "db, web")
	if st := c.follow(s, job); st != string(store.Succeeded) {
		c.shot("test-failover-" + st)
		t.Fatalf("test failover %s: %s in the console\nserver log:\n%s", job, st, s.log("server"))
	}
	if logs := c.text("#logs"); !strings.Contains(logs, "job test-failover succeeded") {
		t.Fatalf("job page log lacks the end of the job:\n%s", logs)
	}
	rto := c.text("#rto")
	rep, err := s.client.Report(ctx, job)
	if err != nil || rep.State != string(store.Succeeded) || rep.RTOSeconds == nil || rto == "unknown" {
		t.Fatalf("report of %s: %+v %v; console RTO %q", job, rep, err, rto)
	}
	c.shot("test-failover-succeeded")
	if ps, err := s.client.Plan(ctx, "shop"); err != nil || ps.Test != job {
		t.Fatalf("plan shop after the drill: %+v %v; want test copy %s", ps, err, job)
	}

	c.page(base, "#/plans", "#plans tr[data-plan]", "plans")
	cleanup := c.act("test-cleanup", job)
	if st := c.follow(s, cleanup); st != string(store.Succeeded) {
		t.Fatalf("cleanup %s: %s in the console\nserver log:\n%s", cleanup, st, s.log("server"))
	}
	if ps, err := s.client.Plan(ctx, "shop"); err != nil || ps.Test != "" {
		t.Fatalf("plan shop after cleanup: %+v %v; want no test copy", ps, err)
	}
	c.page(base, "#/drills", "#drills a", "drills")
	if row := c.text("#drills tbody tr"); !strings.Contains(row, job) || !strings.Contains(row, "passed") {
		t.Fatalf("drill history row %q: want job %s passed", row, job)
	}
	c.shot("drills")
	c.page(base, "#/jobs", `#view tr[data-job="`+cleanup+`"]`, "jobs")
	if row := c.text(`#view tr[data-job="` + job + `"]`); !strings.Contains(row, "test-failover") || !strings.Contains(row, "succeeded") {
		t.Fatalf("jobs page row of %s: %q", job, row)
	}
	c.page(base, "#/traffic", "#cutovers tbody tr", "traffic")
	if row := c.text("#cutovers tbody tr"); !strings.Contains(row, shopName) || !strings.Contains(row, "recovery") {
		t.Fatalf("traffic page: %q, want the cut-over of %s", row, shopName)
	}
	// Live endpoint states come from haven dns itself: the primary serves.
	if row := c.text(`#endpoints tr[data-endpoint="` + shopName + `/primary"]`); !strings.Contains(row, "10.1.0.20") || !strings.Contains(row, "Online") {
		t.Fatalf("traffic page: primary endpoint %q, want 10.1.0.20 Online", row)
	}
	// Each DNS server as the server's traffic loop saw it: reachable, and
	// what it answers for the plan's profile.
	if row := c.text("#dns-servers tbody tr"); strings.Contains(row, "unreachable") || !strings.Contains(row, shopName+" → 10.1.0.20") {
		t.Fatalf("traffic page: DNS server row %q, want reachable answering %s with 10.1.0.20", row, shopName)
	}

	t.Run("viewer", func(t *testing.T) {
		parent := c.t
		c.t = t
		defer func() { c.t = parent }()
		c.run("log out", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#token")))
		viewer, err := os.ReadFile(filepath.Join(s.serverState, "viewer.token"))
		if err != nil {
			t.Fatal(err)
		}
		c.login(base, strings.TrimSpace(string(viewer)))
		buttons := get(c, "count buttons", chromedp.Evaluate[int](`document.querySelectorAll("button[data-action], button[data-job-action]").length`),
			chromedp.WaitVisible(chromedp.CSS("#plans tr[data-plan]")))
		if who := c.text("#who"); buttons != 0 || !strings.Contains(who, "read-only") {
			t.Fatalf("viewer sees %d action buttons, header %q", buttons, who)
		}
		c.shot("viewer-dashboard")
		// What a pressed button would send, with the session's own CSRF
		// token: the server refuses it.
		status := get(c, "viewer POST", chromedp.Evaluate[int](`(async () => {
			const s = await (await fetch("/ui/session")).json();
			const r = await fetch("/v1/plans/shop/jobs", {method: "POST", headers: {"X-CSRF-Token": s.csrf, "Content-Type": "application/json"},
				body: JSON.stringify({type: "test-failover", params: {}})});
			return r.status;
		})()`, chromedp.EvalAwaitPromise))
		if status != 403 {
			t.Fatalf("viewer's POST answered %d, want 403", status)
		}
		if js, err := s.client.Jobs(ctx, "shop", false, 0); err != nil || len(js) != 2 {
			t.Fatalf("jobs after the viewer's POST: %d %v, want the 2 the admin ran", len(js), err)
		}
	})
}

func lastPoint(st *api.Status, machine string) string {
	for _, m := range st.Machines {
		if m.Name == machine {
			return m.LastPoint
		}
	}
	return ""
}
