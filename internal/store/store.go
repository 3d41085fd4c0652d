// Package store persists what must survive a restart: signing keys, issued
// and revoked tokens, sessions and the audit chain.
//
// Store is an interface so that a shared PostgreSQL store can sit behind the
// same calls as the embedded SQLite one. Implementations must make
// AppendAudit atomic and durable before it returns: the gateway forwards a
// command only after its record was appended.
package store

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned when a looked-up record does not exist.
var ErrNotFound = errors.New("not found")

// SigningKey is an Ed25519 key weir signs tokens and checkpoints with.
type SigningKey struct {
	ID         string
	PrivateKey []byte // ed25519 seed (32 bytes)
	CreatedAt  time.Time
}

// Token is the record of an issued weir token (never the token string itself).
type Token struct {
	ID        string
	Agent     string
	Targets   []string
	Context   map[string]string
	Issuer    string
	IssuedAt  time.Time
	ExpiresAt time.Time
	RevokedAt time.Time // zero when not revoked
	RevokedBy string
}

// AuditRecord is one link of the audit hash chain, as stored.
type AuditRecord struct {
	Seq       int64
	Time      time.Time
	Type      string
	SessionID string
	Agent     string
	Target    string
	// Data is the canonical JSON of the event; Hash covers it.
	Data     []byte
	PrevHash []byte
	Hash     []byte
}

// Store is weir's persistence.
type Store interface {
	SigningKeys(ctx context.Context) ([]SigningKey, error)
	AddSigningKey(ctx context.Context, k SigningKey) error
	// DeleteSigningKey retires a key: tokens it signed stop verifying.
	DeleteSigningKey(ctx context.Context, id string) error

	InsertToken(ctx context.Context, t Token) error
	Token(ctx context.Context, id string) (Token, error)
	ListTokens(ctx context.Context, includeExpired bool, now time.Time) ([]Token, error)
	RevokeToken(ctx context.Context, id, by string, at time.Time) error
	// RevokedSince lists ids of tokens revoked at or after since.
	RevokedSince(ctx context.Context, since time.Time) ([]string, error)

	// AppendAudit links records to the chain's head and stores them
	// atomically and durably, in order. Under the store's write lock it
	// reads the head (or uses genesis for an empty chain), sets each
	// record's Seq and PrevHash, and sets Hash = hash(record); the records
	// are updated in place. Several processes may append concurrently.
	AppendAudit(ctx context.Context, recs []AuditRecord, genesis []byte, hash func(*AuditRecord) []byte) error
	// LastAudit returns the last record, or ErrNotFound on an empty chain.
	LastAudit(ctx context.Context) (AuditRecord, error)
	// ReadAudit returns up to limit records with Seq > after, in order.
	ReadAudit(ctx context.Context, after int64, limit int) ([]AuditRecord, error)

	// SaveCheckpoint records the newest signed checkpoint outside the log.
	SaveCheckpoint(ctx context.Context, c Checkpoint) error
	// LastCheckpoint returns it, or ErrNotFound.
	LastCheckpoint(ctx context.Context) (Checkpoint, error)

	// SavePruneAnchor records, outside the log and durably, the signed
	// statement that the log is about to start at a.FirstSeq. It is saved
	// before PruneAudit cuts the log, so that a crash in between leaves a
	// log that still verifies. Anchors are kept by FirstSeq.
	SavePruneAnchor(ctx context.Context, a PruneAnchor) error
	// PruneAnchor returns the anchor saved for a log that starts at
	// firstSeq, or ErrNotFound.
	PruneAnchor(ctx context.Context, firstSeq int64) (PruneAnchor, error)
	// PruneAudit removes the records before firstSeq from the head of the
	// log, atomically with respect to appends (which may come from other
	// processes) and to crashes. The record firstSeq must be in the log and
	// link to prevHash; if the log already starts at firstSeq, nothing is
	// removed. It returns how many records were removed.
	PruneAudit(ctx context.Context, firstSeq int64, prevHash []byte) (int64, error)

	ApprovalStore

	Close() error
}

// Checkpoint is the newest signed checkpoint: the checkpoint record's own
// sequence number and hash, and its signature.
type Checkpoint struct {
	Seq       int64
	Hash      []byte
	Signature []byte
	KeyID     string
	SignedAt  time.Time
}

// PruneAnchor is the signed statement that the log was pruned to start at
// record FirstSeq, whose previous hash (the hash of the last removed
// record) is PrevHash. The signature covers FirstSeq and PrevHash only (see
// audit.Prune); PrunedAt and Removed are for people.
type PruneAnchor struct {
	FirstSeq  int64
	PrevHash  []byte
	Signature []byte
	KeyID     string
	PrunedAt  time.Time
	Removed   int64
}

// ErrApprovalState is returned by DecideApproval and ClaimApproval when the
// request is not in the state the change needs (already decided, expired,
// already used); the caller reads the request to say which.
var ErrApprovalState = errors.New("approval request is not in the required state")

// Approval request statuses.
const (
	ApprovalPending = "pending"
	ApprovalGranted = "granted"
	ApprovalDenied  = "denied"
	ApprovalExpired = "expired"
)

// ApprovalRequest is a just-in-time approval request and, once granted,
// the grant it carries: bound to Agent, Target, Fingerprint and
// ParamsHash, valid until GrantExpiresAt, used at most once (UsedAt).
type ApprovalRequest struct {
	ID          int64
	Agent       string
	Target      string
	SessionID   string
	TokenID     string
	Context     map[string]string
	Statements  []string
	Fingerprint string
	// StatementHash binds the exact statement text (the fingerprint has
	// constants removed), ParamsHash the bound parameters.
	StatementHash string
	ParamsHash    string
	Rule          string
	Mode          string
	Preview       string
	Status        string
	CreatedAt     time.Time
	// ExpiresAt is the deadline for a decision; a request still pending
	// then is expired.
	ExpiresAt time.Time
	DecidedAt time.Time // zero while pending
	DecidedBy string
	Reason    string
	// GrantExpiresAt bounds the use of a granted request.
	GrantExpiresAt time.Time
	UsedAt         time.Time // zero until used
}

// GrantMatch selects the grant a command may use.
type GrantMatch struct {
	Agent, Target, Fingerprint, StatementHash, ParamsHash string
}

// ApprovalStore persists approval requests and grants.
type ApprovalStore interface {
	// InsertApproval stores a new request and returns its id (sequential,
	// never reused).
	InsertApproval(ctx context.Context, r ApprovalRequest) (int64, error)
	// Approval returns a request, or ErrNotFound.
	Approval(ctx context.Context, id int64) (ApprovalRequest, error)
	// ListApprovals returns up to limit requests (newest first) with the
	// status, or of any status when status is "".
	ListApprovals(ctx context.Context, status string, limit int) ([]ApprovalRequest, error)
	// DecideApproval atomically moves a pending request whose ExpiresAt is
	// after at to status (granted or denied), recording by, reason and,
	// for a grant, grantExpires. It returns the updated request, or
	// ErrApprovalState when the request is not pending or is past its
	// deadline, or ErrNotFound.
	DecideApproval(ctx context.Context, id int64, status, by, reason string, at, grantExpires time.Time) (ApprovalRequest, error)
	// ExpireApprovals atomically moves every pending request whose
	// ExpiresAt is at or before now to expired and returns those requests
	// (each exactly once, across processes).
	ExpireApprovals(ctx context.Context, now time.Time) ([]ApprovalRequest, error)
	// ClaimApproval atomically marks the granted, unused, unexpired
	// (GrantExpiresAt after now) request id as used at now, or returns
	// ErrApprovalState.
	ClaimApproval(ctx context.Context, id int64, now time.Time) (ApprovalRequest, error)
	// ConsumeGrant atomically finds the oldest granted, unused, unexpired
	// request matching m and marks it used at now; ErrNotFound when there
	// is none. Of concurrent callers, each grant satisfies exactly one.
	ConsumeGrant(ctx context.Context, m GrantMatch, now time.Time) (ApprovalRequest, error)
	// LatestApproval returns the newest request (any status) matching m,
	// or ErrNotFound.
	LatestApproval(ctx context.Context, m GrantMatch) (ApprovalRequest, error)
}
