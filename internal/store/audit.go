package store

import (
	"context"
	"encoding/json"
	"time"
)

// AuditEntry is one state-changing request: who did what to which target
// and how it ended. Never a secret: Who is a role, a session id prefix
// or an agent name, not a token.
type AuditEntry struct {
	Time time.Time `json:"time"`
	// Who: admin, viewer, session:<id prefix> (console, with its role),
	// agent:<name>, or "-" for a request that carried no credential.
	Who    string `json:"who"`
	Remote string `json:"remote"`           // the client's address
	Action string `json:"action"`           // e.g. apply, job.submit, console.login
	Target string `json:"target,omitempty"` // a plan or a job id
	Status int    `json:"status"`           // the HTTP status answered
}

func (s *SQLite) AppendAudit(ctx context.Context, e AuditEntry) error {
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO audit (body) VALUES (?)`, body)
	return err
}

// Audit is the newest limit entries, newest first; limit <= 0 is all.
func (s *SQLite) Audit(ctx context.Context, limit int) ([]AuditEntry, error) {
	return sqlCollect(ctx, s.db, `SELECT body FROM audit ORDER BY seq DESC LIMIT ?`, []any{sqlLimit(limit)}, decodeJSON[AuditEntry])
}

// sqlLimit maps "all" to -1, which both SQLite and (as NULL-free
// BIGINT) our PostgreSQL query treat as no limit.
func sqlLimit(limit int) int {
	if limit <= 0 {
		return -1
	}
	return limit
}

// AppendAudit is fenced like every write: a deposed leader records
// nothing.
func (s *Postgres) AppendAudit(ctx context.Context, e AuditEntry) error {
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return s.exec(ctx, `INSERT INTO audit (body) VALUES ($1)`, body)
}

func (s *Postgres) Audit(ctx context.Context, limit int) ([]AuditEntry, error) {
	return pgCollect(ctx, s.pool, `SELECT body FROM audit ORDER BY seq DESC LIMIT CASE WHEN $1::bigint < 0 THEN NULL ELSE $1::bigint END`,
		[]any{sqlLimit(limit)}, decodeJSON[AuditEntry])
}
