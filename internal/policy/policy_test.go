package policy

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/weir-gw/weir/internal/command"
	"github.com/weir-gw/weir/internal/config"
)

func mustCompile(t *testing.T, rules ...config.Rule) *Engine {
	t.Helper()
	e, err := Compile(rules)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestDecide(t *testing.T) {
	e := mustCompile(t,
		config.Rule{Name: "no-ddl", When: `command.kind == "ddl"`, Action: "deny", Message: "no schema changes"},
		config.Rule{Name: "no-file", When: `"file_access" in command.risks`, Action: "deny"},
		config.Rule{Name: "review-prod-writes", When: `command.writes && target.labels.env == "prod"`, Action: "review"},
		config.Rule{Name: "ticket-writes", When: `command.writes && context.ticket.startsWith("OPS-")`, Action: "allow"},
		config.Rule{Name: "claimed-cannot-widen", When: `command.writes && claimed.application_name == "trusted"`, Action: "deny"},
		config.Rule{Name: "reads", When: `command.kind == "read" && !("public.secrets" in command.reads)`, Action: "allow"},
	)
	read := command.Command{Kind: command.KindRead, Verb: "SELECT", Reads: []string{"orders"}}
	secret := command.Command{Kind: command.KindRead, Verb: "SELECT", Reads: []string{"public.secrets"}}
	del := command.Command{Kind: command.KindWrite, Verb: "DELETE", Writes: []string{"orders"}}
	ddl := command.Command{Kind: command.KindDDL, Verb: "DROP TABLE", Writes: []string{"orders"}}
	file := command.Command{Kind: command.KindRead, Verb: "SELECT", Functions: []string{"pg_read_file"}, Risks: []command.Risk{command.RiskFileAccess}}
	prod := Input{Agent: Agent{Name: "ci"}, Target: Target{Name: "orders", Labels: map[string]string{"env": "prod"}}}
	dev := Input{Agent: Agent{Name: "ci"}, Target: Target{Name: "dev"}, Context: map[string]string{"ticket": "OPS-12"}}
	nolabel := Input{Agent: Agent{Name: "ci"}, Target: Target{Name: "dev"}}
	tests := []struct {
		name   string
		in     Input
		cmds   []command.Command
		action Action
		rule   string
		index  int
	}{
		{"read allowed", prod, []command.Command{read}, Allow, "reads", -1},
		{"read of excluded table falls to default", prod, []command.Command{secret}, Deny, DefaultRule, 0},
		{"ddl denied", prod, []command.Command{ddl}, Deny, "no-ddl", 0},
		{"file access denied", prod, []command.Command{file}, Deny, "no-file", 0},
		{"prod write reviewed", prod, []command.Command{del}, Review, "review-prod-writes", 0},
		{"whole message: one deny denies all", prod, []command.Command{read, del, ddl}, Deny, "no-ddl", 2},
		{"whole message: review wins over allow", prod, []command.Command{read, del}, Review, "review-prod-writes", 1},
		// target.labels.env does not exist on dev: the review rule errors and,
		// being a review rule, applies (stricter), never silently skipped.
		{"eval error makes review apply", dev, []command.Command{del}, Review, "review-prod-writes", 0},
		{"eval error on allow rule skips it", nolabel, []command.Command{del}, Review, "review-prod-writes", 0},
		{"empty message allowed", prod, nil, Allow, "", -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := e.Decide(&tc.in, tc.cmds)
			if d.Action != tc.action || d.Rule != tc.rule || d.Command != tc.index {
				t.Fatalf("got %+v, want %s by %q at %d", d, tc.action, tc.rule, tc.index)
			}
		})
	}
}

func TestAttestedContextAllows(t *testing.T) {
	e := mustCompile(t,
		config.Rule{Name: "ticket-writes", When: `command.writes && has(context.ticket) && context.ticket.startsWith("OPS-")`, Action: "allow"},
	)
	del := command.Command{Kind: command.KindWrite, Verb: "DELETE", Writes: []string{"orders"}}
	in := Input{Context: map[string]string{"ticket": "OPS-1"}}
	if d := e.Decide(&in, []command.Command{del}); d.Action != Allow {
		t.Fatalf("attested ticket: %+v", d)
	}
	// The same key as claimed context must not allow.
	in = Input{Claimed: map[string]string{"ticket": "OPS-1"}}
	if d := e.Decide(&in, []command.Command{del}); d.Action != Deny {
		t.Fatalf("claimed ticket widened access: %+v", d)
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		when, want string
	}{
		{`command.knd == "read"`, "undefined field 'knd'"},
		{`command.kind ==`, "Syntax error"},
		{`command.kind`, "must be true/false"},
		{`nosuch.thing`, "undeclared reference"},
	}
	for _, tc := range tests {
		_, err := Compile([]config.Rule{{Name: "r", When: tc.when, Action: "allow", Line: 7}})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "line 7") {
			t.Errorf("%s: got %v, want error containing %q and the line", tc.when, err, tc.want)
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	e, err := Compile([]config.Rule{
		{Name: "no-ddl", When: `command.kind == "ddl" || command.kind == "admin"`, Action: "deny"},
		{Name: "no-risky", When: `command.risks.exists(r, r in ["file_access","network_access","program_exec","dynamic_sql"])`, Action: "deny"},
		{Name: "review-writes", When: `command.writes`, Action: "review"},
		{Name: "reads", When: `command.kind == "read"`, Action: "allow"},
	})
	if err != nil {
		b.Fatal(err)
	}
	in := Input{Agent: Agent{Name: "bench"}, Target: Target{Name: "bench", Labels: map[string]string{"env": "dev"}}}
	cmds := []command.Command{{Kind: command.KindRead, Verb: "SELECT", Reads: []string{"pgbench_accounts"}}}
	b.ReportAllocs()
	for b.Loop() {
		if d := e.Decide(&in, cmds); d.Action != Allow {
			b.Fatal(d)
		}
	}
}

// The policies in shipped example configs compile (docs cannot drift).
func TestExamplePoliciesCompile(t *testing.T) {
	matches, _ := filepath.Glob("../../examples/*.yaml")
	if len(matches) == 0 {
		t.Fatal("no example configs found")
	}
	for _, m := range matches {
		cfg, err := config.Load(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Compile(cfg.Policy.Rules); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
}
