package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"
)

func (t *sqliteTx) AddDrill(ctx context.Context, d Drill) error {
	body, err := json.Marshal(d)
	if err != nil {
		return err
	}
	_, err = t.q.ExecContext(ctx, `INSERT INTO drills (job, plan, body) VALUES (?, ?, ?)
		ON CONFLICT (job) DO UPDATE SET body = excluded.body`, d.JobID, d.Plan, body)
	return err
}

func (t *sqliteTx) DrillSchedule(ctx context.Context, plan string) (*DrillSchedule, error) {
	var body []byte
	var v int64
	err := t.q.QueryRowContext(ctx, `SELECT body, version FROM drill_schedules WHERE plan = ?`, plan).Scan(&body, &v)
	if errors.Is(err, sql.ErrNoRows) {
		return &DrillSchedule{Plan: plan}, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeSchedule(body, v)
}

func decodeSchedule(body []byte, version int64) (*DrillSchedule, error) {
	var ds DrillSchedule
	if err := json.Unmarshal(body, &ds); err != nil {
		return nil, err
	}
	ds.Version = version
	return &ds, nil
}

func (t *sqliteTx) PutDrillSchedule(ctx context.Context, ds *DrillSchedule) error {
	return t.casPut(ctx, "drill_schedules", "plan", ds.Plan, ds, &ds.Version, "drill schedule "+ds.Plan)
}

func (s *SQLite) DrillSchedule(ctx context.Context, plan string) (*DrillSchedule, error) {
	return s.ops().DrillSchedule(ctx, plan)
}

func (s *SQLite) PutDrillSchedule(ctx context.Context, ds *DrillSchedule) error {
	return s.InTx(ctx, func(tx Tx) error { return tx.PutDrillSchedule(ctx, ds) })
}

func (s *SQLite) AddPoints(ctx context.Context, ps []PointRecord) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, p := range ps {
			body, err := json.Marshal(p)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO point_history (machine, point, captured, body) VALUES (?, ?, ?, ?)
				ON CONFLICT (machine, point) DO NOTHING`, p.Machine, p.Point, p.Captured.UTC().Format(sortableTime), body); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *SQLite) PointHistory(ctx context.Context, machine string, from, to time.Time) ([]PointRecord, error) {
	f, e := from.UTC().Format(sortableTime), to.UTC().Format(sortableTime)
	return sqlCollect(ctx, s.db, `SELECT body FROM (
		SELECT body, captured FROM (SELECT body, captured FROM point_history WHERE machine = ? AND captured < ? ORDER BY captured DESC LIMIT 1)
		UNION ALL
		SELECT body, captured FROM point_history WHERE machine = ? AND captured >= ? AND captured < ?) ORDER BY captured`,
		[]any{machine, f, machine, f, e}, decodeJSON[PointRecord])
}
