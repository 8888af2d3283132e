package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vault"
)

// TestPostgresReplication is the proof: PostgreSQL runs with its data on
// an ext4 image that lives on a reflink XFS, under a stream of committed
// inserts, while the agent runs on its schedule for four cycles: a point
// every 15 s, app-consistent every 30 s with CHECKPOINT as the pre hook.
// It asserts the RPO the schedule promises (assertRPO), that exactly the
// cycles that ran the hook produced app-consistent points, and for every
// point: restored, PostgreSQL starts on it (crash recovery only), amcheck
// finds nothing, every row whose commit was acknowledged before the capture
// is present, and for an app-consistent point the hook's checkpoint is in
// the image (verifyPoint).
func TestPostgresReplication(t *testing.T) {
	testenv.RequireRoot(t)
	bin := testenv.PostgresBin(t)
	testenv.LookPath(t, "psql")
	ctx := context.Background()
	host := testenv.XFS(t, 2048)
	img := testenv.Image(t, host, 1024)
	testenv.Mkfs(t, img, "ext4", "-q", "-F")
	inner := testenv.LoopMount(t, img, "ext4")
	pg := testenv.NewPostgres(t, filepath.Join(inner, "data"), testenv.Dir(t))
	chownToPostgres(t, inner)
	pg.Initdb(t)
	pg.Start(t)
	mustQuery(t, pg, "CREATE TABLE t (id bigint PRIMARY KEY, ts timestamptz NOT NULL, pad text)")

	v := newVault(t, nil)
	cfg := testConfig(t, ProviderReflink, img)
	pol := &cfg.Machines[0].Policy
	pol.AppFrequency = 30 * time.Second
	// The hook notes the WAL insert position before its CHECKPOINT, one
	// line per run, for verifyPoint's check of app-consistent points.
	hookLog := filepath.Join(testenv.Dir(t), "hook-lsn")
	psql := "psql " + strings.Join(pg.PsqlArgs(), " ")
	cfg.Machines[0].Hooks.Pre = fmt.Sprintf("%s -c 'SELECT pg_current_wal_insert_lsn()' >> %s && %s -c CHECKPOINT", psql, hookLog, psql)
	a := newAgent(cfg, v)

	const cycles = 4
	var ran []cycleRecord // written by Run's goroutine, read after it returned
	runCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	a.cycled = func(c cycleRecord) {
		if ran = append(ran, c); len(ran) == cycles {
			cancel()
		}
	}
	w := startWriter(t, pg)
	a.Run(runCtx)
	w.stop()
	pg.Stop() // its pid must not look alive to the restored servers

	points, err := v.Points(ctx, "m1")
	if err != nil || len(ran) != cycles {
		t.Fatalf("%d of %d cycles ran, %d points (%v); status %+v", len(ran), cycles, len(points), err, a.Status().Machines[0])
	}
	slices.SortFunc(points, func(a, b *vault.Point) int { return a.Time.Compare(b.Time) })
	worst := assertRPO(t, ran, points, pol.Frequency)
	hookLSNs := assertAppPoints(t, points, hookLog)
	t.Logf("writer committed %d rows; worst RPO %.1fs (frequency %v)", w.count(), worst.Seconds(), pol.Frequency)
	app := 0
	for _, p := range points {
		var redoAtLeast uint64 // the hook's LSN, for app-consistent points
		if p.Consistency == vault.AppConsistent {
			redoAtLeast = hookLSNs[app]
			app++
		}
		verifyPoint(t, v, bin, p, w, redoAtLeast)
	}
}

// wakeSlack is how late Run may start a cycle after it is due. Go timers
// never fire early; they fire late by the kernel's and the runtime's
// scheduling delay: about 1 ms measured on the shared 2-core machine at a
// load average of 16, under -race. 500 ms is far above that, and small
// enough that a schedule counting from the end of a cycle instead of its
// start fails once a cycle's snapshot takes longer.
const wakeSlack = 500 * time.Millisecond

// assertRPO checks the RPO bound of the schedule and returns the worst RPO
// of the run. Run starts a cycle one frequency after the previous start, at
// once if that cycle ran longer; so between the commits of points k and
// k+1, the data at risk (now minus capture k) stays below
// max(frequency, cycle k) + cycle k+1, plus the timer's wake-up delay.
// Everything is measured, not assumed: the points' own capture times, and
// each cycle's start and end as Run saw them, so a slow cycle on a loaded
// machine widens the bound instead of failing the test, while a schedule
// that drifts (next cycle counted from the end, or a skipped cycle) fails.
func assertRPO(t *testing.T, ran []cycleRecord, points []*vault.Point, freq time.Duration) time.Duration {
	t.Helper()
	if len(points) != len(ran) {
		t.Fatalf("%d cycles made %d points", len(ran), len(points))
	}
	for k, c := range ran {
		if c.err != nil {
			t.Fatalf("cycle %d: %v", k, c.err)
		}
		if p := points[k]; p.Time.Before(c.start) || p.Time.After(c.end) {
			t.Fatalf("point %d captured at %s, outside its cycle %s..%s", k, p.Time, c.start, c.end)
		}
	}
	var worst time.Duration
	for k := 0; k+1 < len(ran); k++ {
		prev, next := ran[k], ran[k+1]
		// Upper bound of the RPO just before point k+1 was committed.
		rpo := next.end.Sub(points[k].Time)
		due := max(freq, prev.end.Sub(prev.start)) // after prev.start
		bound := due + next.end.Sub(next.start) + wakeSlack
		if gap := next.start.Sub(prev.start); rpo > bound || gap < freq || gap > due+wakeSlack {
			t.Errorf("cycle %d started %v after cycle %d (took %v, took %v): RPO %v, bound %v",
				k+1, next.start.Sub(prev.start), k, prev.end.Sub(prev.start), next.end.Sub(next.start), rpo, bound)
		}
		t.Logf("cycle %d: %v after cycle %d, captured at +%v, took %v; RPO before its commit %v (bound %v)",
			k+1, next.start.Sub(prev.start).Round(time.Millisecond), k, points[k+1].Time.Sub(next.start).Round(time.Millisecond),
			next.end.Sub(next.start).Round(time.Millisecond), rpo.Round(time.Millisecond), bound.Round(time.Millisecond))
		worst = max(worst, rpo)
	}
	return worst
}

// assertAppPoints checks that the points labelled app-consistent are
// exactly those whose cycle ran the pre hook (one line in hookLog per run,
// in order), and returns the hook's LSNs in that order.
func assertAppPoints(t *testing.T, points []*vault.Point, hookLog string) []uint64 {
	t.Helper()
	b, err := os.ReadFile(hookLog)
	if err != nil {
		t.Fatal(err)
	}
	var lsns []uint64
	for _, line := range strings.Fields(string(b)) {
		lsns = append(lsns, parseLSN(t, line))
	}
	var labels []string
	app := 0
	for _, p := range points {
		labels = append(labels, p.Consistency)
		if p.Consistency == vault.AppConsistent {
			app++
		}
		if p.Tags["hook_error"] != "" {
			t.Errorf("point %s: hook failed: %s", p.ID, p.Tags["hook_error"])
		}
	}
	// 4 cycles 15 s apart, app every 30 s: cycles 0 and 2.
	want := []string{vault.AppConsistent, vault.CrashConsistent, vault.AppConsistent, vault.CrashConsistent}
	if app != len(lsns) || !slices.Equal(labels, want) {
		t.Fatalf("points %v, hook ran %d times; want %v, one hook run per app point", labels, len(lsns), want)
	}
	return lsns
}

// parseLSN reads PostgreSQL's "X/Y" WAL position.
func parseLSN(t *testing.T, s string) uint64 {
	t.Helper()
	hi, lo, ok := strings.Cut(strings.TrimSpace(s), "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		t.Fatalf("not an LSN: %q", s)
	}
	return h<<32 | l
}

// checkpointRedo returns the REDO position of the newest checkpoint in the
// control file of a stopped cluster: where its crash recovery starts.
func checkpointRedo(t *testing.T, bin, dataDir string) uint64 {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "pg_controldata"), "-D", dataDir)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pg_controldata: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "Latest checkpoint's REDO location:"); ok {
			return parseLSN(t, v)
		}
	}
	t.Fatalf("pg_controldata: no REDO location in\n%s", out)
	return 0
}

func chownToPostgres(t *testing.T, dir string) {
	t.Helper()
	if out, err := exec.Command("chown", "postgres:postgres", dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
}

func mustQuery(t *testing.T, pg *testenv.Postgres, sql string) string {
	t.Helper()
	out, err := pg.Query(context.Background(), sql)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// writer inserts rows one at a time through one psql session in
// autocommit mode; psql prints a RETURNING row only after the commit, so
// the time the row is read back is an upper bound of its commit time.
type writer struct {
	mu    sync.Mutex
	acked []time.Time // acked[id-1]: when the commit of row id was seen
	in    io.WriteCloser
	cmd   *exec.Cmd
	done  chan struct{}
	once  sync.Once
}

func startWriter(t *testing.T, pg *testenv.Postgres) *writer {
	t.Helper()
	return runWriter(t, exec.Command("psql", pg.PsqlArgs()...))
}

// runWriter runs the writer's loop over cmd, a psql session.
func runWriter(t *testing.T, cmd *exec.Cmd) *writer {
	t.Helper()
	w := &writer{done: make(chan struct{}), cmd: cmd}
	w.in, _ = w.cmd.StdinPipe()
	out, _ := w.cmd.StdoutPipe()
	w.cmd.Stderr = os.Stderr
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.stop)
	go w.loop(bufio.NewScanner(out))
	return w
}

func (w *writer) loop(sc *bufio.Scanner) {
	defer close(w.done)
	for id := 1; ; id++ {
		if _, err := fmt.Fprintf(w.in, "INSERT INTO t VALUES (%d, clock_timestamp(), repeat('x', 300)) RETURNING id;\n", id); err != nil {
			return
		}
		for sc.Scan() {
			if line := strings.TrimSpace(sc.Text()); line != "" {
				if got, _ := strconv.Atoi(line); got == id {
					w.mu.Lock()
					w.acked = append(w.acked, time.Now())
					w.mu.Unlock()
				}
				break
			}
		}
		if sc.Err() != nil || w.count() < id {
			return
		}
	}
}

func (w *writer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// stop ends the writer; it may be called again (the test calls it, then
// t.Cleanup). w.in is never cleared: loop may be writing to it right now
// (clearing it raced with loop and made it write to a nil writer); closing
// it, or killing psql, makes loop's write or read fail and loop return.
func (w *writer) stop() {
	w.once.Do(func() {
		w.in.Close()
		w.cmd.Process.Kill()
		<-w.done
		w.cmd.Wait()
	})
}

// ackedBefore returns how many rows (ids 1..n) were acknowledged before t.
func (w *writer) ackedBefore(t time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for n < len(w.acked) && w.acked[n].Before(t) {
		n++
	}
	return n
}

// verifyPoint restores p and checks the cluster on it. For an
// app-consistent point, redoAtLeast is the WAL insert position the pre hook
// saw before its CHECKPOINT. The cluster in the image is checked before it
// starts: its newest checkpoint must begin at or after that position. That
// is what app-consistent buys with CHECKPOINT as the hook: every commit
// acknowledged before the hook lies below that position, so it is in the
// data files and crash recovery (which starts at the REDO position) never
// has to replay it. "Needs no crash recovery at all" cannot be asked:
// inserts go on between the hook and the capture. A point labelled app but
// captured before the hook's checkpoint finished holds the previous
// checkpoint, whose REDO position is lower, and fails.
func verifyPoint(t *testing.T, v *vault.Vault, bin string, p *vault.Point, w *writer, redoAtLeast uint64) {
	t.Helper()
	ctx := context.Background()
	out := filepath.Join(testenv.Dir(t), "hvrestore.img")
	if _, err := v.Restore(ctx, vault.RestoreOptions{Machine: "m1", Point: p.ID, Disk: "d0", Target: out}); err != nil {
		t.Fatal(err)
	}
	mnt := testenv.LoopMount(t, out, "ext4")
	pg := testenv.NewPostgres(t, filepath.Join(mnt, "data"), testenv.Dir(t))
	if redoAtLeast > 0 {
		if redo := checkpointRedo(t, bin, pg.DataDir); redo < redoAtLeast {
			t.Fatalf("point %s is labelled app-consistent, but its newest checkpoint starts at %X/%X, before the hook's %X/%X",
				p.ID, redo>>32, uint32(redo), redoAtLeast>>32, uint32(redoAtLeast))
		}
	}
	pg.Start(t)
	defer pg.Stop()
	if log := pg.LogText(); strings.Contains(log, "PANIC") || !strings.Contains(log, "ready to accept connections") {
		t.Fatalf("point %s: unclean start:\n%s", p.ID, log)
	}
	mustQuery(t, pg, "CREATE EXTENSION amcheck")
	mustQuery(t, pg, `SELECT bt_index_check(c.oid, true) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		JOIN pg_am am ON am.oid = c.relam WHERE am.amname = 'btree' AND c.relpersistence <> 't'`)
	if bad := mustQuery(t, pg, "SELECT count(*) FROM verify_heapam('t')"); bad != "0" {
		t.Fatalf("point %s: verify_heapam found %s problems", p.ID, bad)
	}
	need := w.ackedBefore(p.Time)
	got := mustQuery(t, pg, fmt.Sprintf("SELECT count(*) FROM t WHERE id <= %d", need))
	maxID := mustQuery(t, pg, "SELECT coalesce(max(id), 0) FROM t")
	if got != strconv.Itoa(need) {
		t.Fatalf("point %s: %s of the %d rows committed before the capture are present", p.ID, got, need)
	}
	t.Logf("point %s (%s/%s): clean crash recovery, amcheck clean, all %d rows committed before capture present (max id %s)",
		p.ID, p.Consistency, p.Provider, need, maxID)
}

// TestWriterStop: stopping the writer while its loop runs flat out, and
// stopping it twice (the test, then t.Cleanup), neither panics nor races
// (run with -race). A sed script stands in for psql and answers each
// INSERT with its id at once, so stop always meets the loop mid-flight.
func TestWriterStop(t *testing.T) {
	sed := testenv.LookPath(t, "sed")
	for range 20 {
		w := runWriter(t, exec.Command(sed, "-u", "-n", `s/^INSERT INTO t VALUES (\([0-9]*\),.*/\1/p`))
		for w.count() < 200 {
			select {
			case <-w.done:
				t.Fatalf("writer ended after %d rows", w.count())
			case <-time.After(time.Millisecond):
			}
		}
		w.stop()
		n := w.count()
		w.stop()
		if w.count() != n {
			t.Fatalf("writer acknowledged rows after stop: %d, then %d", n, w.count())
		}
	}
}
