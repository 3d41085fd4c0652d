package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// approvalSchema holds just-in-time approval requests and their grants.
// Times are Unix nanoseconds, 0 for "not yet".
const approvalSchema = `
CREATE TABLE IF NOT EXISTS approvals (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	agent TEXT NOT NULL,
	target TEXT NOT NULL,
	session_id TEXT NOT NULL,
	token_id TEXT NOT NULL,
	context TEXT NOT NULL,
	statements TEXT NOT NULL,
	fingerprint TEXT NOT NULL,
	statement_hash TEXT NOT NULL,
	params_hash TEXT NOT NULL,
	rule TEXT NOT NULL,
	mode TEXT NOT NULL,
	preview TEXT NOT NULL,
	status TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	decided_at INTEGER NOT NULL DEFAULT 0,
	decided_by TEXT NOT NULL DEFAULT '',
	reason TEXT NOT NULL DEFAULT '',
	grant_expires_at INTEGER NOT NULL DEFAULT 0,
	used_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS approvals_status ON approvals(status, expires_at);
CREATE INDEX IF NOT EXISTS approvals_binding ON approvals(agent, target, fingerprint, statement_hash, params_hash);
`

const approvalColumns = `id, agent, target, session_id, token_id, context, statements, fingerprint, statement_hash, params_hash, rule, mode, preview, status,
	created_at, expires_at, decided_at, decided_by, reason, grant_expires_at, used_at`

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func scanApproval(r scanner) (ApprovalRequest, error) {
	var a ApprovalRequest
	var actx, stmts string
	var created, expires, decided, grantExp, used int64
	if err := r.Scan(&a.ID, &a.Agent, &a.Target, &a.SessionID, &a.TokenID, &actx, &stmts, &a.Fingerprint, &a.StatementHash, &a.ParamsHash,
		&a.Rule, &a.Mode, &a.Preview, &a.Status, &created, &expires, &decided, &a.DecidedBy, &a.Reason, &grantExp, &used); err != nil {
		return a, err
	}
	if err := json.Unmarshal([]byte(actx), &a.Context); err != nil {
		return a, fmt.Errorf("approval %d: corrupt context: %w", a.ID, err)
	}
	if err := json.Unmarshal([]byte(stmts), &a.Statements); err != nil {
		return a, fmt.Errorf("approval %d: corrupt statements: %w", a.ID, err)
	}
	a.CreatedAt, a.ExpiresAt, a.DecidedAt = fromNano(created), fromNano(expires), fromNano(decided)
	a.GrantExpiresAt, a.UsedAt = fromNano(grantExp), fromNano(used)
	return a, nil
}

func (s *SQLite) InsertApproval(ctx context.Context, r ApprovalRequest) (int64, error) {
	actx, err := json.Marshal(r.Context)
	if err != nil {
		return 0, err
	}
	stmts, err := json.Marshal(r.Statements)
	if err != nil {
		return 0, err
	}
	status := r.Status
	if status == "" {
		status = ApprovalPending
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO approvals(agent, target, session_id, token_id, context, statements, fingerprint, statement_hash, params_hash,
		rule, mode, preview, status, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.Agent, r.Target, r.SessionID, r.TokenID, string(actx), string(stmts), r.Fingerprint, r.StatementHash, r.ParamsHash,
		r.Rule, r.Mode, r.Preview, status, unixNano(r.CreatedAt), unixNano(r.ExpiresAt))
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

func (s *SQLite) Approval(ctx context.Context, id int64) (ApprovalRequest, error) {
	a, err := scanApproval(s.db.QueryRowContext(ctx, `SELECT `+approvalColumns+` FROM approvals WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, ErrNotFound
	}
	return a, err
}

func (s *SQLite) queryApprovals(ctx context.Context, q string, args ...any) ([]ApprovalRequest, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ApprovalRequest
	for rows.Next() {
		a, err := scanApproval(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

func (s *SQLite) ListApprovals(ctx context.Context, status string, limit int) ([]ApprovalRequest, error) {
	if limit <= 0 {
		limit = 1000
	}
	if status == "" {
		return s.queryApprovals(ctx, `SELECT `+approvalColumns+` FROM approvals ORDER BY id DESC LIMIT ?`, limit)
	}
	return s.queryApprovals(ctx, `SELECT `+approvalColumns+` FROM approvals WHERE status = ? ORDER BY id DESC LIMIT ?`, status, limit)
}

// singleApproval runs an UPDATE … RETURNING that changes at most one row.
func (s *SQLite) singleApproval(ctx context.Context, q string, args ...any) (ApprovalRequest, error) {
	a, err := scanApproval(s.db.QueryRowContext(ctx, q, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return a, ErrApprovalState
	}
	return a, err
}

func (s *SQLite) DecideApproval(ctx context.Context, id int64, status, by, reason string, at, grantExpires time.Time) (ApprovalRequest, error) {
	if status != ApprovalGranted && status != ApprovalDenied {
		return ApprovalRequest{}, fmt.Errorf("DecideApproval: status must be granted or denied, got %q", status)
	}
	a, err := s.singleApproval(ctx, `UPDATE approvals SET status = ?, decided_at = ?, decided_by = ?, reason = ?, grant_expires_at = ?
		WHERE id = ? AND status = 'pending' AND expires_at > ? RETURNING `+approvalColumns,
		status, unixNano(at), by, reason, unixNano(grantExpires), id, unixNano(at))
	if errors.Is(err, ErrApprovalState) {
		if _, gerr := s.Approval(ctx, id); gerr != nil {
			return a, gerr
		}
	}
	return a, err
}

func (s *SQLite) ExpireApprovals(ctx context.Context, now time.Time) ([]ApprovalRequest, error) {
	return s.queryApprovals(ctx, `UPDATE approvals SET status = 'expired', decided_at = ?
		WHERE status = 'pending' AND expires_at <= ? RETURNING `+approvalColumns, unixNano(now), unixNano(now))
}

func (s *SQLite) ClaimApproval(ctx context.Context, id int64, now time.Time) (ApprovalRequest, error) {
	a, err := s.singleApproval(ctx, `UPDATE approvals SET used_at = ?
		WHERE id = ? AND status = 'granted' AND used_at = 0 AND grant_expires_at > ? RETURNING `+approvalColumns,
		unixNano(now), id, unixNano(now))
	if errors.Is(err, ErrApprovalState) {
		if _, gerr := s.Approval(ctx, id); gerr != nil {
			return a, gerr
		}
	}
	return a, err
}

func (s *SQLite) ConsumeGrant(ctx context.Context, m GrantMatch, now time.Time) (ApprovalRequest, error) {
	a, err := s.singleApproval(ctx, `UPDATE approvals SET used_at = ?
		WHERE id = (SELECT id FROM approvals WHERE status = 'granted' AND used_at = 0 AND agent = ? AND target = ?
			AND fingerprint = ? AND statement_hash = ? AND params_hash = ? AND grant_expires_at > ? ORDER BY id LIMIT 1)
		AND used_at = 0 RETURNING `+approvalColumns,
		unixNano(now), m.Agent, m.Target, m.Fingerprint, m.StatementHash, m.ParamsHash, unixNano(now))
	if errors.Is(err, ErrApprovalState) {
		return a, ErrNotFound
	}
	return a, err
}

func (s *SQLite) LatestApproval(ctx context.Context, m GrantMatch) (ApprovalRequest, error) {
	a, err := scanApproval(s.db.QueryRowContext(ctx, `SELECT `+approvalColumns+` FROM approvals
		WHERE agent = ? AND target = ? AND fingerprint = ? AND statement_hash = ? AND params_hash = ? ORDER BY id DESC LIMIT 1`,
		m.Agent, m.Target, m.Fingerprint, m.StatementHash, m.ParamsHash))
	if errors.Is(err, sql.ErrNoRows) {
		return a, ErrNotFound
	}
	return a, err
}

var _ ApprovalStore = (*SQLite)(nil)
