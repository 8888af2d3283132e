package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// AddDrill keeps a re-recorded drill at its first position (ord is not
// updated), as the SQLite store keeps its rowid.
func (t *pgTx) AddDrill(ctx context.Context, d Drill) error {
	body, err := json.Marshal(d)
	if err != nil {
		return err
	}
	_, err = t.q.Exec(ctx, `INSERT INTO drills (job, plan, body) VALUES ($1, $2, $3)
		ON CONFLICT (job) DO UPDATE SET plan = excluded.plan, body = excluded.body`, d.JobID, d.Plan, body)
	return err
}

func (t *pgTx) DrillSchedule(ctx context.Context, plan string) (*DrillSchedule, error) {
	var body []byte
	var v int64
	err := t.q.QueryRow(ctx, `SELECT body, version FROM drill_schedules WHERE plan = $1`, plan).Scan(&body, &v)
	if errors.Is(err, pgx.ErrNoRows) {
		return &DrillSchedule{Plan: plan}, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeSchedule(body, v)
}

func (t *pgTx) PutDrillSchedule(ctx context.Context, ds *DrillSchedule) error {
	return t.casPut(ctx, "drill_schedules", "plan", ds.Plan, ds, &ds.Version, "drill schedule "+ds.Plan)
}

func (s *Postgres) DrillSchedule(ctx context.Context, plan string) (*DrillSchedule, error) {
	return s.ops().DrillSchedule(ctx, plan)
}

func (s *Postgres) PutDrillSchedule(ctx context.Context, ds *DrillSchedule) error {
	return s.writeTx(ctx, func(t *pgTx) error { return t.PutDrillSchedule(ctx, ds) })
}

func (s *Postgres) AddPoints(ctx context.Context, ps []PointRecord) error {
	return s.write(ctx, func(db pgExec) error {
		for _, p := range ps {
			body, err := json.Marshal(p)
			if err != nil {
				return err
			}
			if _, err := db.Exec(ctx, `INSERT INTO point_history (machine, point, captured, body) VALUES ($1, $2, $3, $4)
				ON CONFLICT (machine, point) DO NOTHING`, p.Machine, p.Point, p.Captured, body); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Postgres) PointHistory(ctx context.Context, machine string, from, to time.Time) ([]PointRecord, error) {
	return pgCollect(ctx, s.pool, `SELECT body FROM (
		(SELECT body, captured FROM point_history WHERE machine = $1 AND captured < $2 ORDER BY captured DESC LIMIT 1)
		UNION ALL
		SELECT body, captured FROM point_history WHERE machine = $1 AND captured >= $2 AND captured < $3) h ORDER BY captured`,
		[]any{machine, from, to}, decodeJSON[PointRecord])
}
