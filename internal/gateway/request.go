package gateway

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/weir-gw/weir/internal/approval"
	"github.com/weir-gw/weir/internal/audit"
	"github.com/weir-gw/weir/internal/command"
	"github.com/weir-gw/weir/internal/policy"
)

// AuthenticateAgent opens a session for an agent that is bound to no single
// target: the session of a front end whose requests each name their target
// (the MCP server, where one client session lists targets, asks for
// approvals and queries several targets). It is audited like any session
// (session.start, refusals as auth.refused) and ends like one when the
// token is revoked or expires. Its target is empty, so it never forwards
// anything itself: commands for a target run in that target's own session
// (for SQL, the PostgreSQL front end's); this one carries notes and
// agent-requested approvals (RequestApproval).
func (g *Gateway) AuthenticateAgent(ctx context.Context, req AuthRequest) (*Session, error) {
	req.Target, req.User = "", ""
	return g.authenticate(ctx, req, false)
}

// AgentApproval is an approval an agent asks for before it runs a command
// (MCP's request_approval), so that a person can decide while the agent
// does other work. The grant is bound exactly as a held command's would be:
// agent, target, the statements' text and fingerprint, and the parameters.
type AgentApproval struct {
	Target string
	// Commands are the classified statements, exactly as the target's
	// adapter will classify them when the agent runs them.
	Commands []command.Command
	// Params are the bound parameters as the adapter will see them (nil
	// element = NULL).
	Params [][]byte
	// Justification is the agent's reason, shown to approvers. It is
	// claimed, not attested.
	Justification string
	// Refusal is the adapter's own reason to refuse (unparseable text);
	// nothing with a refusal can be approved.
	Refusal string
}

// Statuses of an ApprovalTicket.
const (
	TicketPending   = "pending"    // a request is open (new or existing)
	TicketGranted   = "granted"    // an unused grant for exactly this command exists
	TicketNotNeeded = "not_needed" // the policy allows it now: just run it
	TicketDenied    = "denied"     // the policy denies it: no approval can allow it
	TicketRefused   = "refused"    // weir cannot decide on it (unparseable, unknown target)
)

// ApprovalTicket is the answer to an AgentApproval.
type ApprovalTicket struct {
	Status string
	// ID is the approval request, when one exists.
	ID   int64
	Rule string
	// Existing says the request was opened earlier (not a new one).
	Existing bool
	// Public explains the status to the agent.
	Public string
}

// maxJustification bounds what an agent may put in front of approvers.
const maxJustification = 2000

// RequestApproval opens an approval request for exactly the command an
// agent describes, if the policy sends it to review. The request is async:
// the agent is not waiting on a connection, so it expires after
// approvals.async_timeout, and the grant is used when the agent sends the
// same command to the target (the adapter's Decide consumes it). The
// decision is audited as a command (via "request_approval") in this
// session before the request id is returned.
func (s *Session) RequestApproval(ctx context.Context, a AgentApproval) (ApprovalTicket, error) {
	if r := s.Reason(); r != "" {
		return ApprovalTicket{}, fmt.Errorf("this session has ended: %s", r)
	}
	agent, ok := s.g.cfg.Agent(s.Claims.Agent)
	target, tok := s.g.cfg.Target(a.Target)
	if !ok || !tok || !s.Claims.AllowsTarget(target.Name) || !contains(agent.Targets, target.Name) {
		return ApprovalTicket{Status: TicketRefused, Public: fmt.Sprintf("weir: target %q is not one of this token's targets; call list_targets to see them", a.Target)}, nil
	}
	if a.Refusal != "" {
		return ApprovalTicket{Status: TicketRefused, Public: "weir: " + a.Refusal + "; it cannot be approved either"}, nil
	}
	if len(a.Commands) == 0 {
		return ApprovalTicket{Status: TicketRefused, Public: "weir: there is no statement to approve"}, nil
	}
	just := strings.TrimSpace(a.Justification)
	if just == "" {
		return ApprovalTicket{Status: TicketRefused, Public: "weir: a justification is required: say what the command is for, so an approver can decide"}, nil
	}
	if len(just) > maxJustification {
		return ApprovalTicket{Status: TicketRefused, Public: fmt.Sprintf("weir: the justification is longer than %d bytes", maxJustification)}, nil
	}
	in := s.input
	in.Target = policy.Target{Name: target.Name, Kind: target.Kind, Labels: target.Labels}
	d := s.g.policy.Decide(&in, a.Commands)
	public, _ := publicMessage(&d, a.Commands)
	t := ApprovalTicket{Rule: d.Rule}
	switch d.Action {
	case policy.Allow:
		t.Status, t.Public = TicketNotNeeded, fmt.Sprintf("weir: no approval is needed: policy rule %q allows this command now; run it.", d.Rule)
		return t, s.recordTicket(ctx, target.Name, &d, a.Commands, &t)
	case policy.Deny:
		t.Status, t.Public = TicketDenied, public+" A denied command cannot be approved."
		return t, s.recordTicket(ctx, target.Name, &d, a.Commands, &t)
	}
	svc := s.g.approvals
	if svc == nil {
		t.Status, t.Public = TicketRefused, public
		return t, s.recordTicket(ctx, target.Name, &d, a.Commands, &t)
	}
	key := approval.GrantKey{Agent: s.Claims.Agent, Target: target.Name, ParamsHash: approval.HashParams(a.Params)}
	fps := make([]string, 0, len(a.Commands))
	for i := range a.Commands {
		key.Statements = append(key.Statements, a.Commands[i].Text)
		fps = append(fps, a.Commands[i].Fingerprint)
	}
	key.Fingerprint = strings.Join(fps, ";")
	latest, err := svc.Latest(ctx, key)
	switch {
	case err == nil && latest.Status == approval.StatusPending:
		t.Status, t.ID, t.Existing = TicketPending, latest.ID, true
		t.Public = fmt.Sprintf("weir: approval request %d for exactly this command is already waiting for an approver (rule %q); do not ask again. Check it with approval_status.", latest.ID, d.Rule)
		return t, s.recordTicket(ctx, target.Name, &d, a.Commands, &t)
	case err == nil && latest.Status == approval.StatusGranted && latest.UsedAt.IsZero() && s.g.now().Before(latest.GrantExpiresAt):
		t.Status, t.ID, t.Existing = TicketGranted, latest.ID, true
		t.Public = fmt.Sprintf("weir: approval request %d for exactly this command was granted and not used yet; run it unchanged before %s.", latest.ID, latest.GrantExpiresAt.UTC().Format("15:04:05 MST"))
		return t, s.recordTicket(ctx, target.Name, &d, a.Commands, &t)
	case err != nil && !errors.Is(err, approval.ErrNotFound):
		return ApprovalTicket{}, fmt.Errorf("approval workflow unavailable: %w", err)
	}
	rctx := maps.Clone(s.Claims.Context)
	if rctx == nil {
		rctx = map[string]string{}
	}
	rctx["agent_justification"] = just
	for k, v := range s.Claimed {
		rctx["claimed_"+k] = v
	}
	p, err := svc.Request(ctx, approval.Req{Agent: s.Claims.Agent, Target: target.Name, SessionID: s.ID, TokenID: s.Claims.ID,
		Context: rctx, Statements: key.Statements, Fingerprint: key.Fingerprint, Params: a.Params, Rule: d.Rule, Mode: approval.ModeAsync,
		Preview: "requested ahead of running by the agent (no estimate)"})
	if err != nil {
		return ApprovalTicket{}, fmt.Errorf("approval workflow unavailable: %w", err)
	}
	t.Status, t.ID = TicketPending, p.ID
	t.Public = fmt.Sprintf("weir: approval request %d was opened under policy rule %q. An approver decides with `weir approvals approve %d`; once approved, send exactly the same command to %s (same text, same parameters) before the grant expires and it runs once.", p.ID, d.Rule, p.ID, target.Name)
	return t, s.recordTicket(ctx, target.Name, &d, a.Commands, &t)
}

// recordTicket audits the decision behind a ticket durably, as a command
// of this session, so replay shows what the agent asked approval for.
func (s *Session) recordTicket(ctx context.Context, target string, d *policy.Decision, cmds []command.Command, t *ApprovalTicket) error {
	ev := commandEvent{Seq: s.seq.Add(1), Via: "request_approval", Decision: string(d.Action), Rule: d.Rule, EvalError: d.EvalError,
		TokenID: s.Claims.ID, Commands: encodeCommands(cmds), Approval: t.ID, Reason: t.Public}
	s.statements.Add(int64(len(cmds)))
	if err := s.g.audit.Append(ctx, audit.Event{Type: audit.TypeCommand, SessionID: s.ID, Agent: s.Claims.Agent, Target: target, Data: &ev}); err != nil {
		s.g.log.Error("audit append failed", "session", s.ID, "err", err)
		return errors.New("weir cannot record this in its audit log right now; try again later")
	}
	return nil
}

// Probe evaluates the policy on cmds as they would be decided on target in
// this session, recording nothing and authorizing nothing: it tells an
// agent what the policy does with typical commands (MCP's list_targets)
// with the real rules, not a reading of them. ok is false when target is
// not one of the token's.
func (s *Session) Probe(target string, cmds []command.Command) (d policy.Decision, ok bool) {
	agent, aok := s.g.cfg.Agent(s.Claims.Agent)
	t, tok := s.g.cfg.Target(target)
	if !aok || !tok || !s.Claims.AllowsTarget(t.Name) || !contains(agent.Targets, t.Name) {
		return policy.Decision{}, false
	}
	in := s.input
	in.Target = policy.Target{Name: t.Name, Kind: t.Kind, Labels: t.Labels}
	return s.g.policy.Decide(&in, cmds), true
}
