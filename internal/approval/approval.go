// Package approval is just-in-time approval of one exact command.
//
// When a policy rule with action review matches, the gateway asks the
// Service for approval (Request). The request is durable in the store
// before anyone is told of it, gets a short sequential id ("weir approvals
// approve 42"), is audited (approval.requested) and announced to the
// configured notifiers in the background.
//
// Two modes:
//
//   - hold: the client waits in Wait until a person decides or the request
//     expires (approvals.timeout). Wait wakes within milliseconds of a
//     decision taken in the same process, and polls the store (every
//     200 ms by default) for decisions taken by another process. A granted
//     hold request is used (claimed) by Wait, so it runs once.
//   - async: the command is refused at once with the request id; once
//     approved, the same agent sending the same statement with the same
//     parameters to the same target within approvals.grant_ttl runs it
//     once (Consume).
//
// A grant is bound to agent, target, the statement's fingerprint, a hash of
// its exact text (the fingerprint has constants removed) and a hash of its
// bound parameters; it expires grant_ttl after the decision and is single
// use (atomic in the store). A granted hold request whose client went away
// (connection closed, weir restarted) is never run by weir on its own; the
// agent sending the same command again within the grant's lifetime uses it
// through Consume, like an async grant.
//
// Who may decide: an admin identity with role approver or admin, and not
// the requester. "Self" is defined in IsSelf: the approver's name equals the
// requesting agent's name (or "admin:"+name equals it), or equals the
// person the agent's attested context names as behind the request (context
// keys actor, issued_by, requested_by, user; compared case-insensitively,
// with an "admin:" or "local:" prefix ignored).
//
// Every step is audited: approval.requested, approval.granted,
// approval.denied, approval.expired, approval.used. Failing closed: a
// request that cannot be audited is denied and refused; a grant whose
// granting cannot be audited is burnt (marked used) and the approver told.
package approval

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/weir-gw/weir/internal/audit"
	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/identity"
	"github.com/weir-gw/weir/internal/store"
)

// Audit event types.
const (
	TypeRequested = "approval.requested"
	TypeGranted   = "approval.granted"
	TypeDenied    = "approval.denied"
	TypeExpired   = "approval.expired"
	TypeUsed      = "approval.used"
	// TypeRefused records a refused decision (self-approval).
	TypeRefused = "approval.refused"
)

// Modes (as in config).
const (
	ModeHold  = config.ModeHold
	ModeAsync = config.ModeAsync
)

// Statuses (as in the store).
const (
	StatusPending = store.ApprovalPending
	StatusGranted = store.ApprovalGranted
	StatusDenied  = store.ApprovalDenied
	StatusExpired = store.ApprovalExpired
)

// Errors. They are safe to show to the person or agent concerned.
var (
	ErrNotFound       = errors.New("no such approval request")
	ErrSelfApproval   = errors.New("nobody may decide their own request")
	ErrRole           = errors.New("only an admin identity with role approver or admin may decide approval requests")
	ErrAlreadyDecided = errors.New("the approval request was already decided")
	ErrExpired        = errors.New("the approval request has expired")
	ErrReasonRequired = errors.New("a denial needs a reason (the agent is shown it)")
	ErrUsed           = errors.New("the approval was already used")
	ErrUnaudited      = errors.New("weir cannot record this in the audit log right now; refusing")
)

// Req is what the gateway asks approval for.
type Req struct {
	Agent     string
	Target    string
	SessionID string
	TokenID   string
	// Context is the agent's execution context (CI run, ticket, chat
	// session), shown to approvers.
	Context map[string]string
	// Statements are the exact statements, as the agent sent them.
	Statements []string
	// Fingerprint is the normalized statement fingerprint (constants removed).
	Fingerprint string
	// Params are the bound parameters (nil element = NULL).
	Params [][]byte
	// Rule is the review rule that matched; Mode its mode (default hold).
	Rule string
	Mode string
	// Preview is the blast-radius preview (e.g. the EXPLAIN row estimate).
	Preview string
}

// Pending is a request just created.
type Pending struct {
	ID        int64
	Mode      string
	CreatedAt time.Time
	// ExpiresAt is the deadline for a decision.
	ExpiresAt time.Time
}

// Approver is the person deciding (from a verified admin token).
type Approver struct {
	Name    string
	Role    identity.Role
	TokenID string
}

// ApproverFromClaims converts verified admin claims.
func ApproverFromClaims(c identity.AdminClaims) Approver {
	return Approver{Name: c.Name, Role: c.Role, TokenID: c.ID}
}

// Decision is the outcome of a request.
type Decision struct {
	ID     int64
	Status string // granted, denied or expired
	By     string
	Reason string
	At     time.Time
	// GrantExpiresAt bounds the use of a grant.
	GrantExpiresAt time.Time
}

// GrantKey identifies the command an async grant is for.
type GrantKey struct {
	Agent       string
	Target      string
	Fingerprint string
	// Statements are the exact statements (bound by their hash).
	Statements []string
	// ParamsHash is HashParams of the bound parameters.
	ParamsHash string
}

// HashParams hashes bound parameters; NULL (nil) differs from empty.
func HashParams(params [][]byte) string {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(params)))
	h.Write(n[:])
	for _, p := range params {
		if p == nil {
			binary.BigEndian.PutUint64(n[:], ^uint64(0))
			h.Write(n[:])
			continue
		}
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// HashStatements hashes the exact statement texts (surrounding whitespace
// and trailing semicolons aside).
func HashStatements(stmts []string) string {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(stmts)))
	h.Write(n[:])
	for _, s := range stmts {
		s = strings.TrimSpace(strings.TrimRight(strings.TrimSpace(s), ";"))
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Notifier announces new requests; it must not block.
type Notifier interface {
	Notify(v View)
}

// Options configure a Service.
type Options struct {
	// Store holds requests and grants. Required.
	Store store.ApprovalStore
	// Audit appends an event durably, e.g. (*audit.Writer).Append. Required.
	Audit func(ctx context.Context, ev audit.Event) error
	// Timeout is a hold request's deadline (default 60s), AsyncTimeout an
	// async request's (default 24h), GrantTTL a grant's lifetime from its
	// decision (default 15m).
	Timeout      time.Duration
	AsyncTimeout time.Duration
	GrantTTL     time.Duration
	// Notifier is told of every new request (optional).
	Notifier Notifier
	// Poll is how often Wait reads the store for decisions made by other
	// processes (default 200ms).
	Poll   time.Duration
	Now    func() time.Time
	Logger *slog.Logger
}

// OptionsFromConfig fills the durations from cfg.Approvals.
func OptionsFromConfig(cfg *config.Config) Options {
	return Options{Timeout: cfg.Approvals.Timeout, AsyncTimeout: cfg.Approvals.AsyncTimeout, GrantTTL: cfg.Approvals.GrantTTL}
}

// Service is the approval workflow. It is safe for concurrent use; several
// Services (processes) may share one store.
type Service struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every decision here

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// New returns a Service.
func New(opts Options) (*Service, error) {
	if opts.Store == nil {
		return nil, errors.New("approval: a store is required")
	}
	if opts.Audit == nil {
		return nil, errors.New("approval: an audit function is required")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = config.DefaultApprovalTimeout
	}
	if opts.AsyncTimeout <= 0 {
		opts.AsyncTimeout = config.DefaultApprovalAsyncTimeout
	}
	if opts.GrantTTL <= 0 {
		opts.GrantTTL = config.DefaultGrantTTL
	}
	if opts.Poll <= 0 {
		opts.Poll = 200 * time.Millisecond
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{opts: opts, log: log, changed: make(chan struct{})}, nil
}

// Start expires overdue requests every interval in the background until
// Close (so that requests nobody waits for, e.g. async ones, expire and are
// audited as such).
func (s *Service) Start(interval time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop != nil {
		return
	}
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				if _, err := s.Sweep(context.Background()); err != nil {
					s.log.Error("expiring approval requests", "err", err)
				}
			}
		}
	}()
}

// Close stops the background expiry started by Start.
func (s *Service) Close() {
	s.mu.Lock()
	stop, done := s.stop, s.done
	s.mu.Unlock()
	if stop == nil {
		return
	}
	s.once.Do(func() { close(stop) })
	<-done
}

func (s *Service) broadcast() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *Service) watch() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Request records a new pending request durably, audits it and notifies
// approvers in the background.
func (s *Service) Request(ctx context.Context, r Req) (Pending, error) {
	mode := r.Mode
	if mode == "" {
		mode = ModeHold
	}
	if mode != ModeHold && mode != ModeAsync {
		return Pending{}, fmt.Errorf("approval: unknown mode %q", mode)
	}
	if r.Agent == "" || r.Target == "" || len(r.Statements) == 0 {
		return Pending{}, errors.New("approval: agent, target and statements are required")
	}
	now := s.opts.Now()
	ttl := s.opts.Timeout
	if mode == ModeAsync {
		ttl = s.opts.AsyncTimeout
	}
	rec := store.ApprovalRequest{
		Agent: r.Agent, Target: r.Target, SessionID: r.SessionID, TokenID: r.TokenID, Context: r.Context,
		Statements: r.Statements, Fingerprint: r.Fingerprint, StatementHash: HashStatements(r.Statements), ParamsHash: HashParams(r.Params),
		Rule: r.Rule, Mode: mode, Preview: r.Preview, Status: StatusPending, CreatedAt: now, ExpiresAt: now.Add(ttl),
	}
	if rec.Context == nil {
		rec.Context = map[string]string{}
	}
	id, err := s.opts.Store.InsertApproval(ctx, rec)
	if err != nil {
		return Pending{}, fmt.Errorf("recording approval request: %w", err)
	}
	rec.ID = id
	v := ViewOf(rec)
	if err := s.opts.Audit(ctx, audit.Event{Type: TypeRequested, SessionID: r.SessionID, Agent: r.Agent, Target: r.Target, Data: map[string]any{
		"approval_id": id, "mode": mode, "rule": r.Rule, "token_id": r.TokenID, "statements": r.Statements,
		"fingerprint": r.Fingerprint, "params_hash": rec.ParamsHash, "preview": r.Preview, "context": rec.Context,
		"expires": rec.ExpiresAt.UTC(),
	}}); err != nil {
		// Fail closed: an unaudited request must not be approvable.
		if _, derr := s.opts.Store.DecideApproval(context.WithoutCancel(ctx), id, StatusDenied, "weir", "the request could not be audited", now, time.Time{}); derr != nil {
			s.log.Error("denying unaudited approval request", "err", derr, "approval_id", id)
		}
		s.log.Error("auditing approval request", "err", err, "approval_id", id)
		return Pending{}, ErrUnaudited
	}
	if s.opts.Notifier != nil {
		s.opts.Notifier.Notify(v)
	}
	return Pending{ID: id, Mode: mode, CreatedAt: now, ExpiresAt: rec.ExpiresAt}, nil
}

// Get returns a request.
func (s *Service) Get(ctx context.Context, id int64) (View, error) {
	r, err := s.opts.Store.Approval(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return View{}, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	if err != nil {
		return View{}, err
	}
	if r.Status == StatusPending && !s.opts.Now().Before(r.ExpiresAt) {
		if _, err := s.Sweep(ctx); err != nil {
			return View{}, err
		}
		if r, err = s.opts.Store.Approval(ctx, id); err != nil {
			return View{}, err
		}
	}
	return ViewOf(r), nil
}

// List returns requests with status ("" = any), newest first, after
// expiring overdue ones.
func (s *Service) List(ctx context.Context, status string, limit int) ([]View, error) {
	if _, err := s.Sweep(ctx); err != nil {
		return nil, err
	}
	rs, err := s.opts.Store.ListApprovals(ctx, status, limit)
	if err != nil {
		return nil, err
	}
	out := make([]View, len(rs))
	for i, r := range rs {
		out[i] = ViewOf(r)
	}
	return out, nil
}

// Sweep expires every overdue pending request and audits each (once,
// across processes). It returns how many it expired.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	now := s.opts.Now()
	rs, err := s.opts.Store.ExpireApprovals(ctx, now)
	if err != nil {
		return 0, fmt.Errorf("expiring approval requests: %w", err)
	}
	var errs []error
	for _, r := range rs {
		if err := s.opts.Audit(ctx, audit.Event{Type: TypeExpired, SessionID: r.SessionID, Agent: r.Agent, Target: r.Target, Data: map[string]any{
			"approval_id": r.ID, "mode": r.Mode, "rule": r.Rule, "requested": r.CreatedAt.UTC(), "deadline": r.ExpiresAt.UTC(),
			"reason": "no decision before the deadline",
		}}); err != nil {
			errs = append(errs, err)
		}
	}
	if len(rs) > 0 {
		s.broadcast()
	}
	return len(rs), errors.Join(errs...)
}

// IsSelf reports whether approver would be deciding their own request (see
// the package documentation).
func IsSelf(r store.ApprovalRequest, approverName string) bool {
	name := strings.ToLower(strings.TrimSpace(approverName))
	if name == "" {
		return true
	}
	norm := func(s string) string {
		s = strings.ToLower(strings.TrimSpace(s))
		s = strings.TrimPrefix(s, identity.AdminAgentPrefix)
		return strings.TrimPrefix(s, "local:")
	}
	if norm(r.Agent) == name {
		return true
	}
	for _, k := range []string{"actor", "issued_by", "requested_by", "user"} {
		if v, ok := r.Context[k]; ok && v != "" && norm(v) == name {
			return true
		}
	}
	return false
}

// Approve grants request id. The grant is usable for GrantTTL.
func (s *Service) Approve(ctx context.Context, id int64, approver Approver, reason string) (Decision, error) {
	return s.decide(ctx, id, approver, reason, StatusGranted)
}

// Deny denies request id; reason is required and shown to the agent.
func (s *Service) Deny(ctx context.Context, id int64, approver Approver, reason string) (Decision, error) {
	if strings.TrimSpace(reason) == "" {
		return Decision{}, ErrReasonRequired
	}
	return s.decide(ctx, id, approver, reason, StatusDenied)
}

const maxReason = 1000

func (s *Service) decide(ctx context.Context, id int64, ap Approver, reason, status string) (Decision, error) {
	if ap.Role != identity.RoleApprover && ap.Role != identity.RoleAdmin {
		return Decision{}, ErrRole
	}
	reason = strings.TrimSpace(reason)
	if len(reason) > maxReason {
		return Decision{}, fmt.Errorf("the reason is longer than %d bytes", maxReason)
	}
	r, err := s.opts.Store.Approval(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Decision{}, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	if err != nil {
		return Decision{}, err
	}
	if IsSelf(r, ap.Name) {
		s.auditRefused(ctx, r, ap, status, "self-approval")
		return Decision{}, fmt.Errorf("%w: %s is the requester of request %d", ErrSelfApproval, ap.Name, id)
	}
	now := s.opts.Now()
	var grantExp time.Time
	if status == StatusGranted {
		grantExp = now.Add(s.opts.GrantTTL)
	}
	by := ap.Name
	got, err := s.opts.Store.DecideApproval(ctx, id, status, by, reason, now, grantExp)
	if errors.Is(err, store.ErrApprovalState) {
		cur, gerr := s.Get(ctx, id) // expires it when overdue
		if gerr != nil {
			return Decision{}, gerr
		}
		if cur.Status == StatusExpired || cur.Status == StatusPending {
			return Decision{}, fmt.Errorf("%w: request %d (deadline %s)", ErrExpired, id, cur.ExpiresAt.UTC().Format(time.RFC3339))
		}
		return Decision{}, fmt.Errorf("%w: request %d was %s by %s", ErrAlreadyDecided, id, cur.Status, cur.DecidedBy)
	}
	if err != nil {
		return Decision{}, fmt.Errorf("recording the decision: %w", err)
	}
	typ := TypeGranted
	if status == StatusDenied {
		typ = TypeDenied
	}
	data := map[string]any{"approval_id": id, "by": by, "role": string(ap.Role), "admin_token_id": ap.TokenID, "reason": reason,
		"mode": got.Mode, "rule": got.Rule, "requested": got.CreatedAt.UTC(), "statements": got.Statements}
	if status == StatusGranted {
		data["grant_expires"] = grantExp.UTC()
	}
	if err := s.opts.Audit(ctx, audit.Event{Type: typ, SessionID: got.SessionID, Agent: got.Agent, Target: got.Target, Data: data}); err != nil {
		s.log.Error("auditing approval decision", "err", err, "approval_id", id)
		if status == StatusGranted {
			// Burn the unaudited grant: nothing runs on it.
			if _, cerr := s.opts.Store.ClaimApproval(context.WithoutCancel(ctx), id, now); cerr != nil {
				s.log.Error("burning unaudited grant", "err", cerr, "approval_id", id)
			}
		}
		s.broadcast()
		return Decision{}, ErrUnaudited
	}
	s.broadcast()
	return decisionOf(got), nil
}

func (s *Service) auditRefused(ctx context.Context, r store.ApprovalRequest, ap Approver, status, why string) {
	if err := s.opts.Audit(ctx, audit.Event{Type: TypeRefused, SessionID: r.SessionID, Agent: r.Agent, Target: r.Target, Data: map[string]any{
		"approval_id": r.ID, "by": ap.Name, "role": string(ap.Role), "admin_token_id": ap.TokenID, "attempted": status, "reason": why,
	}}); err != nil {
		s.log.Error("auditing refused approval decision", "err", err)
	}
}

func decisionOf(r store.ApprovalRequest) Decision {
	return Decision{ID: r.ID, Status: r.Status, By: r.DecidedBy, Reason: r.Reason, At: r.DecidedAt, GrantExpiresAt: r.GrantExpiresAt}
}

// Wait blocks until request id is decided or expires, or ctx ends. For a
// grant it claims the (single) use and audits approval.used before
// returning, so the caller runs the command right away. A denial or expiry
// is returned as a Decision with that Status (err nil). When ctx ends first
// the request stays pending (a later grant is usable with Consume).
func (s *Service) Wait(ctx context.Context, id int64) (Decision, error) {
	for {
		ch := s.watch()
		r, err := s.opts.Store.Approval(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return Decision{}, fmt.Errorf("%w: %d", ErrNotFound, id)
		}
		if err != nil {
			if ctx.Err() != nil {
				return Decision{}, ctx.Err()
			}
			return Decision{}, err
		}
		switch r.Status {
		case StatusGranted:
			return s.claim(ctx, r)
		case StatusDenied, StatusExpired:
			return decisionOf(r), nil
		}
		now := s.opts.Now()
		left := r.ExpiresAt.Sub(now)
		if left <= 0 {
			if _, err := s.Sweep(ctx); err != nil {
				return Decision{}, err
			}
			continue
		}
		t := time.NewTimer(min(left, s.opts.Poll))
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return Decision{}, ctx.Err()
		}
		t.Stop()
	}
}

func (s *Service) claim(ctx context.Context, r store.ApprovalRequest) (Decision, error) {
	now := s.opts.Now()
	got, err := s.opts.Store.ClaimApproval(ctx, r.ID, now)
	if errors.Is(err, store.ErrApprovalState) {
		if !r.UsedAt.IsZero() {
			return Decision{}, fmt.Errorf("%w: request %d", ErrUsed, r.ID)
		}
		return Decision{}, fmt.Errorf("%w: the grant of request %d has expired", ErrExpired, r.ID)
	}
	if err != nil {
		return Decision{}, err
	}
	if err := s.auditUsed(ctx, got, now); err != nil {
		return Decision{}, err
	}
	return decisionOf(got), nil
}

func (s *Service) auditUsed(ctx context.Context, r store.ApprovalRequest, now time.Time) error {
	if err := s.opts.Audit(ctx, audit.Event{Type: TypeUsed, SessionID: r.SessionID, Agent: r.Agent, Target: r.Target, Data: map[string]any{
		"approval_id": r.ID, "mode": r.Mode, "approved_by": r.DecidedBy, "used": now.UTC(), "grant_expires": r.GrantExpiresAt.UTC(),
	}}); err != nil {
		s.log.Error("auditing approval use", "err", err, "approval_id", r.ID)
		return ErrUnaudited
	}
	return nil
}

// Consume uses a grant matching k, if there is one: it returns true once
// per grant (atomically, across processes), false when no unused,
// unexpired grant matches. The use is audited (approval.used) before it
// returns true; when that fails the grant is spent and an error returned.
func (s *Service) Consume(ctx context.Context, k GrantKey) (bool, error) {
	_, ok, err := s.ConsumeGrant(ctx, k)
	return ok, err
}

// Latest returns the newest request (any status) for the command k, after
// expiring overdue requests; ErrNotFound when there is none. The gateway
// uses it to tell an agent that re-sends a command what became of its
// earlier request (still pending: refuse citing that id rather than
// opening another; denied: show the reason; a hold request whose client
// went away: say so).
func (s *Service) Latest(ctx context.Context, k GrantKey) (View, error) {
	if _, err := s.Sweep(ctx); err != nil {
		return View{}, err
	}
	r, err := s.opts.Store.LatestApproval(ctx, k.match())
	if errors.Is(err, store.ErrNotFound) {
		return View{}, ErrNotFound
	}
	if err != nil {
		return View{}, err
	}
	return ViewOf(r), nil
}

func (k GrantKey) match() store.GrantMatch {
	return store.GrantMatch{Agent: k.Agent, Target: k.Target, Fingerprint: k.Fingerprint, StatementHash: HashStatements(k.Statements), ParamsHash: k.ParamsHash}
}

// KeyOf returns the grant key of a request.
func KeyOf(r Req) GrantKey {
	return GrantKey{Agent: r.Agent, Target: r.Target, Fingerprint: r.Fingerprint, Statements: r.Statements, ParamsHash: HashParams(r.Params)}
}

// ConsumeGrant is Consume returning the used grant's decision.
func (s *Service) ConsumeGrant(ctx context.Context, k GrantKey) (Decision, bool, error) {
	now := s.opts.Now()
	r, err := s.opts.Store.ConsumeGrant(ctx, k.match(), now)
	if errors.Is(err, store.ErrNotFound) {
		return Decision{}, false, nil
	}
	if err != nil {
		return Decision{}, false, fmt.Errorf("checking approval grants: %w", err)
	}
	if err := s.auditUsed(ctx, r, now); err != nil {
		return Decision{}, false, err
	}
	return decisionOf(r), true, nil
}
