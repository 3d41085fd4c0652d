// Package gateway is the one pipeline every protocol adapter calls:
//
//  1. authenticate the agent's weir token for a target (Authenticate);
//  2. the adapter classifies its wire into command.Commands;
//  3. decide on them with the policy (Session.Decide);
//  4. hold for approval (until the approval workflow lands, review refuses);
//  5. audit BEFORE forwarding: Decide returns only once the command's record
//     is durable, and refuses the command when the store cannot take it;
//  6. mask (with the masking engine);
//  7. record the result summary (Session.Result).
//
// Adapters never decide: they call Decide and do what the Verdict says.
// The gateway also ends live sessions whose token is revoked or expires.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-gw/weir/internal/approval"
	"github.com/weir-gw/weir/internal/audit"
	"github.com/weir-gw/weir/internal/command"
	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/identity"
	"github.com/weir-gw/weir/internal/mask"
	"github.com/weir-gw/weir/internal/policy"
	"github.com/weir-gw/weir/internal/store"
)

// Gateway holds what every session shares.
type Gateway struct {
	cfg    *config.Config
	auth   *identity.Authority
	policy *policy.Engine
	audit  *audit.Writer
	store  store.Store
	log    *slog.Logger
	now    func() time.Time
	masker *mask.Masker // nil when masking is off
	// approvals holds review verdicts for a human; nil refuses them.
	approvals *approval.Service

	mu       sync.Mutex
	sessions map[string]*Session // by session id

	stop chan struct{}
	wg   sync.WaitGroup
}

// New builds a gateway. The policy is compiled here, so a bad rule stops
// the start with its position.
func New(cfg *config.Config, st store.Store, auth *identity.Authority, aw *audit.Writer, log *slog.Logger) (*Gateway, error) {
	eng, err := policy.CompileFile(cfg.Path, cfg.Policy.Rules)
	if err != nil {
		return nil, err
	}
	masker, err := newMasker(cfg)
	if err != nil {
		return nil, err
	}
	return &Gateway{cfg: cfg, auth: auth, policy: eng, audit: aw, store: st, log: log, now: time.Now, masker: masker,
		sessions: map[string]*Session{}, stop: make(chan struct{})}, nil
}

func newMasker(cfg *config.Config) (*mask.Masker, error) {
	m := cfg.Policy.Masking
	detectors := m.Detectors
	if detectors == nil {
		detectors = mask.DetectorNames() // absent: everything weir can recognise
	}
	if len(detectors) == 0 && len(m.Columns) == 0 {
		return nil, nil
	}
	var key []byte
	if m.Format == "hash" {
		var err error
		if key, err = maskKey(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	mk, err := mask.New(mask.Config{Detectors: detectors, Format: mask.Format(m.Format), HashKey: key})
	if err != nil {
		return nil, fmt.Errorf("%s: policy.masking: %w", cfg.Path, err)
	}
	return mk, nil
}

// maskKey keeps the key of the hash format in data_dir, so hashes stay
// stable across restarts (joins on masked output keep working).
func maskKey(dir string) ([]byte, error) {
	path := filepath.Join(dir, "mask.key")
	key, err := os.ReadFile(path)
	if err == nil && len(key) == 32 {
		return key, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	key = make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, key, 0o600); err != nil {
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	return key, nil
}

// ApprovalsEnabled reports whether review verdicts go to a human.
func (g *Gateway) ApprovalsEnabled() bool { return g.approvals != nil }

// SetApprovals enables just-in-time approval of review verdicts.
func (g *Gateway) SetApprovals(svc *approval.Service) { g.approvals = svc }

// Masker is the masking engine every adapter runs outgoing values
// through; nil means masking is off.
func (g *Gateway) Masker() *mask.Masker { return g.masker }

// Config returns the gateway's configuration.
func (g *Gateway) Config() *config.Config { return g.cfg }

// Start runs the watcher that ends sessions of revoked or expired tokens.
func (g *Gateway) Start(interval time.Duration) {
	g.wg.Add(1)
	go g.watch(interval)
}

// Close stops the watcher.
func (g *Gateway) Close() {
	close(g.stop)
	g.wg.Wait()
}

func (g *Gateway) watch(interval time.Duration) {
	defer g.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	// Look back a little further than the interval so a revocation written
	// by another process with a slightly different clock is not missed.
	since := g.now().Add(-time.Minute)
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
		}
		now := g.now()
		if err := g.auth.Reload(context.Background()); err != nil {
			g.log.Error("reloading signing keys", "err", err)
		}
		ids, err := g.store.RevokedSince(context.Background(), since)
		if err != nil {
			g.log.Error("checking revoked tokens", "err", err)
			continue
		}
		since = now.Add(-5 * time.Second)
		revoked := make(map[string]bool, len(ids))
		for _, id := range ids {
			revoked[id] = true
		}
		g.mu.Lock()
		var ends []*Session
		var reasons []string
		for _, s := range g.sessions {
			switch {
			case revoked[s.Claims.ID]:
				ends, reasons = append(ends, s), append(reasons, "weir token was revoked")
			case !now.Before(s.Claims.Expiry()):
				ends, reasons = append(ends, s), append(reasons, "weir token expired")
			}
		}
		g.mu.Unlock()
		for i, s := range ends {
			s.terminate(reasons[i])
		}
	}
}

// AuthRequest is what an adapter knows when a client logs in.
type AuthRequest struct {
	Protocol string
	Token    string
	// TokenID, with an empty Token, names a token whose possession the
	// adapter has already proved with a key derived from its id (Blob
	// SharedKey); its claims are read from the store.
	TokenID    string
	Target     string
	User       string // the user name the client gave, when the protocol has one
	ClientAddr string
	// Claimed is context the client says about itself (application_name…).
	Claimed map[string]string
}

// AuthError is a refused login; Public is safe to show the client.
type AuthError struct {
	Public string
	Cause  error
}

func (e *AuthError) Error() string { return e.Public }
func (e *AuthError) Unwrap() error { return e.Cause }

// Authenticate verifies the token for the target and opens a session. A
// refusal is audited and returned as *AuthError.
func (g *Gateway) Authenticate(ctx context.Context, req AuthRequest) (*Session, error) {
	return g.authenticate(ctx, req, true)
}

// authenticate verifies the token (and, with forTarget, that it and its
// agent may reach req.Target), audits a refusal, and opens the session.
func (g *Gateway) authenticate(ctx context.Context, req AuthRequest, forTarget bool) (*Session, error) {
	var claims identity.Claims
	var err error
	if req.Token == "" && req.TokenID != "" {
		claims, err = g.auth.Lookup(ctx, req.TokenID)
	} else {
		claims, err = g.auth.Verify(ctx, req.Token)
	}
	refuse := func(public string, cause error) (*Session, error) {
		ev := audit.Event{Type: audit.TypeAuthRefused, Agent: claims.Agent, Target: req.Target, Data: map[string]any{
			"protocol": req.Protocol, "client_addr": req.ClientAddr, "token_id": claimsOrPeek(claims, req.Token, req.TokenID), "user": req.User, "reason": public,
		}}
		if aerr := g.audit.Append(ctx, ev); aerr != nil {
			g.log.Error("auditing refused login", "err", aerr)
		}
		return nil, &AuthError{Public: public, Cause: cause}
	}
	if err != nil {
		if errors.Is(err, identity.ErrExpired) || errors.Is(err, identity.ErrRevoked) || errors.Is(err, identity.ErrNotYet) ||
			errors.Is(err, identity.ErrSignature) || errors.Is(err, identity.ErrMalformed) || errors.Is(err, identity.ErrUnknown) {
			return refuse(err.Error(), err)
		}
		g.log.Error("verifying token", "err", err)
		return refuse("weir could not verify the token right now", err)
	}
	if req.User != "" && req.User != claims.Agent {
		return refuse(fmt.Sprintf("the user name must be the agent the token was issued to (%q)", claims.Agent), nil)
	}
	agent, ok := g.cfg.Agent(claims.Agent)
	if !ok {
		return refuse(fmt.Sprintf("agent %q is not configured in this weir", claims.Agent), nil)
	}
	// A session bound to no target (AuthenticateAgent) never forwards
	// anything itself; its target is empty and its kind is the protocol.
	target := &config.Target{Kind: req.Protocol}
	if forTarget {
		if target, ok = g.cfg.Target(req.Target); !ok {
			return refuse(fmt.Sprintf("there is no target %q", req.Target), nil)
		}
		if !claims.AllowsTarget(target.Name) || !contains(agent.Targets, target.Name) {
			return refuse(fmt.Sprintf("this token is not valid for target %q", target.Name), nil)
		}
	}
	s := &Session{
		ID:         "s_" + identity.RandomID(10),
		g:          g,
		Claims:     claims,
		Target:     target,
		ClientAddr: req.ClientAddr,
		Protocol:   req.Protocol,
		Claimed:    maps.Clone(req.Claimed),
		Started:    g.now(),
		done:       make(chan struct{}),
		input: policy.Input{
			Agent:   policy.Agent{Name: claims.Agent},
			Context: claims.Context,
			Claimed: req.Claimed,
		},
	}
	if forTarget {
		s.input.Target = policy.Target{Name: target.Name, Kind: target.Kind, Labels: target.Labels}
	}
	err = g.audit.Append(ctx, audit.Event{Type: audit.TypeSessionStart, SessionID: s.ID, Agent: claims.Agent, Target: target.Name, Data: map[string]any{
		"protocol": req.Protocol, "client_addr": req.ClientAddr, "token_id": claims.ID, "issued_by": claims.IssuedBy,
		"context":       map[string]any{"attested": claims.Context, "claimed": req.Claimed},
		"token_expires": claims.Expiry().UTC(),
	}})
	if err != nil {
		return nil, &AuthError{Public: "weir cannot record this session (audit store unavailable); refusing", Cause: err}
	}
	g.mu.Lock()
	g.sessions[s.ID] = s
	g.mu.Unlock()
	return s, nil
}

func claimsOrPeek(c identity.Claims, token string, id ...string) string {
	if c.ID != "" {
		return c.ID
	}
	if token == "" && len(id) > 0 {
		return id[0]
	}
	return identity.TokenID(token)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Session is one agent connection (or, for HTTP, one token session).
type Session struct {
	ID         string
	Claims     identity.Claims
	Target     *config.Target
	ClientAddr string
	Protocol   string
	Claimed    map[string]string
	Started    time.Time

	g     *Gateway
	input policy.Input
	seq   atomic.Int64 // command numbers within the session

	statements atomic.Int64
	denied     atomic.Int64
	rows       atomic.Int64
	maskedMu   sync.Mutex
	masked     mask.Counts

	cacheMu sync.Mutex
	cache   map[*command.Command]*decision

	endOnce  sync.Once
	doneOnce sync.Once
	done     chan struct{}
	reason   atomic.Value // string
}

// Done is closed when the gateway ends the session (token revoked or
// expired); the adapter then closes the connection with Reason.
func (s *Session) Done() <-chan struct{} { return s.done }

// Reason says why the session was ended by the gateway.
func (s *Session) Reason() string {
	r, _ := s.reason.Load().(string)
	return r
}

func (s *Session) terminate(reason string) {
	s.doneOnce.Do(func() {
		s.reason.Store(reason)
		close(s.done)
	})
}

// Verdict is what the adapter must do with a request.
type Verdict struct {
	policy.Decision
	// Seq numbers the command within the session, linking the command's
	// audit record to its result record.
	Seq int64
	// Public is the message for the agent when the request is refused.
	Public string
	// SQLState is the PostgreSQL error code the adapter should use.
	SQLState string
}

// Allowed reports whether the adapter may forward the request.
func (v *Verdict) Allowed() bool { return v.Action == policy.Allow }

// Request is one unit the adapter is about to forward (one Query message,
// one Execute): its commands and its text for the audit log.
type Request struct {
	Commands []command.Command
	// Via describes how the request arrived ("query", "execute", "parse").
	Via string
	// Refusal, when set, is a reason the adapter already has to refuse
	// (unparseable text, unknown statement name, forbidden message type).
	// The gateway audits it and refuses; no policy rule can allow it.
	Refusal string
	// Bound, when set, gives what only an approval needs; it is consulted
	// only for a review verdict, so the common path builds nothing.
	Bound Bound
}

// Bound is the adapter's view of the request being decided, read only when
// it goes to a human.
type Bound interface {
	// Params are the bound parameters (nil element = NULL), part of what
	// an approval is bound to.
	Params() [][]byte
	// Preview estimates the blast radius for approvers (e.g. PostgreSQL's
	// EXPLAIN row estimate) without running anything.
	Preview(ctx context.Context) string
}

// commandRecord is the audit form of one command.
type commandRecord struct {
	Verb        string            `json:"verb"`
	Kind        string            `json:"kind,omitempty"`
	Text        string            `json:"text"`
	Fingerprint string            `json:"fingerprint,omitempty"`
	Reads       []string          `json:"reads,omitempty"`
	Writes      []string          `json:"writes,omitempty"`
	Functions   []string          `json:"functions,omitempty"`
	Risks       []string          `json:"risks,omitempty"`
	Method      string            `json:"method,omitempty"`
	Resource    string            `json:"resource,omitempty"`
	Operation   string            `json:"operation,omitempty"`
	Attrs       map[string]string `json:"attrs,omitempty"`
}

type commandEvent struct {
	Seq       int64           `json:"seq"`
	Via       string          `json:"via"`
	Decision  string          `json:"decision"`
	Rule      string          `json:"rule,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	EvalError string          `json:"eval_error,omitempty"`
	TokenID   string          `json:"token_id"`
	Approval  int64           `json:"approval,omitempty"`
	Commands  json.RawMessage `json:"commands"`
}

func encodeCommands(cmds []command.Command) json.RawMessage {
	recs := make([]commandRecord, len(cmds))
	for i := range cmds {
		c := &cmds[i]
		recs[i] = commandRecord{Verb: c.Verb, Kind: string(c.Kind), Text: c.Text, Fingerprint: c.Fingerprint,
			Reads: c.Reads, Writes: c.Writes, Functions: c.Functions, Risks: risks(c.Risks),
			Method: c.Method, Resource: c.Resource, Operation: c.Operation, Attrs: c.Attrs}
	}
	b, err := json.Marshal(recs)
	if err != nil {
		return json.RawMessage(`[]`) // cannot happen: plain strings and lists
	}
	return b
}

// decision is the policy's verdict on one command list, with its audit
// encoding. Everything a rule sees is fixed for a session except the
// commands, so a prepared statement executed many times is decided and
// encoded once.
type decision struct {
	cmds     []command.Command // held so the key's address cannot be reused
	decision policy.Decision
	public   string
	sqlState string
	encoded  json.RawMessage
}

const maxDecided = 256

func (s *Session) decided(cmds []command.Command) *decision {
	var key *command.Command
	if len(cmds) > 0 {
		// Keyed by the slice's identity: adapters hand the same slice for
		// every execution of a prepared statement (and the classifier's
		// cache the same slice for the same text).
		key = &cmds[0]
		s.cacheMu.Lock()
		d, ok := s.cache[key]
		s.cacheMu.Unlock()
		if ok && len(d.cmds) == len(cmds) {
			return d
		}
	}
	d := &decision{cmds: cmds, decision: s.g.policy.Decide(&s.input, cmds), encoded: encodeCommands(cmds)}
	d.public, d.sqlState = publicMessage(&d.decision, cmds)
	if key != nil {
		s.cacheMu.Lock()
		if s.cache == nil || len(s.cache) >= maxDecided {
			s.cache = make(map[*command.Command]*decision)
		}
		s.cache[key] = d
		s.cacheMu.Unlock()
	}
	return d
}

// Precheck evaluates the policy on commands without recording anything.
// Adapters use it where nothing runs yet (a Parse); they call Decide when
// the commands are about to run or are to be refused, so every execution
// and every refusal is audited.
func (s *Session) Precheck(cmds []command.Command) Verdict {
	if s.Reason() != "" {
		return Verdict{Decision: policy.Decision{Action: policy.Deny, Rule: "weir"}}
	}
	return Verdict{Decision: s.decided(cmds).decision}
}

// Decide decides on a request and makes its audit record durable. Only an
// allowed verdict with a nil error may be forwarded.
func (s *Session) Decide(ctx context.Context, req Request) Verdict {
	v := Verdict{Seq: s.seq.Add(1)}
	switch {
	case req.Refusal != "":
		v.Decision = policy.Decision{Action: policy.Deny, Rule: "weir", Command: 0}
		v.Public = req.Refusal
		v.SQLState = "42501"
	case s.Reason() != "":
		v.Decision = policy.Decision{Action: policy.Deny, Rule: "weir", Command: 0}
		v.Public = "this session has ended: " + s.Reason()
		v.SQLState = "57P01"
	}
	var encoded json.RawMessage
	if req.Refusal == "" && s.Reason() == "" {
		e := s.decided(req.Commands)
		v.Decision, v.Public, v.SQLState, encoded = e.decision, e.public, e.sqlState, e.encoded
	} else {
		encoded = encodeCommands(req.Commands)
	}
	approvalID := int64(0)
	if v.Action == policy.Review && s.g.approvals != nil {
		approvalID = s.approve(ctx, &v, &req)
	}
	ev := commandEvent{Seq: v.Seq, Via: req.Via, Decision: string(v.Action), Rule: v.Rule, EvalError: v.EvalError, TokenID: s.Claims.ID,
		Commands: encoded, Approval: approvalID}
	if !v.Allowed() {
		ev.Reason = v.Public
	}
	s.statements.Add(int64(len(req.Commands)))
	if err := s.g.audit.Append(ctx, audit.Event{Type: audit.TypeCommand, SessionID: s.ID, Agent: s.Claims.Agent, Target: s.Target.Name, Data: &ev}); err != nil {
		s.g.log.Error("audit append failed; refusing command", "session", s.ID, "err", err)
		v.Decision = policy.Decision{Action: policy.Deny, Rule: "weir", Command: 0}
		v.Public = "weir cannot record this command in its audit log, so it was not run; try again later or contact the weir operator"
		v.SQLState = "58000"
	}
	if !v.Allowed() {
		s.denied.Add(1)
	}
	return v
}

// approve takes a review verdict through just-in-time approval: a grant
// already given for exactly this command is used; otherwise a request is
// opened, and in hold mode the command waits for the decision. v becomes
// allow only on a granted approval. It returns the approval request id.
func (s *Session) approve(ctx context.Context, v *Verdict, req *Request) int64 {
	svc := s.g.approvals
	granted := func(id int64) int64 {
		v.Action, v.Public = policy.Allow, ""
		v.Rule += " (approved)"
		return id
	}
	var params [][]byte
	if req.Bound != nil {
		params = req.Bound.Params()
	}
	key := approval.GrantKey{Agent: s.Claims.Agent, Target: s.Target.Name, ParamsHash: approval.HashParams(params)}
	var fps []string
	for i := range req.Commands {
		key.Statements = append(key.Statements, req.Commands[i].Text)
		fps = append(fps, req.Commands[i].Fingerprint)
	}
	key.Fingerprint = strings.Join(fps, ";")
	fail := func(err error) int64 {
		s.g.log.Error("approval workflow failed; refusing", "session", s.ID, "err", err)
		v.Public = "weir: this command needs approval, but the approval workflow is unavailable right now, so it was not run; try again later"
		return 0
	}
	d, ok, err := svc.ConsumeGrant(ctx, key)
	if err != nil {
		return fail(err)
	}
	if ok {
		return granted(d.ID)
	}
	mode := s.g.cfg.RuleMode(v.Rule)
	if mode == "async" {
		if view, err := svc.Latest(ctx, key); err == nil && view.Status == "pending" {
			v.Public = fmt.Sprintf("weir: this command is waiting for approval (request %d, rule %q). Send it again unchanged once an approver has run `weir approvals approve %d`; do not retry before.", view.ID, v.Rule, view.ID)
			return view.ID
		}
	}
	preview := ""
	if req.Bound != nil {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		preview = req.Bound.Preview(pctx)
		cancel()
	}
	p, err := svc.Request(ctx, approval.Req{Agent: s.Claims.Agent, Target: s.Target.Name, SessionID: s.ID, TokenID: s.Claims.ID,
		Context: s.Claims.Context, Statements: key.Statements, Fingerprint: key.Fingerprint, Params: params, Rule: v.Rule, Mode: mode, Preview: preview})
	if err != nil {
		return fail(err)
	}
	if mode == "async" {
		v.Public = fmt.Sprintf("weir: this command needs a human's approval under policy rule %q; it was not run. Approval request %d was opened; once an approver runs `weir approvals approve %d`, send exactly the same command again (within its grant time) and it will run once.", v.Rule, p.ID, p.ID)
		return p.ID
	}
	dec, err := svc.Wait(ctx, p.ID)
	switch {
	case err != nil:
		v.Public = fmt.Sprintf("weir: stopped waiting for approval request %d (%v); it stays open: if it is approved, send the same command again to run it once.", p.ID, err)
	case dec.Status == "granted":
		return granted(p.ID)
	case dec.Status == "denied":
		v.Public = fmt.Sprintf("weir: approval request %d was denied by %s: %s. The command was not run.", p.ID, dec.By, dec.Reason)
	default:
		v.Public = fmt.Sprintf("weir: approval request %d was not decided within %s, so the command was not run; ask an approver (weir approvals approve %d) and send it again.", p.ID, s.g.cfg.Approvals.Timeout, p.ID)
	}
	return p.ID
}

func joinRisks(rs []command.Risk) string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(r))
	}
	return b.String()
}

func risks(rs []command.Risk) []string {
	if len(rs) == 0 {
		return nil
	}
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

// publicMessage writes the refusal for the agent that will read it: which
// rule, why, and what to do instead.
func publicMessage(d *policy.Decision, cmds []command.Command) (string, string) {
	if d.Action == policy.Allow {
		return "", ""
	}
	what := "this request"
	if d.Command >= 0 && d.Command < len(cmds) {
		c := &cmds[d.Command]
		what = c.Verb
		if len(cmds) > 1 {
			what = fmt.Sprintf("statement %d of %d (%s)", d.Command+1, len(cmds), c.Verb)
		}
		// Say what weir saw, so the agent knows which part to change.
		if len(c.Risks) > 0 {
			what += fmt.Sprintf(" [%s]", joinRisks(c.Risks))
		}
	}
	var msg string
	switch d.Action {
	case policy.Review:
		msg = fmt.Sprintf("weir: %s needs a human's approval under policy rule %q", what, d.Rule)
		if d.Message != "" {
			msg += ": " + d.Message
		}
		msg += ". Approval workflow is not enabled on this weir, so it was not run; ask an operator to run it or to change the policy."
	default:
		if d.Rule == policy.DefaultRule {
			msg = fmt.Sprintf("weir: %s is not allowed: no policy rule allows it (default deny).", what)
		} else {
			msg = fmt.Sprintf("weir: %s is denied by policy rule %q", what, d.Rule)
			if d.Message != "" {
				msg += ": " + d.Message
			} else {
				msg += "."
			}
		}
		msg += " Nothing in this request was run. Do not retry it unchanged; use a command the policy allows, or ask an operator for access."
	}
	if d.EvalError != "" {
		msg += " (The rule's condition could not be evaluated, so the stricter verdict applies.)"
	}
	return msg, "42501"
}

// Result is the outcome of a forwarded request, as the adapter observed it.
type Result struct {
	Seq      int64
	Rows     int64
	Duration time.Duration
	// Error is the server's error code, if it failed.
	Error string
	// Skipped is set when the server never ran it (an earlier error in the
	// same pipeline).
	Skipped bool
	// Masked counts the values masked in its response, per detector.
	Masked mask.Counts
	// MaskedColumns counts values masked by column rules, per rule
	// ("column:customers.email"); they are also in Masked's "column".
	MaskedColumns map[string]int
	// Columns and Rows are what the agent saw (after masking), as far as
	// the session's recording budget allows; RowsTruncated says rows were
	// left out.
	Columns       []string
	Seen          [][]*string
	RowsTruncated bool
}

type resultEvent struct {
	Seq        int64          `json:"seq"`
	Rows       int64          `json:"rows"`
	DurationMS float64        `json:"duration_ms"`
	Error      string         `json:"error,omitempty"`
	Skipped    bool           `json:"skipped,omitempty"`
	Masked     map[string]int `json:"masked,omitempty"`
	Columns    []string       `json:"columns,omitempty"`
	Seen       [][]*string    `json:"rows_seen,omitempty"`
	Truncated  bool           `json:"rows_truncated,omitempty"`
}

// Result records a forwarded request's outcome. It does not wait for the
// record to be durable: the command was already recorded before it ran.
func (s *Session) Result(r Result) {
	s.rows.Add(r.Rows)
	ev := &resultEvent{Seq: r.Seq, Rows: r.Rows, DurationMS: float64(r.Duration.Microseconds()) / 1000, Error: r.Error, Skipped: r.Skipped,
		Columns: r.Columns, Seen: r.Seen, Truncated: r.RowsTruncated}
	if !r.Masked.IsZero() {
		ev.Masked = r.Masked.Map()
		for k, n := range r.MaskedColumns {
			ev.Masked[k] = n
		}
		s.maskedMu.Lock()
		s.masked.Add(r.Masked)
		s.maskedMu.Unlock()
	}
	s.g.audit.Enqueue(audit.Event{Type: audit.TypeResult, SessionID: s.ID, Agent: s.Claims.Agent, Target: s.Target.Name, Data: ev})
}

func (s *Session) maskedTotals() map[string]int {
	s.maskedMu.Lock()
	defer s.maskedMu.Unlock()
	if s.masked.IsZero() {
		return nil
	}
	return s.masked.Map()
}

// Note records a session-level event (cancel request, protocol error).
func (s *Session) Note(kind string, data map[string]any) {
	data["event"] = kind
	s.g.audit.Enqueue(audit.Event{Type: "session.note", SessionID: s.ID, Agent: s.Claims.Agent, Target: s.Target.Name, Data: data})
}

// End records the end of the session with its totals.
func (s *Session) End(reason string) {
	s.endOnce.Do(func() {
		s.g.mu.Lock()
		delete(s.g.sessions, s.ID)
		s.g.mu.Unlock()
		if r := s.Reason(); r != "" {
			reason = r
		}
		err := s.g.audit.Append(context.Background(), audit.Event{Type: audit.TypeSessionEnd, SessionID: s.ID, Agent: s.Claims.Agent, Target: s.Target.Name, Data: map[string]any{
			"reason": reason, "statements": s.statements.Load(), "denied": s.denied.Load(), "rows": s.rows.Load(), "masked": s.maskedTotals(),
			"duration_ms": s.g.now().Sub(s.Started).Milliseconds(),
		}})
		if err != nil {
			s.g.log.Error("auditing session end", "session", s.ID, "err", err)
		}
	})
}

// RecordBudget is how many bytes of result rows a new session may keep
// in the audit log.
func (g *Gateway) RecordBudget() int { return *g.cfg.Audit.RecordBytes }

// Sessions returns the number of live sessions.
func (g *Gateway) Sessions() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.sessions)
}
