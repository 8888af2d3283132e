package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
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
// inserts, while the agent takes a point every 15 s (app-consistent every
// 30 s, with CHECKPOINT as the pre hook). Each verified point is restored,
// PostgreSQL starts on it (crash recovery only), amcheck finds nothing, and
// every row whose commit was acknowledged before the capture is present.
func TestPostgresReplication(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.PostgresBin(t)
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
	cfg.Machines[0].Policy.AppFrequency = 30 * time.Second
	cfg.Machines[0].Hooks.Pre = "psql " + strings.Join(pg.PsqlArgs(), " ") + " -c CHECKPOINT"
	a := newAgent(cfg, v)

	w := startWriter(t, pg)
	runCtx, cancel := context.WithTimeout(ctx, 50*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { a.Run(runCtx); close(done) }()
	maxRPO := sampleRPO(runCtx, a)
	<-done
	w.stop()
	pg.Stop() // its pid must not look alive to the restored servers
	t.Logf("writer committed %d rows; highest RPO observed after the first point: %.1fs", w.count(), maxRPO)

	points, err := v.Points(ctx, "m1")
	if err != nil || len(points) < 3 {
		t.Fatalf("want >= 3 points, got %d (%v); status %+v", len(points), err, a.Status().Machines[0])
	}
	for _, p := range points[len(points)-3:] {
		verifyPoint(t, v, p, w)
	}
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

// sampleRPO returns the highest RPO seen once a first point exists.
func sampleRPO(ctx context.Context, a *Agent) float64 {
	var worst float64
	for ctx.Err() == nil {
		time.Sleep(500 * time.Millisecond)
		if s := a.Status().Machines[0]; s.LastPoint != nil {
			worst = max(worst, s.RPOSeconds)
		}
	}
	return worst
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
}

func startWriter(t *testing.T, pg *testenv.Postgres) *writer {
	t.Helper()
	w := &writer{done: make(chan struct{})}
	w.cmd = exec.Command("psql", pg.PsqlArgs()...)
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

func (w *writer) stop() {
	if w.in != nil {
		w.in.Close()
		w.in = nil
		w.cmd.Process.Kill()
		<-w.done
		w.cmd.Wait()
	}
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

func verifyPoint(t *testing.T, v *vault.Vault, p *vault.Point, w *writer) {
	t.Helper()
	ctx := context.Background()
	out := filepath.Join(testenv.Dir(t), "hvrestore.img")
	if _, err := v.Restore(ctx, vault.RestoreOptions{Machine: "m1", Point: p.ID, Disk: "d0", Target: out}); err != nil {
		t.Fatal(err)
	}
	mnt := testenv.LoopMount(t, out, "ext4")
	pg := testenv.NewPostgres(t, filepath.Join(mnt, "data"), testenv.Dir(t))
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
