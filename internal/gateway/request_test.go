package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/weir-gw/weir/internal/approval"
	"github.com/weir-gw/weir/internal/command"
	"github.com/weir-gw/weir/internal/identity"
)

func TestAuthenticateAgent(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	tok, c, _ := w.auth.Issue(ctx, identity.IssueRequest{Agent: "ci-bot", Targets: []string{"shop"}, TTL: time.Hour})
	s, err := w.g.AuthenticateAgent(ctx, AuthRequest{Protocol: "mcp", Token: tok, Claimed: map[string]string{"mcp_client_name": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Claims.ID != c.ID || s.Target.Name != "" || s.Protocol != "mcp" || s.Claimed["mcp_client_name"] != "x" {
		t.Errorf("session: %+v", s)
	}
	s.End("done")
	for _, tc := range []struct{ name, token, want string }{
		{"garbage", "nope", "malformed"},
		{"empty", "", "malformed"},
	} {
		if _, err := w.g.AuthenticateAgent(ctx, AuthRequest{Protocol: "mcp", Token: tc.token}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	w.st.RevokeToken(ctx, c.ID, "test", time.Now())
	if _, err := w.g.AuthenticateAgent(ctx, AuthRequest{Protocol: "mcp", Token: tok}); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("revoked: %v", err)
	}
}

func TestRequestApproval(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	svc, err := approval.New(approval.Options{Store: w.st, Audit: w.g.audit.Append})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, _ := w.auth.Issue(ctx, identity.IssueRequest{Agent: "ci-bot", Targets: []string{"shop"}, TTL: time.Hour, Context: map[string]string{"ticket": "T-1"}})
	s, err := w.g.AuthenticateAgent(ctx, AuthRequest{Protocol: "mcp", Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	write := []command.Command{{Protocol: "postgres", Verb: "UPDATE", Kind: command.KindWrite, Text: "UPDATE t SET a = $1", Fingerprint: "fp1", Writes: []string{"t"}}}
	read := []command.Command{{Protocol: "postgres", Verb: "SELECT", Kind: command.KindRead, Text: "SELECT 1", Fingerprint: "fp2"}}
	ddl := []command.Command{{Protocol: "postgres", Verb: "DROP TABLE", Kind: command.KindDDL, Text: "DROP TABLE t", Fingerprint: "fp3"}}
	just := "needed for T-1"

	// Without the approval workflow a review cannot be requested.
	tk, err := s.RequestApproval(ctx, AgentApproval{Target: "shop", Commands: write, Justification: just})
	if err != nil || tk.Status != TicketRefused || tk.Rule != "review-writes" {
		t.Errorf("no approvals: %+v %v", tk, err)
	}
	w.g.SetApprovals(svc)
	// Async, so a second Decide below is refused at once instead of held.
	w.g.cfg.Policy.Rules[1].Mode = "async"
	for _, tc := range []struct {
		name   string
		req    AgentApproval
		status string
		rule   string
	}{
		{"allowed needs none", AgentApproval{Target: "shop", Commands: read, Justification: just}, TicketNotNeeded, "reads"},
		{"denied cannot be approved", AgentApproval{Target: "shop", Commands: ddl, Justification: just}, TicketDenied, "no-ddl"},
		{"unknown target", AgentApproval{Target: "nope", Commands: write, Justification: just}, TicketRefused, ""},
		{"target not in token", AgentApproval{Target: "other", Commands: write, Justification: just}, TicketRefused, ""},
		{"no justification", AgentApproval{Target: "shop", Commands: write, Justification: " "}, TicketRefused, ""},
		{"too long", AgentApproval{Target: "shop", Commands: write, Justification: strings.Repeat("x", maxJustification+1)}, TicketRefused, ""},
		{"adapter refusal", AgentApproval{Target: "shop", Refusal: "unparseable", Justification: just}, TicketRefused, ""},
		{"nothing", AgentApproval{Target: "shop", Justification: just}, TicketRefused, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tk, err := s.RequestApproval(ctx, tc.req)
			if err != nil || tk.Status != tc.status || tk.Rule != tc.rule || tk.ID != 0 || tk.Public == "" {
				t.Errorf("got %+v %v; want %s %q", tk, err, tc.status, tc.rule)
			}
		})
	}
	params := [][]byte{[]byte("42")}
	tk, err = s.RequestApproval(ctx, AgentApproval{Target: "shop", Commands: write, Params: params, Justification: just})
	if err != nil || tk.Status != TicketPending || tk.ID == 0 || tk.Existing {
		t.Fatalf("review: %+v %v", tk, err)
	}
	v, _ := svc.Get(ctx, tk.ID)
	if v.Mode != approval.ModeAsync || v.Context["agent_justification"] != just || v.Context["ticket"] != "T-1" || v.SessionID != s.ID || v.Rule != "review-writes" {
		t.Errorf("request: %+v", v)
	}
	again, _ := s.RequestApproval(ctx, AgentApproval{Target: "shop", Commands: write, Params: params, Justification: "again"})
	if again.ID != tk.ID || !again.Existing || again.Status != TicketPending {
		t.Errorf("second ask: %+v", again)
	}
	// Other parameters are another command.
	other, _ := s.RequestApproval(ctx, AgentApproval{Target: "shop", Commands: write, Params: [][]byte{[]byte("43")}, Justification: just})
	if other.ID == tk.ID || other.Status != TicketPending {
		t.Errorf("other params: %+v", other)
	}
	if _, err := svc.Approve(ctx, tk.ID, approval.Approver{Name: "alice", Role: identity.RoleApprover}, ""); err != nil {
		t.Fatal(err)
	}
	granted, _ := s.RequestApproval(ctx, AgentApproval{Target: "shop", Commands: write, Params: params, Justification: just})
	if granted.Status != TicketGranted || granted.ID != tk.ID {
		t.Errorf("after approval: %+v", granted)
	}
	// The grant is the one a target session's Decide consumes: same agent,
	// target, statements and parameters.
	ps := w.session(t)
	verdict := ps.Decide(ctx, Request{Commands: write, Via: "execute", Bound: fixedBound(params)})
	if !verdict.Allowed() || verdict.Rule != "review-writes (approved)" {
		t.Errorf("target session's verdict: %+v", verdict)
	}
	verdict = ps.Decide(ctx, Request{Commands: append([]command.Command(nil), write...), Via: "execute", Bound: fixedBound(params)})
	if verdict.Allowed() {
		t.Error("the grant was used twice")
	}
	// A session ended by the gateway takes no more requests.
	s.terminate("weir token was revoked")
	if _, err := s.RequestApproval(ctx, AgentApproval{Target: "shop", Commands: write, Justification: just}); err == nil {
		t.Error("an ended session opened an approval request")
	}
}

type fixedBound [][]byte

func (b fixedBound) Params() [][]byte                   { return b }
func (b fixedBound) Preview(ctx context.Context) string { return "" }
