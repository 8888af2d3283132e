package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/haven-dr/haven/internal/vnet"
)

// pgConnect connects to the test image's PostgreSQL (role, password and
// database haven) at addr from inside namespace ns: the socket is made
// there, so the root namespace never talks to a lab address.
func pgConnect(ctx context.Context, ns, addr string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig("postgres://haven:haven@" + net.JoinHostPort(addr, "5432") + "/haven?sslmode=disable&connect_timeout=10")
	if err != nil {
		return nil, err
	}
	cfg.DialFunc = func(ctx context.Context, network, a string) (net.Conn, error) {
		return vnet.DialContext(ctx, ns, network, a)
	}
	return pgx.ConnectConfig(ctx, cfg)
}

// pgQuery runs a query returning one text column and gives the rows. The
// port accepts connections while PostgreSQL still starts up (or replays
// its WAL after a crash): that answer (SQLSTATE 57P03) is waited out, for
// a bounded time.
func pgQuery(t *testing.T, ns, addr, sql string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for {
		out, err := pgTry(ctx, ns, addr, sql)
		if err == nil {
			return out
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "57P03" || ctx.Err() != nil {
			t.Fatalf("query %q at %s from %s: %v", sql, addr, ns, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func pgTry(ctx context.Context, ns, addr, sql string) ([]string, error) {
	c, err := pgConnect(ctx, ns, addr)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.Background())
	rows, err := c.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// rowAck is one row the database acknowledged: its commit returned at t.
type rowAck struct {
	id int64
	t  time.Time
}

// writer inserts rows into table w one transaction at a time, as fast as
// the database acknowledges them, and records each acknowledgement. A
// failed insert (the VM is being killed, paused, rebooted) is retried on
// a new connection with the next id: an unacknowledged row may or may not
// exist, and nothing is claimed about it.
type writer struct {
	ns, addr string
	mu       sync.Mutex
	acks     []rowAck
	errs     int
	lastErr  error
	cancel   context.CancelFunc
	done     chan struct{}
}

const createW = "create table if not exists w (id bigint primary key, at timestamptz not null default clock_timestamp(), pad text not null)"

func startWriter(t *testing.T, ns, addr string, firstID int64) *writer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	c, err := pgConnect(ctx, ns, addr)
	if err == nil {
		_, err = c.Exec(ctx, createW)
		c.Close(ctx)
	}
	cancel()
	if err != nil {
		t.Fatalf("create table: %v", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	w := &writer{ns: ns, addr: addr, cancel: cancel, done: make(chan struct{})}
	go w.run(ctx, firstID)
	t.Cleanup(w.stop)
	return w
}

func (w *writer) run(ctx context.Context, id int64) {
	defer close(w.done)
	pad := strings.Repeat("haven ", 40)
	var c *pgx.Conn
	defer func() {
		if c != nil {
			c.Close(context.Background())
		}
	}()
	for ctx.Err() == nil {
		var err error
		if c == nil {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			c, err = pgConnect(cctx, w.ns, w.addr)
			cancel()
		}
		if err == nil {
			ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, err = c.Exec(ictx, "insert into w (id, pad) values ($1, $2)", id, pad)
			cancel()
			if err == nil {
				w.record(rowAck{id, time.Now()})
			}
			id++
		}
		if err != nil && ctx.Err() == nil {
			w.mu.Lock()
			w.errs++
			w.lastErr = err
			w.mu.Unlock()
			if c != nil {
				c.Close(context.Background())
				c = nil
			}
			time.Sleep(200 * time.Millisecond)
		}
		time.Sleep(2 * time.Millisecond) // leave the two CPUs some room
	}
}

func (w *writer) record(a rowAck) {
	w.mu.Lock()
	w.acks = append(w.acks, a)
	w.mu.Unlock()
}

// stop ends the writer; the acknowledgements stay readable.
func (w *writer) stop() {
	w.cancel()
	<-w.done
}

// count is the number of acknowledged rows so far.
func (w *writer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acks)
}

// before returns the ids acknowledged before at.
func (w *writer) before(at time.Time) []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ids []int64
	for _, a := range w.acks {
		if a.t.Before(at) {
			ids = append(ids, a.id)
		}
	}
	return ids
}

// checkAcked checks that every row acknowledged before the point's time
// is in the database at addr. Rows acknowledged later may or may not be
// there; how many are is reported.
func checkAcked(t *testing.T, w *writer, at time.Time, ns, addr string) {
	t.Helper()
	want := w.before(at)
	if len(want) == 0 {
		t.Fatalf("no row was acknowledged before %s: the check would prove nothing", at)
	}
	have := map[int64]bool{}
	for _, s := range pgQuery(t, ns, addr, "select id::text from w") {
		var id int64
		fmt.Sscan(s, &id)
		have[id] = true
	}
	var missing []int64
	for _, id := range want {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%s: %d of %d rows acknowledged before the point (%s) are missing, e.g. %v",
			addr, len(missing), len(want), at.Format(time.RFC3339Nano), missing[:min(5, len(missing))])
	}
	t.Logf("%s: all %d rows acknowledged before the point are there (%d rows in all, %d acknowledged in all)",
		addr, len(want), len(have), w.count())
}

// errorsSeen is how many inserts failed, and the last reason.
func (w *writer) errorsSeen() (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.errs, w.lastErr
}

var errNoPoint = errors.New("no such point yet")
