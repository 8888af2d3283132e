package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// pgTxTries bounds how often InTx runs fn when PostgreSQL reports a
// serialization failure or a deadlock: enough for a handful of servers
// and requests racing on one plan, and a loop that cannot spin forever.
const pgTxTries = 10

// errPgRetry: a CreateJob found the plan held, then the holder gone;
// the whole attempt runs again (outside InTx: the insert alone).
var errPgRetry = errors.New("store: plan holder changed during CreateJob")

// InTx runs fn SERIALIZABLE, after the fence check when the store is
// fenced, and again on a serialization failure (40001) or a deadlock
// (40P01), at most pgTxTries times; then it fails with ErrStale.
func (s *Postgres) InTx(ctx context.Context, fn func(tx Tx) error) error {
	var err error
	for try := 1; try <= pgTxTries; try++ {
		t := &pgTx{}
		err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.Serializable}, func(tx pgx.Tx) error {
			if err := s.checkFence(ctx, tx); err != nil {
				return err
			}
			t.q = tx
			return fn(t)
		})
		if err == nil {
			return nil
		}
		t.set.restore()
		if !pgRetryable(err) {
			return err
		}
		// A random pause, growing with the tries, so the racers do not
		// meet again at once.
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(time.Duration(rand.IntN(5*try)+1) * time.Millisecond):
		}
	}
	return fmt.Errorf("%w: gave up after %d tries: %w", ErrStale, pgTxTries, err)
}

func pgRetryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40001" || pe.Code == "40P01"
	}
	return errors.Is(err, errPgRetry)
}

// writeTx is one write of the Store, outside InTx: on the pool, or in a
// fenced transaction (write); versions set by a write that did not
// commit are put back.
func (s *Postgres) writeTx(ctx context.Context, fn func(t *pgTx) error) error {
	t := &pgTx{}
	err := s.write(ctx, func(db pgExec) error {
		t.q = db
		return fn(t)
	})
	if err != nil {
		t.set.restore()
	}
	return err
}

// ops reads outside a transaction.
func (s *Postgres) ops() *pgTx { return &pgTx{q: s.pool} }

// pgTx is the Tx of the PostgreSQL store, on a transaction (InTx) or,
// for one write or read, on the pool.
type pgTx struct {
	q   pgExec
	set versions
}

func (t *pgTx) PutConfig(ctx context.Context, doc []byte) (int64, error) {
	var v int64
	return v, t.q.QueryRow(ctx, `INSERT INTO configs (doc) VALUES ($1) RETURNING version`, doc).Scan(&v)
}

func (t *pgTx) Config(ctx context.Context) (int64, []byte, error) {
	var v int64
	var doc []byte
	err := t.q.QueryRow(ctx, `SELECT version, doc FROM configs ORDER BY version DESC LIMIT 1`).Scan(&v, &doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil, fmt.Errorf("%w: no protection config applied yet (haven apply -f FILE)", ErrNotFound)
	}
	return v, doc, err
}

// CreateJob inserts unless the partial unique index holds another active
// job of the plan (waiting for an uncommitted one), then names the
// holder; errPgRetry if the holder ended in between.
func (t *pgTx) CreateJob(ctx context.Context, j *Job) error {
	body, err := json.Marshal(jobRow{j, j.Config})
	if err != nil {
		return err
	}
	tag, err := t.q.Exec(ctx, `INSERT INTO jobs (id, plan, type, state, active, body, created, version)
		VALUES ($1, $2, $3, $4, $5, $6, $7, 1) ON CONFLICT (plan) WHERE active DO NOTHING`,
		j.ID, j.Plan, j.Type, string(j.State), Active(j.State), body, j.Created)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 1 {
		t.set.set(&j.Version, 1)
		return nil
	}
	var id, typ string
	err = t.q.QueryRow(ctx, `SELECT id, type FROM jobs WHERE plan = $1 AND active`, j.Plan).Scan(&id, &typ)
	if err == nil {
		return &ConflictError{Plan: j.Plan, JobID: id, Type: typ}
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return errPgRetry
	}
	return err
}

func (t *pgTx) SaveJob(ctx context.Context, j *Job) error {
	j.Updated = time.Now().UTC()
	body, err := json.Marshal(jobRow{j, j.Config})
	if err != nil {
		return err
	}
	tag, err := t.q.Exec(ctx, `UPDATE jobs SET state = $1, active = $2, body = $3, version = version + 1 WHERE id = $4 AND version = $5`,
		string(j.State), Active(j.State), body, j.ID, j.Version)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 1 {
		t.set.set(&j.Version, j.Version+1)
		return nil
	}
	var v int64
	err = t.q.QueryRow(ctx, `SELECT version FROM jobs WHERE id = $1`, j.ID).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: job %s", ErrNotFound, j.ID)
	}
	if err != nil {
		return err
	}
	return staleError("job "+j.ID, j.Version, v)
}

func (t *pgTx) Job(ctx context.Context, id string) (*Job, error) {
	var body []byte
	var v int64
	err := t.q.QueryRow(ctx, `SELECT body, version FROM jobs WHERE id = $1`, id).Scan(&body, &v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: job %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	return decodeJob(body, v)
}

func (t *pgTx) Jobs(ctx context.Context, f JobFilter) ([]*Job, error) {
	var where []string
	var args []any
	if f.Plan != "" {
		args = append(args, f.Plan)
		where = append(where, fmt.Sprintf("plan = $%d", len(args)))
	}
	if f.Active {
		where = append(where, "active")
	}
	q := `SELECT body, version FROM jobs`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY created DESC, id DESC"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := t.q.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	var out []*Job
	var body []byte
	var v int64
	_, err = pgx.ForEachRow(rows, []any{&body, &v}, func() error {
		j, err := decodeJob(body, v)
		if err == nil {
			out = append(out, j)
		}
		return err
	})
	return out, err
}

// AppendLog takes the next number from the job's counter row in the same
// statement: the row lock serialises appenders until commit, so lines
// also become visible in seq order and a reader polling "after seq N"
// never skips a line that commits late.
func (t *pgTx) AppendLog(ctx context.Context, jobID string, l LogLine) error {
	l.Seq = 0 // numbered by the store; Logs sets it from the row
	body, err := json.Marshal(l)
	if err != nil {
		return err
	}
	_, err = t.q.Exec(ctx, `WITH n AS (
		INSERT INTO job_log_seqs (job, last) VALUES ($1, 1)
		ON CONFLICT (job) DO UPDATE SET last = job_log_seqs.last + 1 RETURNING last)
		INSERT INTO job_logs (job, seq, body) SELECT $1, last, $2 FROM n`, jobID, body)
	return err
}

func (t *pgTx) PlanState(ctx context.Context, plan string) (*PlanState, error) {
	var body []byte
	var v int64
	err := t.q.QueryRow(ctx, `SELECT body, version FROM plan_states WHERE plan = $1`, plan).Scan(&body, &v)
	if errors.Is(err, pgx.ErrNoRows) {
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

func (t *pgTx) PutPlanState(ctx context.Context, st *PlanState) error {
	st.Updated = time.Now().UTC()
	return t.casPut(ctx, "plan_states", "plan", st.Plan, st, &st.Version, "plan state "+st.Plan)
}

// casPut is sqliteTx.casPut on PostgreSQL.
func (t *pgTx) casPut(ctx context.Context, table, key, id string, v any, version *int64, what string) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var tag pgconn.CommandTag
	if *version == 0 {
		tag, err = t.q.Exec(ctx, `INSERT INTO `+table+` (`+key+`, body, version) VALUES ($1, $2, 1) ON CONFLICT (`+key+`) DO NOTHING`, id, body)
	} else {
		tag, err = t.q.Exec(ctx, `UPDATE `+table+` SET body = $1, version = version + 1 WHERE `+key+` = $2 AND version = $3`, body, id, *version)
	}
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 1 {
		t.set.set(version, *version+1)
		return nil
	}
	var got int64 // stays 0 if there is no row
	if err := t.q.QueryRow(ctx, `SELECT version FROM `+table+` WHERE `+key+` = $1`, id).Scan(&got); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	return staleError(what, *version, got)
}
