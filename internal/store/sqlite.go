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
	// Compare-and-set versions; rows of an older haven start at 1.
	`ALTER TABLE jobs ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
	 ALTER TABLE plan_states ADD COLUMN version INTEGER NOT NULL DEFAULT 1;`,
	// Scheduled drills and the point history SLA reports measure from.
	`CREATE TABLE drill_schedules (plan TEXT PRIMARY KEY, body BLOB NOT NULL, version INTEGER NOT NULL);
	 CREATE TABLE point_history (machine TEXT NOT NULL, point TEXT NOT NULL, captured TEXT NOT NULL, body BLOB NOT NULL,
	   PRIMARY KEY (machine, point));
	 CREATE INDEX point_history_by_time ON point_history (machine, captured);`,
	// Where each machine runs at the recovery site (one row).
	`CREATE TABLE placements (id TEXT PRIMARY KEY, body BLOB NOT NULL, version INTEGER NOT NULL);`,
}

// SQLite is the embedded store.
type SQLite struct {
	db *sql.DB
}

var _ Store = (*SQLite)(nil)

// OpenSQLite opens (creating if needed) the database at path and migrates
// it to the current schema.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	// _txlock=immediate: every transaction here writes, so it takes the
	// write lock at BEGIN and waits (busy_timeout) for another process's
	// writer instead of failing when it upgrades a read lock.
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_txlock=immediate"
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
	return s.ops().Config(ctx)
}

func (s *SQLite) CreateJob(ctx context.Context, j *Job) error {
	return s.InTx(ctx, func(tx Tx) error { return tx.CreateJob(ctx, j) })
}

func (s *SQLite) SaveJob(ctx context.Context, j *Job) error {
	return s.InTx(ctx, func(tx Tx) error { return tx.SaveJob(ctx, j) })
}

func (s *SQLite) Job(ctx context.Context, id string) (*Job, error) { return s.ops().Job(ctx, id) }

func (s *SQLite) Jobs(ctx context.Context, f JobFilter) ([]*Job, error) { return s.ops().Jobs(ctx, f) }

func (s *SQLite) AppendLog(ctx context.Context, jobID string, l LogLine) error {
	return s.InTx(ctx, func(tx Tx) error { return tx.AppendLog(ctx, jobID, l) })
}

func (s *SQLite) Logs(ctx context.Context, jobID string, after int64) ([]LogLine, error) {
	return sqlCollect(ctx, s.db, `SELECT body FROM job_logs WHERE job = ? AND seq > ? ORDER BY seq`,
		[]any{jobID, after}, decodeJSON[LogLine])
}

func (s *SQLite) PlanState(ctx context.Context, plan string) (*PlanState, error) {
	return s.ops().PlanState(ctx, plan)
}

func (s *SQLite) PutPlanState(ctx context.Context, st *PlanState) error {
	return s.InTx(ctx, func(tx Tx) error { return tx.PutPlanState(ctx, st) })
}

// InTx begins IMMEDIATE (_txlock in the DSN). The store's one connection
// is the transaction's until it ends, which serialises transactions in
// this process, and is why fn must not call the Store (package doc).
func (s *SQLite) InTx(ctx context.Context, fn func(tx Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	t := &sqliteTx{q: tx}
	if err := fn(t); err != nil {
		tx.Rollback()
		t.set.restore()
		return err
	}
	if err := tx.Commit(); err != nil {
		t.set.restore()
		return err
	}
	return nil
}

// ops reads outside a transaction (a Tx on the pool).
func (s *SQLite) ops() *sqliteTx { return &sqliteTx{q: s.db} }

// sqlQuerier is what sqliteTx needs of a *sql.DB or a *sql.Tx.
type sqlQuerier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// sqliteTx is the Tx of the SQLite store; its writes run only inside a
// transaction (InTx), where they may read then write.
type sqliteTx struct {
	q   sqlQuerier
	set versions
}

func (t *sqliteTx) PutConfig(ctx context.Context, doc []byte) (int64, error) {
	res, err := t.q.ExecContext(ctx, `INSERT INTO configs (doc, applied) VALUES (?, ?)`, doc, now())
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

func (t *sqliteTx) Config(ctx context.Context) (int64, []byte, error) {
	var v int64
	var doc []byte
	err := t.q.QueryRowContext(ctx, `SELECT version, doc FROM configs ORDER BY version DESC LIMIT 1`).Scan(&v, &doc)
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

func (t *sqliteTx) CreateJob(ctx context.Context, j *Job) error {
	body, err := json.Marshal(jobRow{j, j.Config})
	if err != nil {
		return err
	}
	var id, typ string
	err = t.q.QueryRowContext(ctx, `SELECT id, type FROM jobs WHERE plan = ? AND active = 1`, j.Plan).Scan(&id, &typ)
	if err == nil {
		return &ConflictError{Plan: j.Plan, JobID: id, Type: typ}
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	_, err = t.q.ExecContext(ctx, `INSERT INTO jobs (id, plan, type, state, active, body, created, version) VALUES (?, ?, ?, ?, ?, ?, ?, 1)`,
		j.ID, j.Plan, j.Type, string(j.State), boolInt(Active(j.State)), body, j.Created.UTC().Format(sortableTime))
	if err == nil {
		t.set.set(&j.Version, 1)
	}
	return err
}

// jobRow keeps the config snapshot, which the API does not show.
type jobRow struct {
	*Job
	Config json.RawMessage `json:"config,omitempty"`
}

func (t *sqliteTx) SaveJob(ctx context.Context, j *Job) error {
	j.Updated = time.Now().UTC()
	body, err := json.Marshal(jobRow{j, j.Config})
	if err != nil {
		return err
	}
	res, err := t.q.ExecContext(ctx, `UPDATE jobs SET state = ?, active = ?, body = ?, version = version + 1 WHERE id = ? AND version = ?`,
		string(j.State), boolInt(Active(j.State)), body, j.ID, j.Version)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		if err == nil {
			t.set.set(&j.Version, j.Version+1)
		}
		return err
	}
	var v int64
	err = t.q.QueryRowContext(ctx, `SELECT version FROM jobs WHERE id = ?`, j.ID).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: job %s", ErrNotFound, j.ID)
	}
	if err != nil {
		return err
	}
	return staleError("job "+j.ID, j.Version, v)
}

func decodeJob(body []byte, version int64) (*Job, error) {
	var r jobRow
	r.Job = &Job{}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	r.Job.Config = r.Config
	r.Job.Version = version
	return r.Job, nil
}

func (t *sqliteTx) Job(ctx context.Context, id string) (*Job, error) {
	var body []byte
	var v int64
	err := t.q.QueryRowContext(ctx, `SELECT body, version FROM jobs WHERE id = ?`, id).Scan(&body, &v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: job %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	return decodeJob(body, v)
}

func (t *sqliteTx) Jobs(ctx context.Context, f JobFilter) ([]*Job, error) {
	var where []string
	var args []any
	if f.Plan != "" {
		where, args = append(where, "plan = ?"), append(args, f.Plan)
	}
	if f.Active {
		where = append(where, "active = 1")
	}
	q := `SELECT body, version FROM jobs`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY created DESC, id DESC"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := t.q.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Job
	for rows.Next() {
		var body []byte
		var v int64
		if err := rows.Scan(&body, &v); err != nil {
			return nil, err
		}
		j, err := decodeJob(body, v)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

func (t *sqliteTx) AppendLog(ctx context.Context, jobID string, l LogLine) error {
	if err := t.q.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) + 1 FROM job_logs WHERE job = ?`, jobID).Scan(&l.Seq); err != nil {
		return err
	}
	body, _ := json.Marshal(l)
	_, err := t.q.ExecContext(ctx, `INSERT INTO job_logs (job, seq, body) VALUES (?, ?, ?)`, jobID, l.Seq, body)
	return err
}

func (t *sqliteTx) PlanState(ctx context.Context, plan string) (*PlanState, error) {
	var body []byte
	var v int64
	err := t.q.QueryRowContext(ctx, `SELECT body, version FROM plan_states WHERE plan = ?`, plan).Scan(&body, &v)
	if errors.Is(err, sql.ErrNoRows) {
		return &PlanState{Plan: plan, Phase: "protected"}, nil
	}
	if err != nil {
		return nil, err
	}
	var st PlanState
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, err
	}
	st.Version = v
	return &st, nil
}

func (t *sqliteTx) PutPlanState(ctx context.Context, st *PlanState) error {
	st.Updated = time.Now().UTC()
	return t.casPut(ctx, "plan_states", "plan", st.Plan, st, &st.Version, "plan state "+st.Plan)
}

// casPut writes v's JSON as the row of table whose column key is id, if
// the stored version is still *version (0: create), then bumps *version;
// ErrStale otherwise (the package doc's compare-and-set).
func (t *sqliteTx) casPut(ctx context.Context, table, key, id string, v any, version *int64, what string) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var res sql.Result
	if *version == 0 {
		res, err = t.q.ExecContext(ctx, `INSERT INTO `+table+` (`+key+`, body, version) VALUES (?, ?, 1) ON CONFLICT (`+key+`) DO NOTHING`, id, body)
	} else {
		res, err = t.q.ExecContext(ctx, `UPDATE `+table+` SET body = ?, version = version + 1 WHERE `+key+` = ? AND version = ?`, body, id, *version)
	}
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		if err == nil {
			t.set.set(version, *version+1)
		}
		return err
	}
	var got int64 // stays 0 if there is no row
	if err := t.q.QueryRowContext(ctx, `SELECT version FROM `+table+` WHERE `+key+` = ?`, id).Scan(&got); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	return staleError(what, *version, got)
}

func (s *SQLite) PutHeartbeat(ctx context.Context, h Heartbeat) error {
	body, _ := json.Marshal(h)
	_, err := s.db.ExecContext(ctx, `INSERT INTO heartbeats (agent, body) VALUES (?, ?)
		ON CONFLICT (agent) DO UPDATE SET body = excluded.body`, h.Agent, body)
	return err
}

func (s *SQLite) Heartbeats(ctx context.Context) ([]Heartbeat, error) {
	return sqlCollect(ctx, s.db, `SELECT body FROM heartbeats ORDER BY agent`, nil, decodeJSON[Heartbeat])
}

func (s *SQLite) AddDrill(ctx context.Context, d Drill) error {
	return s.InTx(ctx, func(tx Tx) error { return tx.AddDrill(ctx, d) })
}

func (s *SQLite) Drills(ctx context.Context, plan string) ([]Drill, error) {
	return sqlCollect(ctx, s.db, `SELECT body FROM drills WHERE plan = ? OR ? = '' ORDER BY rowid DESC`,
		[]any{plan, plan}, decodeJSON[Drill])
}

// sqlCollect runs a query of one body column and decodes each row (the
// SQLite twin of pgCollect).
func sqlCollect[T any](ctx context.Context, db sqlQuerier, q string, args []any, decode func([]byte) (T, error)) ([]T, error) {
	rows, err := db.QueryContext(ctx, q, args...)
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
