package mcp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/weir-gw/weir/internal/config"
)

func TestTextParams(t *testing.T) {
	for _, tc := range []struct {
		in   []any
		want []string // "<nil>" for NULL
		err  bool
	}{
		{in: nil, want: []string{}},
		{in: []any{"a", nil, true, 42.0, 1.5, "007"}, want: []string{"a", "<nil>", "true", "42", "1.5", "007"}},
		{in: []any{map[string]any{"k": "v"}, []any{1.0, 2.0}}, want: []string{`{"k":"v"}`, `[1,2]`}},
		{in: []any{1e21}, want: []string{"1000000000000000000000"}},
		{in: make([]any, maxParams+1), err: true},
	} {
		got, err := textParams(tc.in)
		if (err != nil) != tc.err {
			t.Fatalf("%v: err %v", tc.in, err)
		}
		if tc.err {
			continue
		}
		if len(got) != len(tc.want) {
			t.Fatalf("%v: got %d params", tc.in, len(got))
		}
		for i := range got {
			s := string(got[i])
			if got[i] == nil {
				s = "<nil>"
			}
			if s != tc.want[i] {
				t.Errorf("%v[%d] = %q, want %q", tc.in, i, s, tc.want[i])
			}
		}
	}
}

func TestExplainError(t *testing.T) {
	rules := []config.Rule{{Name: "no-ddl", Action: "deny"}, {Name: "review-prod-writes", Action: "review"}}
	weir := func(msg string) error {
		return &pgconn.PgError{Severity: "ERROR", Code: "42501", Message: msg, Hint: "weir session s_abc, command 3"}
	}
	for _, tc := range []struct {
		name       string
		err        error
		rule       string
		action     string
		approval   int64
		nextHas    string
		errHas     string
		noRef      bool
		sqlState   string
		wrappedErr bool
	}{
		{name: "deny", err: weir(`weir: DROP TABLE is denied by policy rule "no-ddl": agents may not change the schema. Nothing in this request was run.`),
			rule: "no-ddl", action: "deny", nextHas: "cannot be approved", errHas: "no-ddl", sqlState: "42501"},
		{name: "default deny", err: weir(`weir: VACUUM is not allowed: no policy rule allows it (default deny).`), rule: "default-deny", nextHas: "do not retry"},
		{name: "async review", err: weir(`weir: this command needs a human's approval under policy rule "review-prod-writes"; it was not run. Approval request 17 was opened; once an approver runs ` + "`weir approvals approve 17`" + `, send exactly the same command again.`),
			rule: "review-prod-writes", action: "review", approval: 17, nextHas: `approval_status {"id": 17`},
		{name: "still pending", err: weir(`weir: this command is waiting for approval (request 9, rule "review-prod-writes"). Send it again unchanged once approved.`),
			rule: "review-prod-writes", action: "review", approval: 9},
		{name: "hold timeout", err: weir(`weir: approval request 4 was not decided within 1m0s, so the command was not run; ask an approver (weir approvals approve 4) and send it again.`),
			rule: "weir", approval: 4},
		{name: "review without approvals", err: weir(`weir: UPDATE needs a human's approval under policy rule "review-prod-writes". Approval workflow is not enabled on this weir, so it was not run.`),
			rule: "review-prod-writes", action: "review", nextHas: "request_approval"},
		{name: "weir refusal", err: weir(`weir could not parse this SQL (syntax error at or near "SELEC"); weir refuses what it cannot parse`), rule: "weir", nextHas: "weir refused"},
		{name: "server error", err: &pgconn.PgError{Severity: "ERROR", Code: "42P01", Message: `relation "nope" does not exist`},
			errHas: "PostgreSQL: relation", nextHas: "fix the statement", noRef: true},
		{name: "fatal login", err: &pgconn.PgError{Severity: "FATAL", Code: "28P01", Message: `password authentication failed for user "x": this token is not valid for target "y"`},
			errHas: "not valid for target", nextHas: "list_targets", noRef: true},
		{name: "wrapped", err: fmt.Errorf("connect: %w", weir(`weir: x is denied by policy rule "no-ddl".`)), rule: "no-ddl", action: "deny"},
		{name: "cancelled", err: context.Canceled, errHas: "cancelled", noRef: true},
		{name: "other", err: errors.New("pipe broken"), errHas: "connection to the target failed", noRef: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := explainError(tc.err, rules)
			if f.Rule != tc.rule || f.RuleAction != tc.action || f.ApprovalRequestID != tc.approval {
				t.Errorf("got rule %q action %q approval %d; want %q %q %d", f.Rule, f.RuleAction, f.ApprovalRequestID, tc.rule, tc.action, tc.approval)
			}
			if !strings.Contains(f.NextStep, tc.nextHas) {
				t.Errorf("next step %q lacks %q", f.NextStep, tc.nextHas)
			}
			if !strings.Contains(f.Error, tc.errHas) {
				t.Errorf("error %q lacks %q", f.Error, tc.errHas)
			}
			if (f.Reference == "") != tc.noRef {
				t.Errorf("reference %q", f.Reference)
			}
			if tc.sqlState != "" && f.SQLState != tc.sqlState {
				t.Errorf("sqlstate %q", f.SQLState)
			}
		})
	}
}

func TestRenderTable(t *testing.T) {
	s := func(v string) *string { return &v }
	for _, tc := range []struct {
		name string
		in   QueryResult
		want string
	}{
		{name: "rows", in: QueryResult{Columns: []string{"id", "email"}, Rows: [][]*string{{s("1"), s("a****@e*****.com")}, {s("22"), nil}}, RowCount: 2, Command: "SELECT 2"},
			want: "id | email\n---+-----------------\n1  | a****@e*****.com\n22 | NULL\n(2 rows)"},
		{name: "no columns", in: QueryResult{Columns: []string{}, Command: "UPDATE 3", RowCount: 3}, want: "UPDATE 3"},
		{name: "truncated", in: QueryResult{Columns: []string{"n"}, Rows: [][]*string{{s("1")}}, RowCount: 5, Truncated: true, Continuation: "only 1 of 5 rows are shown"},
			want: "n\n-\n1\n(5 rows, 1 shown)\nonly 1 of 5 rows are shown"},
		{name: "newlines stay on one line", in: QueryResult{Columns: []string{"t"}, Rows: [][]*string{{s("a\nb\tc")}}, RowCount: 1},
			want: "t\n------\na\\nb c\n(1 row)"},
		{name: "statements", in: QueryResult{Columns: []string{}, Command: "COMMIT", Statements: []string{"BEGIN", "UPDATE 1", "COMMIT"}},
			want: "COMMIT\nstatements: BEGIN; UPDATE 1; COMMIT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := renderTable(&tc.in); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
	long := strings.Repeat("é", maxCellText+10)
	got := renderTable(&QueryResult{Columns: []string{"x"}, Rows: [][]*string{{&long}}, RowCount: 1})
	if !strings.Contains(got, strings.Repeat("é", maxCellText)+"…") || strings.Contains(got, strings.Repeat("é", maxCellText+1)) {
		t.Errorf("long cell not cut: %q", got)
	}
}

func TestSummary(t *testing.T) {
	l := &TargetList{Agent: "ci-bot", TokenExpires: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		Targets: []TargetInfo{{Name: "shop", Kind: "postgres", Labels: map[string]string{"env": "prod", "team": "a"}, Tools: []string{"query"},
			Typical: []TypicalVerdict{{What: "write (rows)", Verdict: "needs approval", Rule: "review-prod-writes"}}}, {Name: "lake", Kind: "azure-blob"}},
		Rules: []PolicyRule{{Name: "no-ddl", Action: "deny", Message: "open a change request"}, {Name: "review-prod-writes", Action: "review", Mode: "async"}, {Name: "reads", Action: "allow"}}}
	got := summary(l, time.Minute, true)
	for _, want := range []string{
		`agent "ci-bot"`, "shop (postgres; env=prod, team=a): tools query\n      write (rows): needs approval (rule review-prod-writes)\n", "typical verdicts come from the policy itself", "lake (azure-blob): no MCP tool acts on this kind yet",
		"Allowed:\n  - reads (rule reads)", "Needs a person's approval:\n  - review prod writes (rule review-prod-writes; query is refused with an approval request id)",
		"Denied:\n  - no ddl (rule no-ddl): open a change request", "default deny", "request_approval",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if got := summary(l, time.Minute, false); !strings.Contains(got, "Approvals are not enabled") {
		t.Errorf("no approvals: %s", got)
	}
}

// FuzzExplainError: whatever text the front end's error carries, reading
// it never panics and always says what to do next.
func FuzzExplainError(f *testing.F) {
	f.Add("42501", `weir: x is denied by policy rule "a": b`, "weir session s_1, command 1")
	f.Add("42501", `waiting for approval (request 99999999999999999999, rule "r")`, "weir session s")
	f.Add("42P01", `relation "x" does not exist`, "")
	f.Add("42501", `policy rule "`, "weir session ")
	f.Fuzz(func(t *testing.T, code, msg, hint string) {
		fl := explainError(&pgconn.PgError{Code: code, Message: msg, Hint: hint}, []config.Rule{{Name: "a", Action: "deny"}})
		if fl.NextStep == "" || fl.Error == "" && msg != "" {
			t.Fatalf("incomplete failure %+v", fl)
		}
	})
}

// FuzzRenderTable: any cell text renders as one line per row.
func FuzzRenderTable(f *testing.F) {
	f.Add("id", "a\nb", "x\r\ny")
	f.Add("", "\xff\xfe", "é")
	f.Fuzz(func(t *testing.T, col, a, b string) {
		r := &QueryResult{Columns: []string{col, "c2"}, Rows: [][]*string{{&a, &b}, {nil, &a}}, RowCount: 2}
		out := renderTable(r)
		if n := strings.Count(out, "\n"); n != 4 {
			t.Fatalf("%d lines in %q", n+1, out)
		}
	})
}
