package mcp

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/weir-gw/weir/internal/command"
	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/identity"
	"github.com/weir-gw/weir/internal/policy"
)

// TargetInfo is one of the agent's targets as list_targets shows it.
type TargetInfo struct {
	Name   string            `json:"name"`
	Kind   string            `json:"kind"`
	Labels map[string]string `json:"labels,omitempty"`
	// Tools are the MCP tools that act on this target.
	Tools []string `json:"tools"`
	// Typical is what the policy does on this target with typical
	// statements, decided by the real rules.
	Typical []TypicalVerdict `json:"typical,omitempty"`
}

// TypicalVerdict is the policy's verdict on one typical statement.
type TypicalVerdict struct {
	What    string `json:"what"`
	Verdict string `json:"verdict"` // allowed, needs approval, denied
	Rule    string `json:"rule"`
	Message string `json:"message,omitempty"`
}

// typicalSQL are the statements list_targets asks the policy about: a plain
// read, write and schema change of an ordinary table. Rules about specific
// tables, functions or risks are not covered; the query's own verdict is
// authoritative.
var typicalSQL = []struct {
	what string
	cmd  command.Command
}{
	{"read (SELECT from a table)", command.Command{Protocol: "postgres", Verb: "SELECT", Kind: command.KindRead,
		Text: "SELECT * FROM example_table", Reads: []string{"example_table"}}},
	{"write (UPDATE/INSERT/DELETE of rows)", command.Command{Protocol: "postgres", Verb: "UPDATE", Kind: command.KindWrite,
		Text: "UPDATE example_table SET x = 1", Reads: []string{"example_table"}, Writes: []string{"example_table"}}},
	{"schema change (CREATE/ALTER/DROP)", command.Command{Protocol: "postgres", Verb: "CREATE TABLE", Kind: command.KindDDL,
		Text: "CREATE TABLE example_new (x int)", Writes: []string{"example_new"}}},
}

// PolicyRule is a rule as the agent is told of it: its name, action and
// message, never its condition (what the agent may do is learnt from the
// rules' own wording, and from the verdicts).
type PolicyRule struct {
	Name    string `json:"name"`
	Action  string `json:"action"`
	Mode    string `json:"mode,omitempty"`
	Message string `json:"message,omitempty"`
}

// TargetList is list_targets' structured content.
type TargetList struct {
	Agent        string       `json:"agent"`
	TokenExpires time.Time    `json:"token_expires"`
	Targets      []TargetInfo `json:"targets"`
	Rules        []PolicyRule `json:"policy_rules"`
	Summary      string       `json:"summary"`
}

const listTargetsDescription = `List the targets (databases, storage accounts, Azure scopes) this agent may use through weir, with their kind and labels (e.g. env: prod), which tools act on each, and a plain-language summary of the policy: which rules allow, which send a request to a person for approval, and which deny. Call it first and plan within it: rules are checked in order, the first that matches decides, and anything no rule allows is denied.`

// toolsByKind says which tools act on a target kind. Front ends that add
// tools for their kinds (Blob, ARM) add them here with RegisterKindTools.
var toolsByKind = map[string][]string{
	config.KindPostgres: {"query", "request_approval", "approval_status"},
}

// RegisterKindTools declares that tools act on targets of kind, so
// list_targets names them. Call it from init().
func RegisterKindTools(kind string, tools ...string) {
	toolsByKind[kind] = append(toolsByKind[kind], tools...)
}

// kindOnly are tools offered only to agents with a target of the kind:
// a model plans with the tools it sees, so an agent without Blob targets
// is not shown blob tools it could never use.
var kindOnly = map[string][]string{}

// OfferOnlyWith declares that tools are listed (tools/list) only for an
// agent whose token covers a target of kind (or of another kind the tool
// was declared with). Call it from init().
func OfferOnlyWith(kind string, tools ...string) {
	for _, t := range tools {
		kindOnly[t] = append(kindOnly[t], kind)
	}
}

// offerByKind filters tools/list by the caller's targets (OfferOnlyWith).
// A call of a hidden tool still reaches the tool, which refuses a target
// of another kind itself.
func (s *Server) offerByKind(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		res, err := next(ctx, method, req)
		lt, ok := res.(*mcp.ListToolsResult)
		if err != nil || !ok || len(kindOnly) == 0 {
			return res, err
		}
		kinds := map[string]bool{}
		if ex := req.GetExtra(); ex != nil && ex.TokenInfo != nil {
			claims, _ := ex.TokenInfo.Extra["claims"].(identity.Claims)
			cfg := s.opts.Gateway.Config()
			if agent, ok := cfg.Agent(claims.Agent); ok {
				for _, name := range agent.Targets {
					if t, ok := cfg.Target(name); ok && claims.AllowsTarget(name) {
						kinds[t.Kind] = true
					}
				}
			}
		}
		out := *lt
		out.Tools = make([]*mcp.Tool, 0, len(lt.Tools))
		for _, t := range lt.Tools {
			if ks, only := kindOnly[t.Name]; !only || slices.ContainsFunc(ks, func(k string) bool { return kinds[k] }) {
				out.Tools = append(out.Tools, t)
			}
		}
		return &out, nil
	}
}

var verdictWords = map[policy.Action]string{policy.Allow: "allowed", policy.Review: "needs approval", policy.Deny: "denied"}

func registerTargets(s *Server) {
	AddTool(s, &mcp.Tool{Name: "list_targets", Title: "What may I do where", Description: listTargetsDescription,
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: ptr(false)}}, s.listTargets)
}

func (s *Server) listTargets(ctx context.Context, a *AgentSession, _ struct{}) (*mcp.CallToolResult, any) {
	cfg := s.opts.Gateway.Config()
	out := &TargetList{Agent: a.Claims.Agent, TokenExpires: a.Claims.Expiry().UTC(), Targets: []TargetInfo{}}
	agent, _ := cfg.Agent(a.Claims.Agent)
	for _, name := range agent.Targets {
		t, ok := cfg.Target(name)
		if !ok || !a.Claims.AllowsTarget(name) {
			continue
		}
		tools := toolsByKind[t.Kind]
		if t.Kind == config.KindPostgres && s.opts.Postgres == nil || t.Kind == config.KindAzureBlob && s.opts.Blob == nil || isAzureKind(t.Kind) && s.opts.Azure == nil {
			tools = nil
		}
		ti := TargetInfo{Name: t.Name, Kind: t.Kind, Labels: maps.Clone(t.Labels), Tools: append([]string{}, tools...)}
		if t.Kind == config.KindPostgres {
			for _, p := range typicalSQL {
				d, ok := a.Control.Probe(t.Name, []command.Command{p.cmd})
				if !ok {
					continue
				}
				ti.Typical = append(ti.Typical, TypicalVerdict{What: p.what, Verdict: verdictWords[d.Action], Rule: d.Rule, Message: d.Message})
			}
		}
		if isAzureKind(t.Kind) && s.opts.Azure != nil && len(t.Azure.Hosts) > 0 {
			ti.Typical = s.typicalAzureVerdicts(a, t)
		}
		out.Targets = append(out.Targets, ti)
	}
	for _, r := range cfg.Policy.Rules {
		pr := PolicyRule{Name: r.Name, Action: r.Action, Message: r.Message}
		if r.Action == "review" {
			pr.Mode = cfg.RuleMode(r.Name)
		}
		out.Rules = append(out.Rules, pr)
	}
	out.Summary = summary(out, cfg.Approvals.Timeout, s.opts.Approvals != nil)
	a.Note("list_targets", map[string]any{"targets": len(out.Targets)})
	return textResult(out.Summary), out
}

// summary writes the plain-language account of targets and policy.
func summary(l *TargetList, holdTimeout time.Duration, approvals bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "You are agent %q; your weir token expires at %s.\n\nTargets:\n", l.Agent, l.TokenExpires.Format(time.RFC3339))
	if len(l.Targets) == 0 {
		b.WriteString("  (none: this token is valid for no target; ask the operator)\n")
	}
	for _, t := range l.Targets {
		labels := make([]string, 0, len(t.Labels))
		for _, k := range slices.Sorted(maps.Keys(t.Labels)) {
			labels = append(labels, k+"="+t.Labels[k])
		}
		fmt.Fprintf(&b, "  - %s (%s", t.Name, t.Kind)
		if len(labels) > 0 {
			fmt.Fprintf(&b, "; %s", strings.Join(labels, ", "))
		}
		b.WriteString(")")
		if len(t.Tools) > 0 {
			fmt.Fprintf(&b, ": tools %s", strings.Join(t.Tools, ", "))
		} else {
			b.WriteString(": no MCP tool acts on this kind yet")
		}
		b.WriteByte('\n')
		for _, v := range t.Typical {
			fmt.Fprintf(&b, "      %s: %s (rule %s)\n", v.What, v.Verdict, v.Rule)
		}
	}
	if slices.ContainsFunc(l.Targets, func(t TargetInfo) bool { return len(t.Typical) > 0 }) {
		b.WriteString("(The typical verdicts come from the policy itself for an ordinary table or a made-up Azure resource; rules about specific tables, functions, resource groups or risks may decide otherwise, and the call's own verdict is what counts.)\n")
	}
	b.WriteString("\nPolicy (rules in order; the first that matches a statement decides; a rule may apply only to some targets, e.g. by their labels):\n")
	groups := []struct{ action, title string }{
		{"allow", "Allowed"},
		{"review", "Needs a person's approval"},
		{"deny", "Denied"},
	}
	for _, g := range groups {
		var lines []string
		for _, r := range l.Rules {
			if r.Action != g.action {
				continue
			}
			line := "  - " + humanName(r.Name) + " (rule " + r.Name
			if r.Mode == "hold" && approvals {
				line += fmt.Sprintf("; query waits up to %s for the decision", holdTimeout)
			} else if r.Mode == "async" {
				line += "; query is refused with an approval request id"
			}
			line += ")"
			if r.Message != "" {
				line += ": " + r.Message
			}
			lines = append(lines, line)
		}
		if len(lines) > 0 {
			fmt.Fprintf(&b, "%s:\n%s\n", g.title, strings.Join(lines, "\n"))
		}
	}
	b.WriteString("Everything else is denied (default deny).\n")
	if approvals {
		b.WriteString("\nFor a statement that needs approval, call request_approval first (with a justification), check approval_status, then run it unchanged with query.")
		if slices.ContainsFunc(l.Targets, func(t TargetInfo) bool { return slices.Contains(t.Tools, "azure_request") }) {
			b.WriteString("\nazure_request takes no request_approval: a call that needs approval opens the request itself and its error gives the id; follow it with approval_status, then send exactly the same azure_request again.")
		}
	} else {
		b.WriteString("\nApprovals are not enabled on this weir: statements that need approval are refused.")
	}
	return b.String()
}

// humanName turns a rule name into words ("review-prod-writes" → "review
// prod writes").
func humanName(name string) string {
	return strings.NewReplacer("-", " ", "_", " ").Replace(name)
}
