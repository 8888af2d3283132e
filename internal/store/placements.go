package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	"github.com/jackc/pgx/v5"
)

// Placements is which recovery host each machine is placed on: its
// standby image lives there and a failover starts it there. It is one
// record, changed by compare-and-set (apply places new machines, a lost
// host's machines are placed again), so two servers never place one
// machine twice.
type Placements struct {
	Hosts map[string]string `json:"hosts"` // machine -> host
	// Version: as PlanState.Version.
	Version int64 `json:"-"`
}

const placementsRow = "site"

func decodePlacements(body []byte, version int64) (*Placements, error) {
	p := &Placements{}
	if err := json.Unmarshal(body, p); err != nil {
		return nil, err
	}
	if p.Hosts == nil {
		p.Hosts = map[string]string{}
	}
	p.Version = version
	return p, nil
}

func (t *sqliteTx) Placements(ctx context.Context) (*Placements, error) {
	var body []byte
	var v int64
	err := t.q.QueryRowContext(ctx, `SELECT body, version FROM placements WHERE id = ?`, placementsRow).Scan(&body, &v)
	if errors.Is(err, sql.ErrNoRows) {
		return &Placements{Hosts: map[string]string{}}, nil
	}
	if err != nil {
		return nil, err
	}
	return decodePlacements(body, v)
}

func (t *sqliteTx) PutPlacements(ctx context.Context, p *Placements) error {
	return t.casPut(ctx, "placements", "id", placementsRow, p, &p.Version, "placements")
}

func (s *SQLite) Placements(ctx context.Context) (*Placements, error) {
	return s.ops().Placements(ctx)
}

func (s *SQLite) PutPlacements(ctx context.Context, p *Placements) error {
	return s.InTx(ctx, func(tx Tx) error { return tx.PutPlacements(ctx, p) })
}

func (t *pgTx) Placements(ctx context.Context) (*Placements, error) {
	var body []byte
	var v int64
	err := t.q.QueryRow(ctx, `SELECT body, version FROM placements WHERE id = $1`, placementsRow).Scan(&body, &v)
	if errors.Is(err, pgx.ErrNoRows) {
		return &Placements{Hosts: map[string]string{}}, nil
	}
	if err != nil {
		return nil, err
	}
	return decodePlacements(body, v)
}

func (t *pgTx) PutPlacements(ctx context.Context, p *Placements) error {
	return t.casPut(ctx, "placements", "id", placementsRow, p, &p.Version, "placements")
}

func (s *Postgres) Placements(ctx context.Context) (*Placements, error) {
	return s.ops().Placements(ctx)
}

func (s *Postgres) PutPlacements(ctx context.Context, p *Placements) error {
	return s.writeTx(ctx, func(t *pgTx) error { return t.PutPlacements(ctx, p) })
}
