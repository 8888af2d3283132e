package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	_ "modernc.org/sqlite" // pure-Go driver: the server stays one static binary
)

// migrations are applied in order, each once, in one transaction each; the
// schema version is the number applied. Append, never edit.
var migrations = []string{
	`CREATE TABLE configs (version INTEGER PRIMARY KEY AUTOINCREMENT, doc BLOB NOT NULL, applied TEXT NOT NULL);
	 CREATE TABLE jobs (id TEXT PRIMARY KEY, plan TEXT NOT NULL, type TEXT NOT NULL, state TEXT NOT NULL,
	   active INTEGER NOT NULL, body BLOB NOT NULL, created TEXT NOT NULL);
	 CREATE UNIQUE INDEX jobs_one_active_per_plan ON jobs(plan) WHERE active = 1;
	 CREATE TABLE job_logs (job TEXT NOT NULL, seq INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (job, seq));
	 CREATE TABLE plan_states (plan TEXT PRIMARY KEY, body BLOB NOT NULL);
	 CREATE TABLE heartbeats (agent TEXT PRIMARY KEY, body BLOB NOT NULL);
	 CREATE TABLE drills (job TEXT PRIMARY KEY, plan TEXT NOT NULL, body BLOB NOT NULL);`,
	`CREATE TABLE audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT NULL);`,
}

// SQLite is the embedded store.
type SQLite struct {
	db *sql.DB
}

var _ Store = (*SQLite)(nil)

// OpenSQLite opens (creating if needed) the database at path and migrates
// it to the current schema.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	// One connection: SQLite serialises writers anyway, and one
	// connection makes every transaction see the previous one's writes.
	db.SetMaxOpenConns(1)
	s := &SQLite{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %s: %w", path, err)
	}
	return s, nil
}

func (s *SQLite) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return err
	}
	var v int
	err := s.db.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := s.db.ExecContext(ctx, `INSERT INTO schema_version VALUES (0)`); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this haven (%d): upgrade haven", v, len(migrations))
	}
	for ; v < len(migrations); v++ {
		if err := s.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
				return fmt.Errorf("migration %d: %w", v+1, err)
			}
			_, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, v+1)
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

// SchemaVersion is the number of migrations applied.
func (s *SQLite) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	return v, s.db.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v)
}

func (s *SQLite) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (s *SQLite) Close() error { return s.db.Close() }

func now() string { return time.Now().UTC().Format(time.RFC3339Nano) }

func (s *SQLite) PutConfig(ctx context.Context, doc []byte) (int64, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO configs (doc, applied) VALUES (?, ?)`, doc, now())
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

func (s *SQLite) Config(ctx context.Context) (int64, []byte, error) {
	var v int64
	var doc []byte
	err := s.db.QueryRowContext(ctx, `SELECT version, doc FROM configs ORDER BY version DESC LIMIT 1`).Scan(&v, &doc)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, fmt.Errorf("%w: no protection config applied yet (haven apply -f FILE)", ErrNotFound)
	}
	return v, doc, err
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *SQLite) CreateJob(ctx context.Context, j *Job) error {
	body, err := json.Marshal(jobRow{j, j.Config})
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		var id, typ string
		err := tx.QueryRowContext(ctx, `SELECT id, type FROM jobs WHERE plan = ? AND active = 1`, j.Plan).Scan(&id, &typ)
		if err == nil {
			return &ConflictError{Plan: j.Plan, JobID: id, Type: typ}
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO jobs (id, plan, type, state, active, body, created) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			j.ID, j.Plan, j.Type, j.State, boolInt(Active(j.State)), body, j.Created.UTC().Format(sortableTime))
		return err
	})
}

// jobRow keeps the config snapshot, which the API does not show.
type jobRow struct {
	*Job
	Config json.RawMessage `json:"config,omitempty"`
}

func (s *SQLite) SaveJob(ctx context.Context, j *Job) error {
	j.Updated = time.Now().UTC()
	body, err := json.Marshal(jobRow{j, j.Config})
	if err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `UPDATE jobs SET state = ?, active = ?, body = ? WHERE id = ?`,
		j.State, boolInt(Active(j.State)), body, j.ID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: job %s", ErrNotFound, j.ID)
	}
	return nil
}

func decodeJob(body []byte) (*Job, error) {
	var r jobRow
	r.Job = &Job{}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	r.Job.Config = r.Config
	return r.Job, nil
}

func (s *SQLite) Job(ctx context.Context, id string) (*Job, error) {
	var body []byte
	err := s.db.QueryRowContext(ctx, `SELECT body FROM jobs WHERE id = ?`, id).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: job %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	return decodeJob(body)
}

func (s *SQLite) Jobs(ctx context.Context, f JobFilter) ([]*Job, error) {
	var where []string
	var args []any
	if f.Plan != "" {
		where, args = append(where, "plan = ?"), append(args, f.Plan)
	}
	if f.Active {
		where = append(where, "active = 1")
	}
	q := `SELECT body FROM jobs`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY created DESC, id DESC"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	return sqlCollect(ctx, s, q, args, decodeJob)
}

func (s *SQLite) AppendLog(ctx context.Context, jobID string, l LogLine) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) + 1 FROM job_logs WHERE job = ?`, jobID).Scan(&l.Seq); err != nil {
			return err
		}
		body, _ := json.Marshal(l)
		_, err := tx.ExecContext(ctx, `INSERT INTO job_logs (job, seq, body) VALUES (?, ?, ?)`, jobID, l.Seq, body)
		return err
	})
}

func (s *SQLite) Logs(ctx context.Context, jobID string, after int64) ([]LogLine, error) {
	return sqlCollect(ctx, s, `SELECT body FROM job_logs WHERE job = ? AND seq > ? ORDER BY seq`,
		[]any{jobID, after}, decodeJSON[LogLine])
}

func (s *SQLite) PlanState(ctx context.Context, plan string) (*PlanState, error) {
	var body []byte
	err := s.db.QueryRowContext(ctx, `SELECT body FROM plan_states WHERE plan = ?`, plan).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return &PlanState{Plan: plan, Phase: "protected"}, nil
	}
	if err != nil {
		return nil, err
	}
	var st PlanState
	return &st, json.Unmarshal(body, &st)
}

func (s *SQLite) PutPlanState(ctx context.Context, st *PlanState) error {
	st.Updated = time.Now().UTC()
	body, _ := json.Marshal(st)
	_, err := s.db.ExecContext(ctx, `INSERT INTO plan_states (plan, body) VALUES (?, ?)
		ON CONFLICT (plan) DO UPDATE SET body = excluded.body`, st.Plan, body)
	return err
}

func (s *SQLite) PutHeartbeat(ctx context.Context, h Heartbeat) error {
	body, _ := json.Marshal(h)
	_, err := s.db.ExecContext(ctx, `INSERT INTO heartbeats (agent, body) VALUES (?, ?)
		ON CONFLICT (agent) DO UPDATE SET body = excluded.body`, h.Agent, body)
	return err
}

func (s *SQLite) Heartbeats(ctx context.Context) ([]Heartbeat, error) {
	return sqlCollect(ctx, s, `SELECT body FROM heartbeats ORDER BY agent`, nil, decodeJSON[Heartbeat])
}

func (s *SQLite) AddDrill(ctx context.Context, d Drill) error {
	body, _ := json.Marshal(d)
	_, err := s.db.ExecContext(ctx, `INSERT INTO drills (job, plan, body) VALUES (?, ?, ?)
		ON CONFLICT (job) DO UPDATE SET body = excluded.body`, d.JobID, d.Plan, body)
	return err
}

func (s *SQLite) Drills(ctx context.Context, plan string) ([]Drill, error) {
	return sqlCollect(ctx, s, `SELECT body FROM drills WHERE plan = ? OR ? = '' ORDER BY rowid DESC`,
		[]any{plan, plan}, decodeJSON[Drill])
}

// sqlCollect runs a query of one body column and decodes each row (the
// SQLite twin of pgCollect).
func sqlCollect[T any](ctx context.Context, s *SQLite, q string, args []any, decode func([]byte) (T, error)) ([]T, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			return nil, err
		}
		v, err := decode(body)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// sortableTime has a fixed width, so text order is time order
// (RFC3339Nano trims trailing zeros: "00Z" sorts after "00.5Z").
const sortableTime = "2006-01-02T15:04:05.000000000Z07:00"
