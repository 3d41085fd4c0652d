package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver (pure Go, no cgo)
)

// SQLite is the embedded store: one file in data_dir, safe for the server
// and CLI commands to open at the same time (WAL mode, busy timeout).
type SQLite struct {
	db *sql.DB
}

const sqliteSchema = `
CREATE TABLE IF NOT EXISTS signing_keys (
	id TEXT PRIMARY KEY,
	private_key BLOB NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
	id TEXT PRIMARY KEY,
	agent TEXT NOT NULL,
	targets TEXT NOT NULL,
	context TEXT NOT NULL,
	issuer TEXT NOT NULL,
	issued_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	revoked_at INTEGER NOT NULL DEFAULT 0,
	revoked_by TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS tokens_revoked ON tokens(revoked_at) WHERE revoked_at > 0;
CREATE TABLE IF NOT EXISTS audit (
	seq INTEGER PRIMARY KEY,
	time INTEGER NOT NULL,
	type TEXT NOT NULL,
	session_id TEXT NOT NULL,
	agent TEXT NOT NULL,
	target TEXT NOT NULL,
	data BLOB NOT NULL,
	prev_hash BLOB NOT NULL,
	hash BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_session ON audit(session_id) WHERE session_id != '';
`

// OpenSQLite opens (creating if needed) the store at dir/weir.db. With
// fsync, every commit is synced to disk; without, commits survive a crash of
// the process (WAL written to the OS) but not of the machine.
func OpenSQLite(dir string, fsync bool) (*SQLite, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data_dir: %w", err)
	}
	sync := "NORMAL"
	if fsync {
		sync = "FULL"
	}
	path := filepath.Join(dir, "weir.db")
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(" + sync + ")&_pragma=foreign_keys(on)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", path, err)
	}
	if _, err := db.Exec(sqliteSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("initialising store %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("securing store %s: %w", path, err)
	}
	return &SQLite{db: db}, nil
}

func (s *SQLite) Close() error { return s.db.Close() }

func (s *SQLite) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, private_key, created_at FROM signing_keys ORDER BY created_at DESC, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var keys []SigningKey
	for rows.Next() {
		var k SigningKey
		var created int64
		if err := rows.Scan(&k.ID, &k.PrivateKey, &created); err != nil {
			return nil, err
		}
		k.CreatedAt = time.Unix(0, created)
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

func (s *SQLite) AddSigningKey(ctx context.Context, k SigningKey) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO signing_keys(id, private_key, created_at) VALUES (?, ?, ?)`,
		k.ID, k.PrivateKey, k.CreatedAt.UnixNano())
	return err
}

func (s *SQLite) InsertToken(ctx context.Context, t Token) error {
	targets, _ := json.Marshal(t.Targets)
	tctx, _ := json.Marshal(t.Context)
	_, err := s.db.ExecContext(ctx, `INSERT INTO tokens(id, agent, targets, context, issuer, issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.Agent, string(targets), string(tctx), t.Issuer, t.IssuedAt.UnixNano(), t.ExpiresAt.UnixNano())
	return err
}

const tokenColumns = `id, agent, targets, context, issuer, issued_at, expires_at, revoked_at, revoked_by`

type scanner interface{ Scan(...any) error }

func scanToken(r scanner) (Token, error) {
	var t Token
	var targets, tctx string
	var issued, expires, revoked int64
	if err := r.Scan(&t.ID, &t.Agent, &targets, &tctx, &t.Issuer, &issued, &expires, &revoked, &t.RevokedBy); err != nil {
		return t, err
	}
	if err := json.Unmarshal([]byte(targets), &t.Targets); err != nil {
		return t, fmt.Errorf("token %s: corrupt targets: %w", t.ID, err)
	}
	if err := json.Unmarshal([]byte(tctx), &t.Context); err != nil {
		return t, fmt.Errorf("token %s: corrupt context: %w", t.ID, err)
	}
	t.IssuedAt = time.Unix(0, issued)
	t.ExpiresAt = time.Unix(0, expires)
	if revoked > 0 {
		t.RevokedAt = time.Unix(0, revoked)
	}
	return t, nil
}

func (s *SQLite) Token(ctx context.Context, id string) (Token, error) {
	t, err := scanToken(s.db.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return t, ErrNotFound
	}
	return t, err
}

func (s *SQLite) ListTokens(ctx context.Context, includeExpired bool, now time.Time) ([]Token, error) {
	q := `SELECT ` + tokenColumns + ` FROM tokens`
	args := []any{}
	if !includeExpired {
		q += ` WHERE expires_at > ? AND revoked_at = 0`
		args = append(args, now.UnixNano())
	}
	q += ` ORDER BY issued_at`
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

func (s *SQLite) RevokeToken(ctx context.Context, id, by string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE tokens SET revoked_at = ?, revoked_by = ? WHERE id = ? AND revoked_at = 0`, at.UnixNano(), by, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.Token(ctx, id); err != nil {
			return err
		}
		// Already revoked: revoking again is not an error.
	}
	return nil
}

func (s *SQLite) RevokedSince(ctx context.Context, since time.Time) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id FROM tokens WHERE revoked_at >= ? AND revoked_at > 0`, since.UnixNano())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

func (s *SQLite) AppendAudit(ctx context.Context, recs []AuditRecord, genesis []byte, hash func(*AuditRecord) []byte) error {
	if len(recs) == 0 {
		return nil
	}
	// BEGIN IMMEDIATE (see _txlock): the head read below cannot change
	// under us, even with the CLI appending from another process.
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var seq int64
	prev := genesis
	err = tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	for i := range recs {
		seq++
		recs[i].Seq = seq
		recs[i].PrevHash = prev
		recs[i].Hash = hash(&recs[i])
		prev = recs[i].Hash
	}
	// One multi-row INSERT per chunk: far fewer round trips through the
	// driver than a statement per record (SQLite allows 32766 variables).
	const cols = 9
	const chunk = 500
	for start := 0; start < len(recs); start += chunk {
		end := min(start+chunk, len(recs))
		var b strings.Builder
		b.WriteString(`INSERT INTO audit(seq, time, type, session_id, agent, target, data, prev_hash, hash) VALUES `)
		args := make([]any, 0, (end-start)*cols)
		for i, r := range recs[start:end] {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?,?,?,?,?,?,?,?,?)")
			args = append(args, r.Seq, r.Time.UnixNano(), r.Type, r.SessionID, r.Agent, r.Target, r.Data, r.PrevHash, r.Hash)
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return err
		}
	}
	return tx.Commit()
}

const auditColumns = `seq, time, type, session_id, agent, target, data, prev_hash, hash`

func scanAudit(r scanner) (AuditRecord, error) {
	var a AuditRecord
	var ts int64
	err := r.Scan(&a.Seq, &ts, &a.Type, &a.SessionID, &a.Agent, &a.Target, &a.Data, &a.PrevHash, &a.Hash)
	a.Time = time.Unix(0, ts).UTC()
	return a, err
}

func (s *SQLite) LastAudit(ctx context.Context) (AuditRecord, error) {
	a, err := scanAudit(s.db.QueryRowContext(ctx, `SELECT `+auditColumns+` FROM audit ORDER BY seq DESC LIMIT 1`))
	if errors.Is(err, sql.ErrNoRows) {
		return a, ErrNotFound
	}
	return a, err
}

func (s *SQLite) ReadAudit(ctx context.Context, after int64, limit int) ([]AuditRecord, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []AuditRecord
	for rows.Next() {
		a, err := scanAudit(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

var _ Store = (*SQLite)(nil)
