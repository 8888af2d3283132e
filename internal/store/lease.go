package store

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotLeader: the write's fencing epoch is no longer the leader's (the
// lease expired or passed to another server).
var ErrNotLeader = errors.New("store: not the leader (lease lost or passed to another server)")

// Lease is the leader row: who holds the lease, where its API is, the
// fencing epoch (raised at every change of holder) and when it expires.
type Lease struct {
	Holder  string
	Addr    string
	Epoch   int64
	Expires time.Time
}

// Acquire takes the leader lease for holder if it is free, expired or
// already holder's, for ttl from PostgreSQL's clock (the servers' clocks
// never decide). ok is false while another server holds it.
func (s *Postgres) Acquire(ctx context.Context, holder, addr string, ttl time.Duration) (epoch int64, ok bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The row lock makes concurrent acquirers take turns.
		var cur string
		var live bool
		e := tx.QueryRow(ctx, `SELECT holder, epoch, expires > now() FROM leader WHERE id = 1 FOR UPDATE`).Scan(&cur, &epoch, &live)
		if errors.Is(e, pgx.ErrNoRows) {
			_, e = tx.Exec(ctx, `INSERT INTO leader (id, holder, addr, epoch, expires)
				VALUES (1, $1, $2, 1, now() + $3 * interval '1 millisecond')`, holder, addr, ttl.Milliseconds())
			epoch, ok = 1, e == nil
			return e
		}
		if e != nil || (live && cur != holder) {
			return e
		}
		if cur != holder || !live {
			epoch++ // a new term: writes fenced with the old epoch now fail
		}
		_, e = tx.Exec(ctx, `UPDATE leader SET holder = $1, addr = $2, epoch = $3, expires = now() + $4 * interval '1 millisecond' WHERE id = 1`,
			holder, addr, epoch, ttl.Milliseconds())
		ok = e == nil
		return e
	})
	return epoch, ok, err
}

// ForLease opens a second, small pool on the same database for the
// leader lease alone: a renewal must never wait for a connection behind
// the job engine's queries, or a busy leader loses its lease to its own
// load (seen on a loaded 2-core machine: the leader's next write was
// refused as not the leader's). The caller closes it.
func (s *Postgres) ForLease(ctx context.Context) (*Postgres, error) {
	cfg := s.pool.Config()
	cfg.MaxConns, cfg.MinConns = 2, 1
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: lease connection: %w", err)
	}
	return &Postgres{pool: pool}, nil
}

// Renew extends holder's lease of epoch by ttl; ErrNotLeader once it
// expired or passed on (an expired lease is never renewed: another server
// may have seen it free).
func (s *Postgres) Renew(ctx context.Context, holder string, epoch int64, ttl time.Duration) error {
	tag, err := s.pool.Exec(ctx, `UPDATE leader SET expires = now() + $3 * interval '1 millisecond'
		WHERE id = 1 AND holder = $1 AND epoch = $2 AND expires > now()`, holder, epoch, ttl.Milliseconds())
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return ErrNotLeader
	}
	return nil
}

// Leader returns the current lease (ErrNotFound before any server took it).
func (s *Postgres) Leader(ctx context.Context) (*Lease, error) {
	var l Lease
	err := s.pool.QueryRow(ctx, `SELECT holder, addr, epoch, expires FROM leader WHERE id = 1`).Scan(&l.Holder, &l.Addr, &l.Epoch, &l.Expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: no leader yet", ErrNotFound)
	}
	return &l, err
}

// Fenced is the same store whose every write runs in a transaction that
// first checks, under a share lock on the leader row, that *epoch is the
// leader's and unexpired, else fails with ErrNotLeader. The caller sets
// epoch when it wins the lease and 0 when it loses it; a server that is
// not the leader writes nothing.
func (s *Postgres) Fenced(epoch *atomic.Int64) *Postgres {
	return &Postgres{pool: s.pool, fence: epoch}
}

// pgExec is what the store needs of a pool or a transaction.
type pgExec interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// write runs fn on the pool, or, fenced, in a transaction after the
// fence check: the share lock keeps Acquire from changing the epoch until
// the write committed.
func (s *Postgres) write(ctx context.Context, fn func(db pgExec) error) error {
	if s.fence == nil {
		return fn(s.pool)
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := s.checkFence(ctx, tx); err != nil {
			return err
		}
		return fn(tx)
	})
}

// checkFence fails with ErrNotLeader unless the store is unfenced or its
// epoch is the leader's and unexpired; the share lock it takes on the
// leader row lasts until tx ends.
func (s *Postgres) checkFence(ctx context.Context, tx pgx.Tx) error {
	if s.fence == nil {
		return nil
	}
	var ok bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM leader WHERE id = 1 AND epoch = $1 AND expires > now() FOR SHARE)`,
		s.fence.Load()).Scan(&ok)
	if err != nil {
		return err
	}
	if !ok {
		return ErrNotLeader
	}
	return nil
}

// Release gives up holder's lease of epoch at once, so another server
// need not wait for it to expire.
func (s *Postgres) Release(ctx context.Context, holder string, epoch int64) error {
	_, err := s.pool.Exec(ctx, `UPDATE leader SET expires = now() WHERE id = 1 AND holder = $1 AND epoch = $2`, holder, epoch)
	return err
}

// CheckEpoch is the leader's fence before a side effect outside the
// database (an agent, the DNS API, the host): ErrNotLeader unless epoch
// is still the leader's and unexpired on PostgreSQL's clock.
func (s *Postgres) CheckEpoch(ctx context.Context, epoch int64) error {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM leader WHERE id = 1 AND epoch = $1 AND expires > now())`, epoch).Scan(&ok)
	if err != nil {
		return err
	}
	if !ok {
		return ErrNotLeader
	}
	return nil
}

// pgServerLock is the advisory lock key of the servers using a database:
// taken shared by each HA server, exclusive by a server without HA.
const pgServerLock = 0x6861_7665_6e01 // "haven\1"

// ErrInUse: another server uses the database, and one of the two runs
// without HA, so both would run the same jobs.
var ErrInUse = errors.New("store: another haven server uses this PostgreSQL database")

// Claim holds the database for this server until release (or until the
// process ends: the lock is the session's, PostgreSQL drops it with the
// connection). A server without HA holds it alone; HA servers share it
// with each other, and only the lease leader runs jobs. Either is
// refused with ErrInUse while the other kind holds it.
func (s *Postgres) Claim(ctx context.Context, ha bool) (release func(), err error) {
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	conn := c.Hijack() // out of the pool: the lock lives as long as this session
	q, why := `SELECT pg_try_advisory_lock($1)`, "this server runs without ha:, so it must be alone on the database "+
		"(else two would run the same jobs): stop the other server, or give every server ha: {lease: ...}"
	if ha {
		q, why = `SELECT pg_try_advisory_lock_shared($1)`, "that one runs without ha: and must be alone on the database: "+
			"stop it, or give it ha: {lease: ...} too"
	}
	var ok bool
	if err := conn.QueryRow(ctx, q, int64(pgServerLock)).Scan(&ok); err != nil || !ok {
		conn.Close(context.Background())
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s", ErrInUse, why)
	}
	return func() { conn.Close(context.Background()) }, nil
}
