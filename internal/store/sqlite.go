package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver (pure Go, no cgo)
)

// SQLite is the embedded store in data_dir: keys and tokens in weir.db
// (WAL mode, busy timeout, so the server and CLI commands can open it at
// the same time) and the audit chain in audit.jsonl (see auditLog).
type SQLite struct {
	db    *sql.DB
	audit *auditLog
	sync  string // the configured synchronous pragma
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
CREATE TABLE IF NOT EXISTS checkpoints (
	seq INTEGER PRIMARY KEY,
	hash BLOB NOT NULL,
	signature BLOB NOT NULL,
	key_id TEXT NOT NULL,
	signed_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS prune_anchors (
	first_seq INTEGER PRIMARY KEY,
	prev_hash BLOB NOT NULL,
	signature BLOB NOT NULL,
	key_id TEXT NOT NULL,
	pruned_at INTEGER NOT NULL,
	removed INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tokens_revoked ON tokens(revoked_at) WHERE revoked_at > 0;
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
	if _, err := db.Exec(sqliteSchema + approvalSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("initialising store %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("securing store %s: %w", path, err)
	}
	al, err := openAuditLog(filepath.Join(dir, "audit.jsonl"), fsync)
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &SQLite{db: db, audit: al, sync: sync}
	return s, nil
}

func (s *SQLite) Close() error {
	return errors.Join(s.db.Close(), s.audit.close())
}

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

func (s *SQLite) DeleteSigningKey(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM signing_keys WHERE id = ?`, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
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

func (s *SQLite) AppendAudit(_ context.Context, recs []AuditRecord, genesis []byte, hash func(*AuditRecord) []byte) error {
	if len(recs) == 0 {
		return nil
	}
	return s.audit.append(recs, genesis, hash)
}

func (s *SQLite) LastAudit(context.Context) (AuditRecord, error) { return s.audit.last() }

func (s *SQLite) ReadAudit(ctx context.Context, after int64, limit int) ([]AuditRecord, error) {
	return s.audit.read(ctx, after, limit)
}

func (s *SQLite) SaveCheckpoint(ctx context.Context, c Checkpoint) error {
	_, err := s.db.ExecContext(ctx, `INSERT OR REPLACE INTO checkpoints(seq, hash, signature, key_id, signed_at) VALUES (?, ?, ?, ?, ?)`,
		c.Seq, c.Hash, c.Signature, c.KeyID, c.SignedAt.UnixNano())
	return err
}

func (s *SQLite) LastCheckpoint(ctx context.Context) (Checkpoint, error) {
	var c Checkpoint
	var at int64
	err := s.db.QueryRowContext(ctx, `SELECT seq, hash, signature, key_id, signed_at FROM checkpoints ORDER BY seq DESC LIMIT 1`).
		Scan(&c.Seq, &c.Hash, &c.Signature, &c.KeyID, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return c, ErrNotFound
	}
	c.SignedAt = time.Unix(0, at)
	return c, err
}

// SavePruneAnchor commits with synchronous=FULL whatever the store's
// setting: the log is cut right after, and a cut log whose anchor was lost
// in a power failure would no longer verify.
func (s *SQLite) SavePruneAnchor(ctx context.Context, a PruneAnchor) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous=FULL`); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, `INSERT OR REPLACE INTO prune_anchors(first_seq, prev_hash, signature, key_id, pruned_at, removed) VALUES (?, ?, ?, ?, ?, ?)`,
		a.FirstSeq, a.PrevHash, a.Signature, a.KeyID, a.PrunedAt.UnixNano(), a.Removed)
	if _, rerr := conn.ExecContext(context.Background(), `PRAGMA synchronous=`+s.sync); rerr != nil {
		// Do not hand a connection with the wrong setting back to the pool.
		conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	return err
}

func (s *SQLite) PruneAnchor(ctx context.Context, firstSeq int64) (PruneAnchor, error) {
	var a PruneAnchor
	var at int64
	err := s.db.QueryRowContext(ctx, `SELECT first_seq, prev_hash, signature, key_id, pruned_at, removed FROM prune_anchors WHERE first_seq = ?`, firstSeq).
		Scan(&a.FirstSeq, &a.PrevHash, &a.Signature, &a.KeyID, &at, &a.Removed)
	if errors.Is(err, sql.ErrNoRows) {
		return a, ErrNotFound
	}
	a.PrunedAt = time.Unix(0, at)
	return a, err
}

func (s *SQLite) PruneAudit(ctx context.Context, firstSeq int64, prevHash []byte) (int64, error) {
	return s.audit.prune(ctx, firstSeq, prevHash)
}

var _ Store = (*SQLite)(nil)
