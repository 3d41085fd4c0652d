package mcp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/weir-gw/weir/internal/approval"
	"github.com/weir-gw/weir/internal/command"
	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/gateway"
	"github.com/weir-gw/weir/internal/pgsql"
)

type requestApprovalIn struct {
	Target        string `json:"target" jsonschema:"the target the statement will run on"`
	SQL           string `json:"sql" jsonschema:"exactly the SQL you will send to query afterwards"`
	Params        []any  `json:"params,omitempty" jsonschema:"exactly the params you will send to query afterwards"`
	Justification string `json:"justification" jsonschema:"why this statement is needed, for the person who decides (the task, the ticket, the expected effect)"`
}

// ApprovalAnswer is request_approval's structured content.
type ApprovalAnswer struct {
	// Status is pending, approved (an unused grant exists), not_needed
	// (the policy allows it now), denied (the policy denies it; it cannot
	// be approved) or refused.
	Status            string `json:"status"`
	ApprovalRequestID int64  `json:"approval_request_id,omitempty"`
	Rule              string `json:"rule,omitempty"`
	Existing          bool   `json:"existing,omitempty"`
	Message           string `json:"message"`
	NextStep          string `json:"next_step"`
}

const requestApprovalDescription = `Ask a person to approve one exact SQL statement before running it, when the policy sends it to review (list_targets shows which rules need approval, and a refused query says so). Give the target, exactly the sql and params you will run, and a justification an approver can judge (what task, what effect, how many rows).
Returns an approval request id at once; approvers see it with the other held requests. Follow it with approval_status; once approved, call query with exactly the same target, sql and params: it runs once, within the grant's lifetime. Changing the text or a parameter needs a new approval. A statement the policy denies cannot be approved; one it allows needs no approval.`

type approvalStatusIn struct {
	ID          int64 `json:"id" jsonschema:"the approval request id"`
	WaitSeconds int   `json:"wait_seconds,omitempty" jsonschema:"wait up to this many seconds (at most 50) for a decision while the request is pending; 0 answers at once"`
}

// ApprovalState is approval_status' structured content.
type ApprovalState struct {
	ID int64 `json:"id"`
	// Status is pending, approved, denied or expired.
	Status         string    `json:"status"`
	Target         string    `json:"target"`
	Rule           string    `json:"rule"`
	Statements     []string  `json:"statements"`
	DecidedBy      string    `json:"decided_by,omitempty"`
	Reason         string    `json:"reason,omitempty"`
	ExpiresAt      time.Time `json:"expires_at"`
	GrantExpiresAt time.Time `json:"grant_expires_at,omitzero"`
	Used           bool      `json:"used,omitempty"`
	NextStep       string    `json:"next_step"`
}

const approvalStatusDescription = `Check an approval request (from request_approval or from a refused query): pending, approved, denied (with the approver's reason) or expired. With wait_seconds it waits for the decision. Once approved, run the same statement unchanged with query; it runs once.`

const maxWait = 50 * time.Second

func registerApprovals(s *Server) {
	AddTool(s, &mcp.Tool{Name: "request_approval", Title: "Ask a person to approve a statement", Description: requestApprovalDescription,
		Annotations: &mcp.ToolAnnotations{OpenWorldHint: ptr(false)}}, s.requestApproval)
	AddTool(s, &mcp.Tool{Name: "approval_status", Title: "Follow an approval request", Description: approvalStatusDescription,
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: ptr(false)}}, s.approvalStatus)
}

func (s *Server) requestApproval(ctx context.Context, a *AgentSession, in requestApprovalIn) (*mcp.CallToolResult, any) {
	t, fail := s.sqlTarget(a, in.Target)
	if fail != nil {
		a.Note("request_approval", map[string]any{"target": in.Target, "outcome": "refused", "reason": fail.Error})
		return failure(fail)
	}
	params, err := textParams(in.Params)
	if err != nil {
		return failure(&ToolFailure{Error: err.Error(), NextStep: "fix params and call request_approval again"})
	}
	req := gateway.AgentApproval{Target: t.Name, Params: params, Justification: in.Justification}
	req.Commands, req.Refusal = s.classify(in.SQL)
	if in.Params != nil && len(req.Commands) > 1 {
		req.Refusal = "a statement with params must be a single statement"
	}
	ticket, err := a.Control.RequestApproval(ctx, req)
	if err != nil {
		return failure(&ToolFailure{Error: "weir: " + err.Error(), NextStep: "try again later"})
	}
	ans := &ApprovalAnswer{Status: ticket.Status, ApprovalRequestID: ticket.ID, Rule: ticket.Rule, Existing: ticket.Existing, Message: ticket.Public}
	switch ticket.Status {
	case gateway.TicketPending:
		ans.NextStep = fmt.Sprintf("wait for a person: call approval_status {\"id\": %d, \"wait_seconds\": 30}; once approved, call query with exactly the same target, sql and params", ticket.ID)
	case gateway.TicketGranted:
		ans.Status = "approved"
		ans.NextStep = "call query with exactly the same target, sql and params now"
	case gateway.TicketNotNeeded:
		ans.NextStep = "call query with this statement"
	case gateway.TicketDenied:
		ans.NextStep = "do not ask again: change the statement so the policy allows it, or tell the user you lack access"
	default:
		ans.NextStep = "fix the request as the message says"
	}
	a.Note("request_approval", map[string]any{"target": t.Name, "outcome": ans.Status, "approval_id": ticket.ID, "rule": ticket.Rule})
	res := textResult(ans.Message + "\nNext step: " + ans.NextStep)
	res.IsError = ticket.Status == gateway.TicketDenied || ticket.Status == gateway.TicketRefused
	return res, ans
}

// classify classifies SQL as the PostgreSQL front end will, so the grant
// key matches what query later sends. What weir could not decide on is a
// refusal, as there.
func (s *Server) classify(sql string) ([]command.Command, string) {
	cmds, err := s.classifier.Classify(sql)
	if err != nil {
		var pe *pgsql.ParseError
		var ce *pgsql.ClassifyError
		switch {
		case errors.As(err, &pe):
			return nil, "weir could not parse this SQL (" + pe.Message + ")"
		case errors.As(err, &ce):
			return nil, "weir cannot classify this statement (" + ce.Reason + ")"
		default:
			return nil, "weir cannot classify this statement"
		}
	}
	for i := range cmds {
		switch cmds[i].Verb {
		case "EXECUTE", "FETCH", "MOVE":
			// What these run depends on the connection's state (a prepared
			// statement, a cursor), which an approval ahead cannot see.
			return nil, cmds[i].Verb + " depends on what was prepared in the session; ask approval for the statement itself"
		}
	}
	return slices.Clone(cmds), ""
}

func (s *Server) approvalStatus(ctx context.Context, a *AgentSession, in approvalStatusIn) (*mcp.CallToolResult, any) {
	svc := s.opts.Approvals
	if svc == nil {
		return failure(&ToolFailure{Error: "weir: approvals are not enabled on this weir", NextStep: "ask an operator"})
	}
	notFound := &ToolFailure{Error: fmt.Sprintf("weir: you have no approval request %d", in.ID), NextStep: "use the id request_approval or the refused query gave"}
	wait := min(time.Duration(max(in.WaitSeconds, 0))*time.Second, maxWait)
	deadline := time.Now().Add(wait)
	var v approval.View
	for {
		var err error
		v, err = svc.Get(ctx, in.ID)
		if errors.Is(err, approval.ErrNotFound) || err == nil && v.Agent != a.Claims.Agent {
			// Another agent's requests are not this agent's business: the
			// same answer as for an id that does not exist.
			a.Note("approval_status", map[string]any{"approval_id": in.ID, "outcome": "not_found"})
			return failure(notFound)
		}
		if err != nil {
			return failure(&ToolFailure{Error: "weir: the approval workflow is unavailable right now", NextStep: "try again later"})
		}
		if v.Status != approval.StatusPending || !time.Now().Before(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return failure(&ToolFailure{Error: "weir: stopped waiting", NextStep: "call approval_status again"})
		case <-time.After(min(250*time.Millisecond, time.Until(deadline))):
		}
	}
	st := &ApprovalState{ID: v.ID, Status: v.Status, Target: v.Target, Rule: v.Rule, Statements: v.Statements, DecidedBy: v.DecidedBy,
		Reason: v.Reason, ExpiresAt: v.ExpiresAt, GrantExpiresAt: v.GrantExpiresAt, Used: !v.UsedAt.IsZero()}
	switch v.Status {
	case approval.StatusPending:
		st.NextStep = fmt.Sprintf("still waiting for a person (until %s); call approval_status again later, do not run the statement yet", v.ExpiresAt.Format(time.RFC3339))
	case approval.StatusGranted:
		st.Status = "approved"
		switch {
		case st.Used:
			st.NextStep = "the approval was already used (it runs once); " + s.askAgain(v.Target) + " if it must run again"
		case !time.Now().Before(v.GrantExpiresAt):
			st.Status = "expired"
			st.Reason = "the approval was not used before it expired"
			st.NextStep = s.askAgain(v.Target)
		default:
			st.NextStep = fmt.Sprintf("%s on %s (before %s); it runs once", s.runAgain(v.Target), v.Target, v.GrantExpiresAt.Format(time.RFC3339))
		}
	case approval.StatusDenied:
		st.NextStep = "do not run it; the approver's reason says why. Change the approach, or ask the user"
	default:
		st.NextStep = "no one decided in time; " + s.askAgain(v.Target) + " if it is still needed"
	}
	text := fmt.Sprintf("approval request %d: %s (rule %q, target %s)", st.ID, st.Status, st.Rule, st.Target)
	if st.DecidedBy != "" {
		text += " by " + st.DecidedBy
	}
	if st.Reason != "" {
		text += ": " + st.Reason
	}
	a.Note("approval_status", map[string]any{"approval_id": in.ID, "outcome": st.Status})
	return textResult(text + "\nNext step: " + st.NextStep), st
}

// targetKind is the kind of a configured target ("" if unknown): Blob and
// Azure approvals are opened by a refused blob or azure_request call and
// used by repeating it; request_approval and query are SQL only.
func (s *Server) targetKind(target string) string {
	if t, ok := s.opts.Gateway.Config().Target(target); ok {
		return t.Kind
	}
	return ""
}

func (s *Server) askAgain(target string) string {
	switch s.targetKind(target) {
	case config.KindAzureBlob:
		return "send the same blob call again to open a new approval request"
	case config.KindAzureARM, config.KindAzureKeyVault, config.KindAzureFunctions:
		return "send the same azure_request again to open a new approval request"
	}
	return "ask again with request_approval"
}

func (s *Server) runAgain(target string) string {
	switch s.targetKind(target) {
	case config.KindAzureBlob:
		return "call the same blob tool now with exactly the same arguments and content"
	case config.KindAzureARM, config.KindAzureKeyVault, config.KindAzureFunctions:
		return "call azure_request now with exactly the same target, method, path, body and reveal"
	}
	return "call query now with exactly the same sql and params"
}
