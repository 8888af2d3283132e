package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgMigrations are applied in order, each once, each in its own
// transaction (PostgreSQL DDL is transactional). Append, never edit.
//
// Bodies are BYTEA holding the JSON the SQLite store keeps: JSONB would
// refuse a log line with a NUL in it and re-encode what it stores, and the
// store never queries inside a body. created is timestamptz so jobs sort
// by time, not by text (to the microsecond; the body keeps nanoseconds,
// and jobs within one microsecond fall back to id order).
var pgMigrations = []string{
	`CREATE TABLE configs (version BIGSERIAL PRIMARY KEY, doc BYTEA NOT NULL, applied TIMESTAMPTZ NOT NULL DEFAULT now());
	 CREATE TABLE jobs (id TEXT PRIMARY KEY, plan TEXT NOT NULL, type TEXT NOT NULL, state TEXT NOT NULL,
	   active BOOLEAN NOT NULL, body BYTEA NOT NULL, created TIMESTAMPTZ NOT NULL);
	 CREATE UNIQUE INDEX jobs_one_active_per_plan ON jobs (plan) WHERE active;
	 CREATE INDEX jobs_by_created ON jobs (created DESC, id DESC);
	 CREATE TABLE job_log_seqs (job TEXT PRIMARY KEY, last BIGINT NOT NULL);
	 CREATE TABLE job_logs (job TEXT NOT NULL, seq BIGINT NOT NULL, body BYTEA NOT NULL, PRIMARY KEY (job, seq));
	 CREATE TABLE plan_states (plan TEXT PRIMARY KEY, body BYTEA NOT NULL);
	 CREATE TABLE heartbeats (agent TEXT PRIMARY KEY, body BYTEA NOT NULL);
	 CREATE TABLE drills (job TEXT PRIMARY KEY, plan TEXT NOT NULL, ord BIGSERIAL NOT NULL, body BYTEA NOT NULL);`,
	`CREATE TABLE leader (id INTEGER PRIMARY KEY CHECK (id = 1), holder TEXT NOT NULL, addr TEXT NOT NULL,
	   epoch BIGINT NOT NULL, expires TIMESTAMPTZ NOT NULL);`,
	`CREATE TABLE audit (seq BIGSERIAL PRIMARY KEY, body BYTEA NOT NULL);`,
	// Compare-and-set versions; rows of an older haven start at 1.
	`ALTER TABLE jobs ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
	 ALTER TABLE plan_states ADD COLUMN version BIGINT NOT NULL DEFAULT 1;`,
	// Scheduled drills and the point history SLA reports measure from.
	`CREATE TABLE drill_schedules (plan TEXT PRIMARY KEY, body BYTEA NOT NULL, version BIGINT NOT NULL);
	 CREATE TABLE point_history (machine TEXT NOT NULL, point TEXT NOT NULL, captured TIMESTAMPTZ NOT NULL, body BYTEA NOT NULL,
	   PRIMARY KEY (machine, point));
	 CREATE INDEX point_history_by_time ON point_history (machine, captured);`,
	// Where each machine runs at the recovery site (one row).
	`CREATE TABLE placements (id TEXT PRIMARY KEY, body BYTEA NOT NULL, version BIGINT NOT NULL);`,
}

// pgMigrateLock is the advisory lock key that serialises migrations when
// several servers start on one database at once.
const pgMigrateLock = 0x6861_7665_6e00 // "haven\0"

// Postgres is the store on a PostgreSQL database, shared by several
// servers.
type Postgres struct {
	pool *pgxpool.Pool
	// fence, when set, is the leader epoch every write must still hold
	// (lease.go).
	fence *atomic.Int64
}

var _ Store = (*Postgres)(nil)

// OpenPostgres connects to dsn (a postgres:// URL or key=value string)
// and migrates the database to the current schema.
func OpenPostgres(ctx context.Context, dsn string) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx masks a password in its parse errors; dsn is not repeated.
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	where := fmt.Sprintf("postgres database %q on %s", cfg.ConnConfig.Database, cfg.ConnConfig.Host)
	if !strings.Contains(dsn, "pool_max_conns") {
		// pgx's default (4 on a 2-core machine) lets a running job, the
		// API's readers and the background loops queue for connections.
		cfg.MaxConns = max(cfg.MaxConns, 16)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", where, err)
	}
	s := &Postgres{pool: pool}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: %s: %w", where, err)
	}
	return s, nil
}

func (s *Postgres) migrate(ctx context.Context) error {
	for {
		done := false
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(pgMigrateLock)); err != nil {
				return err
			}
			v, err := pgVersion(ctx, tx)
			if err != nil {
				return err
			}
			if v > len(pgMigrations) {
				return fmt.Errorf("schema version %d is newer than this haven (%d): upgrade haven", v, len(pgMigrations))
			}
			if done = v == len(pgMigrations); done {
				return nil
			}
			if _, err := tx.Exec(ctx, pgMigrations[v]); err != nil {
				return fmt.Errorf("migration %d: %w", v+1, err)
			}
			_, err = tx.Exec(ctx, `UPDATE schema_version SET version = $1`, v+1)
			return err
		})
		if err != nil || done {
			return err
		}
	}
}

// pgVersion reads the schema version, creating the one-row table at 0.
// It runs under the migration lock, so creating it cannot race.
func pgVersion(ctx context.Context, tx pgx.Tx) (int, error) {
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return 0, err
	}
	var v int
	err := tx.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		_, err = tx.Exec(ctx, `INSERT INTO schema_version VALUES (0)`)
	}
	return v, err
}

// SchemaVersion is the number of migrations applied.
func (s *Postgres) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	return v, s.pool.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&v)
}

func (s *Postgres) Close() error { s.pool.Close(); return nil }

func (s *Postgres) PutConfig(ctx context.Context, doc []byte) (int64, error) {
	var v int64
	return v, s.write(ctx, func(db pgExec) error {
		return db.QueryRow(ctx, `INSERT INTO configs (doc) VALUES ($1) RETURNING version`, doc).Scan(&v)
	})
}

func (s *Postgres) Config(ctx context.Context) (int64, []byte, error) {
	return s.ops().Config(ctx)
}

// CreateJob lets the partial unique index decide between concurrent
// creators: a refused insert waits for the winner to commit, then reads
// it. If the holder ended in between, the insert is tried again.
func (s *Postgres) CreateJob(ctx context.Context, j *Job) error {
	for {
		err := s.writeTx(ctx, func(t *pgTx) error { return t.CreateJob(ctx, j) })
		if !errors.Is(err, errPgRetry) {
			return err
		}
	}
}

func (s *Postgres) SaveJob(ctx context.Context, j *Job) error {
	return s.writeTx(ctx, func(t *pgTx) error { return t.SaveJob(ctx, j) })
}

func (s *Postgres) Job(ctx context.Context, id string) (*Job, error) { return s.ops().Job(ctx, id) }

func (s *Postgres) Jobs(ctx context.Context, f JobFilter) ([]*Job, error) {
	return s.ops().Jobs(ctx, f)
}

func (s *Postgres) AppendLog(ctx context.Context, jobID string, l LogLine) error {
	return s.writeTx(ctx, func(t *pgTx) error { return t.AppendLog(ctx, jobID, l) })
}

func (s *Postgres) Logs(ctx context.Context, jobID string, after int64) ([]LogLine, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, body FROM job_logs WHERE job = $1 AND seq > $2 ORDER BY seq`, jobID, after)
	if err != nil {
		return nil, err
	}
	var out []LogLine
	var seq int64
	var body []byte
	_, err = pgx.ForEachRow(rows, []any{&seq, &body}, func() error {
		var l LogLine
		if err := json.Unmarshal(body, &l); err != nil {
			return err
		}
		l.Seq = seq
		out = append(out, l)
		return nil
	})
	return out, err
}

func (s *Postgres) PlanState(ctx context.Context, plan string) (*PlanState, error) {
	return s.ops().PlanState(ctx, plan)
}

func (s *Postgres) PutPlanState(ctx context.Context, st *PlanState) error {
	return s.writeTx(ctx, func(t *pgTx) error { return t.PutPlanState(ctx, st) })
}

func (s *Postgres) PutHeartbeat(ctx context.Context, h Heartbeat) error {
	body, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return s.exec(ctx, `INSERT INTO heartbeats (agent, body) VALUES ($1, $2)
		ON CONFLICT (agent) DO UPDATE SET body = excluded.body`, h.Agent, body)
}

func (s *Postgres) Heartbeats(ctx context.Context) ([]Heartbeat, error) {
	return pgCollect(ctx, s.pool, `SELECT body FROM heartbeats ORDER BY agent`, nil, decodeJSON[Heartbeat])
}

func (s *Postgres) AddDrill(ctx context.Context, d Drill) error {
	return s.writeTx(ctx, func(t *pgTx) error { return t.AddDrill(ctx, d) })
}

func (s *Postgres) Drills(ctx context.Context, plan string) ([]Drill, error) {
	return pgCollect(ctx, s.pool, `SELECT body FROM drills WHERE plan = $1 OR $1 = '' ORDER BY ord DESC`,
		[]any{plan}, decodeJSON[Drill])
}

func decodeJSON[T any](body []byte) (T, error) {
	var v T
	return v, json.Unmarshal(body, &v)
}

// pgCollect runs a query of one body column and decodes each row.
func pgCollect[T any](ctx context.Context, db pgExec, q string, args []any, decode func([]byte) (T, error)) ([]T, error) {
	rows, err := db.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	var out []T
	var body []byte
	_, err = pgx.ForEachRow(rows, []any{&body}, func() error {
		v, err := decode(body)
		if err == nil {
			out = append(out, v)
		}
		return err
	})
	return out, err
}

// exec is one write statement (fenced when the store is).
func (s *Postgres) exec(ctx context.Context, sql string, args ...any) error {
	return s.write(ctx, func(db pgExec) error {
		_, err := db.Exec(ctx, sql, args...)
		return err
	})
}
