package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/weir-gw/weir/internal/approval"
	"github.com/weir-gw/weir/internal/identity"
	weirmcp "github.com/weir-gw/weir/internal/mcp"
)

func TestListTools(t *testing.T) {
	tok, _ := token(t, "ci-bot")
	cs := goClient(t, tok, "e2e-go")
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
		if len(tl.Description) < 80 {
			t.Errorf("tool %s: description too thin for a model: %q", tl.Name, tl.Description)
		}
	}
	slices.Sort(names)
	if want := []string{"approval_status", "list_targets", "query", "request_approval"}; !slices.Equal(names, want) {
		t.Errorf("tools %v, want %v", names, want)
	}
	if ins := cs.InitializeResult().Instructions; !strings.Contains(ins, "list_targets") {
		t.Errorf("instructions: %q", ins)
	}
}

func TestListTargets(t *testing.T) {
	tok, _ := token(t, "ci-bot")
	cs := goClient(t, tok, "e2e-go")
	var out weirmcp.TargetList
	text, isErr := call(t, cs, "list_targets", nil, &out)
	if isErr {
		t.Fatal(text)
	}
	if out.Agent != "ci-bot" || len(out.Targets) != 2 || out.Targets[0].Name != "shop" || out.Targets[0].Labels["env"] != "prod" || out.Targets[1].Name != "other" {
		t.Errorf("targets: %+v", out)
	}
	typical := func(t weirmcp.TargetInfo, what string) string {
		for _, v := range t.Typical {
			if strings.HasPrefix(v.What, what) {
				return v.Verdict + " " + v.Rule
			}
		}
		return ""
	}
	// What the real rules do on each target: the same write is reviewed on
	// prod and matches no rule on dev.
	for _, tc := range []struct {
		target     int
		what, want string
	}{
		{0, "read", "allowed reads"}, {0, "write", "needs approval review-prod-writes"}, {0, "schema", "denied no-ddl"},
		{1, "read", "allowed reads"}, {1, "write", "denied default-deny"},
	} {
		if got := typical(out.Targets[tc.target], tc.what); got != tc.want {
			t.Errorf("%s, %s: %q, want %q", out.Targets[tc.target].Name, tc.what, got, tc.want)
		}
	}
	for _, want := range []string{"shop (postgres; env=prod)", "write (UPDATE/INSERT/DELETE of rows): needs approval (rule review-prod-writes)", "Denied:", "no ddl (rule no-ddl): agents may not change the schema",
		"Needs a person's approval:", "review-prod-writes", "default deny"} {
		if !strings.Contains(text, want) {
			t.Errorf("summary lacks %q:\n%s", want, text)
		}
	}
	// A token scoped to fewer targets lists only those.
	rtok, _ := token(t, "reader")
	var rout weirmcp.TargetList
	call(t, goClient(t, rtok, "e2e-go"), "list_targets", nil, &rout)
	if len(rout.Targets) != 1 || rout.Targets[0].Name != "other" {
		t.Errorf("reader's targets: %+v", rout.Targets)
	}
}

func TestAllowedQuery(t *testing.T) {
	tok, _ := token(t, "ci-bot")
	cs := goClient(t, tok, "e2e-go")
	var out weirmcp.QueryResult
	text, isErr := call(t, cs, "query", map[string]any{"target": "shop", "sql": "SELECT id, total_cents FROM orders WHERE id <= $1 ORDER BY id", "params": []any{3}}, &out)
	if isErr {
		t.Fatal(text)
	}
	if out.RowCount != 3 || len(out.Rows) != 3 || *out.Rows[2][1] != "300" || !slices.Equal(out.Columns, []string{"id", "total_cents"}) || out.Truncated {
		t.Errorf("result: %+v", out)
	}
	if !strings.Contains(text, "id | total_cents") || !strings.Contains(text, "(3 rows)") {
		t.Errorf("table:\n%s", text)
	}
	// Capped with a continuation; the count is still the whole result's.
	out = weirmcp.QueryResult{}
	text, _ = call(t, cs, "query", map[string]any{"target": "shop", "sql": "SELECT id FROM orders", "max_rows": 10}, &out)
	if out.RowCount != 300 || len(out.Rows) != 10 || !out.Truncated || !strings.Contains(out.Continuation, "OFFSET 10") || !strings.Contains(text, "(300 rows, 10 shown)") {
		t.Errorf("capped result: rows %d count %d truncated %v %q", len(out.Rows), out.RowCount, out.Truncated, out.Continuation)
	}
	// A transaction spans calls: one PostgreSQL session per MCP session and target.
	call(t, cs, "query", map[string]any{"target": "shop", "sql": "BEGIN"}, nil)
	call(t, cs, "query", map[string]any{"target": "shop", "sql": "INSERT INTO scratch(note) VALUES ('in-tx')"}, nil)
	out = weirmcp.QueryResult{}
	call(t, cs, "query", map[string]any{"target": "shop", "sql": "ROLLBACK; SELECT count(*) FROM scratch WHERE note = 'in-tx'"}, &out)
	if len(out.Rows) != 1 || *out.Rows[0][0] != "0" || !slices.Equal(out.Statements, []string{"ROLLBACK", "SELECT 1"}) {
		t.Errorf("transaction across calls: %+v", out)
	}
	// The database's own error is the database's, not a policy refusal.
	var f weirmcp.ToolFailure
	text, isErr = call(t, cs, "query", map[string]any{"target": "shop", "sql": "SELECT nope FROM orders"}, &f)
	if !isErr || f.SQLState != "42703" || f.Rule != "" || !strings.HasPrefix(text, "PostgreSQL: column") {
		t.Errorf("server error: %v %+v %q", isErr, f, text)
	}
}

func TestDeniedQuery(t *testing.T) {
	tok, _ := token(t, "ci-bot")
	cs := goClient(t, tok, "e2e-go")
	var f weirmcp.ToolFailure
	text, isErr := call(t, cs, "query", map[string]any{"target": "shop", "sql": "DROP TABLE orders"}, &f)
	if !isErr {
		t.Fatalf("DROP TABLE was not refused: %s", text)
	}
	if f.Rule != "no-ddl" || f.RuleAction != "deny" || f.SQLState != "42501" || !strings.Contains(f.Error, "agents may not change the schema") ||
		!strings.Contains(f.NextStep, "cannot be approved") || !strings.HasPrefix(f.Reference, "weir session s_") {
		t.Errorf("refusal: %+v", f)
	}
	if !strings.Contains(text, `policy rule "no-ddl"`) || !strings.Contains(text, "Next step:") {
		t.Errorf("text: %s", text)
	}
	if err := env.pg.Exec(context.Background(), "shop", "SELECT 1 FROM orders LIMIT 1"); err != nil {
		t.Fatalf("orders is gone: %v", err)
	}
	// A target outside the token is refused before anything connects.
	rtok, _ := token(t, "reader")
	f = weirmcp.ToolFailure{}
	if _, isErr := call(t, goClient(t, rtok, "e2e-go"), "query", map[string]any{"target": "shop", "sql": "SELECT 1"}, &f); !isErr || !strings.Contains(f.Error, "not one of your targets") {
		t.Errorf("other agent's target: %+v", f)
	}
}

func TestMaskedResults(t *testing.T) {
	tok, _ := token(t, "ci-bot")
	cs := goClient(t, tok, "e2e-masking")
	var out weirmcp.QueryResult
	text, isErr := call(t, cs, "query", map[string]any{"target": "shop", "sql": "SELECT full_name, email, card FROM customers ORDER BY id LIMIT 3"}, &out)
	if isErr {
		t.Fatal(text)
	}
	raw, _ := json.Marshal(out)
	for _, leak := range []string{"@example.com", "4111 1111 1111 1111", "4111111111111111"} {
		if strings.Contains(text, leak) || strings.Contains(string(raw), leak) {
			t.Errorf("unmasked %q reached the agent:\n%s\n%s", leak, text, raw)
		}
	}
	if len(out.Rows) != 3 || *out.Rows[0][1] != "c****@e*****.com" || *out.Rows[0][0] != "Customer 1" {
		t.Errorf("rows: %s", raw)
	}
	// Values that come back inside the database's error messages are
	// masked too (the message and its detail).
	for _, sql := range []string{
		"SELECT email::int FROM customers WHERE id = 4",
		"INSERT INTO scratch(note) SELECT email FROM customers WHERE id = 6",
	} {
		text, isErr := call(t, cs, "query", map[string]any{"target": "shop", "sql": sql}, nil)
		if !isErr || strings.Contains(text, "@example.com") || !strings.Contains(text, "PostgreSQL:") {
			t.Errorf("%s: %v %q", sql, isErr, text)
		}
	}
	// The result record counts what was masked, in an MCP-protocol session
	// that carries the client's claimed name.
	eventually(t, "the masked counts in the audit log", func() bool {
		evs := auditEvents(t)
		mcpSessions := map[string]bool{}
		for _, e := range evs {
			d, _ := e["data"].(map[string]any)
			if e["type"] == "session.start" && d["protocol"] == "mcp" && e["target"] == "shop" {
				c, _ := d["context"].(map[string]any)
				cl, _ := c["claimed"].(map[string]any)
				if cl["mcp_client_name"] == "e2e-masking" && cl["mcp_client_version"] == "9.9.9" && cl["mcp_session_id"] != "" {
					mcpSessions[e["session"].(string)] = true
				}
			}
			if e["type"] == "result" && mcpSessions[e["session"].(string)] {
				if m, ok := d["masked"].(map[string]any); ok && m["email"] != nil && m["credit_card"] != nil {
					return true
				}
			}
		}
		return false
	})
}

var ruleOf = regexp.MustCompile(`\brule "([^"]+)"`)

// The same SQL gets the same verdict through MCP as through the
// PostgreSQL protocol (pgx), because it is the same pipeline.
func TestSameVerdictAsPsql(t *testing.T) {
	ctx := context.Background()
	tok, _ := token(t, "ci-bot")
	cs := goClient(t, tok, "e2e-verdicts")
	conn, err := pgx.Connect(ctx, "postgres://ci-bot:"+tok+"@"+env.pgAddr+"/shop?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, tc := range []struct {
		sql     string
		allowed bool
		rule    string
	}{
		{"SELECT count(*) FROM orders", true, ""},
		{"SELECT * FROM secrets", false, "no-secrets"},
		{"SELECT s.value FROM (SELECT value FROM public.secrets) s", false, "no-secrets"},
		{"DROP TABLE orders", false, "no-ddl"},
		{"SELECT 1; DROP TABLE orders", false, "no-ddl"},                                // corpus P01: decided as a whole
		{"/* harmless */ DELETE FROM orders WHERE id = 3", false, "review-prod-writes"}, // P07: by the parse tree
		{"VACUUM orders", false, "no-ddl"},
		{"SELECT pg_read_file('/etc/passwd')", false, "no-risky"},
		{"WITH d AS (DELETE FROM orders WHERE id = 1 RETURNING *) SELECT * FROM d", false, "no-risky"},
		{"INSERT INTO scratch(note) VALUES ('same verdict')", true, ""},
		{"UPDATE orders SET total_cents = total_cents WHERE id = 7", false, "review-prod-writes"},
		{"SET search_path = evil", false, "no-risky"},
		{"SELEC 1", false, "weir"},
	} {
		t.Run(tc.sql, func(t *testing.T) {
			_, perr := conn.Exec(ctx, tc.sql, pgx.QueryExecModeSimpleProtocol)
			var pe *pgconn.PgError
			pRule := ""
			if errors.As(perr, &pe) && strings.HasPrefix(pe.Hint, "weir session") {
				if m := ruleOf.FindStringSubmatch(pe.Message); m != nil {
					pRule = m[1]
				} else {
					pRule = "weir"
				}
			}
			var f weirmcp.ToolFailure
			_, isErr := call(t, cs, "query", map[string]any{"target": "shop", "sql": tc.sql}, &f)
			if (perr == nil) != tc.allowed || isErr == tc.allowed {
				t.Fatalf("allowed: psql-protocol %v (%v), MCP %v (%+v); want %v", perr == nil, perr, !isErr, f, tc.allowed)
			}
			if tc.allowed {
				return
			}
			if pRule != tc.rule || f.Rule != tc.rule || pe.Code != f.SQLState {
				t.Errorf("psql-protocol %s %q, MCP %s %q; want rule %q", pe.Code, pRule, f.SQLState, f.Rule, tc.rule)
			}
			if tc.rule == "review-prod-writes" {
				// Both name the same approval request for the same command.
				m := regexp.MustCompile(`request (\d+)`).FindStringSubmatch(pe.Message)
				if m == nil || strconv.FormatInt(f.ApprovalRequestID, 10) != m[1] {
					t.Errorf("approval ids: psql-protocol %q, MCP %d", pe.Message, f.ApprovalRequestID)
				}
			}
		})
	}
}

func TestApprovalRoundTrip(t *testing.T) {
	ctx := context.Background()
	tok, _ := token(t, "ci-bot")
	cs := goClient(t, tok, "e2e-approval")
	update := map[string]any{"target": "shop", "sql": "UPDATE orders SET total_cents = total_cents + 1 WHERE id = $1", "params": []any{"42"}}
	withJust := func(m map[string]any, j string) map[string]any {
		out := map[string]any{"justification": j}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	// A justification is required.
	if _, isErr := call(t, cs, "request_approval", withJust(update, "  "), nil); !isErr {
		t.Error("request_approval without a justification was accepted")
	}
	var ans weirmcp.ApprovalAnswer
	text, isErr := call(t, cs, "request_approval", withJust(update, "customer 42 was undercharged by one cent (TICKET-7)"), &ans)
	if isErr || ans.Status != "pending" || ans.ApprovalRequestID == 0 || ans.Rule != "review-prod-writes" {
		t.Fatalf("request_approval: %v %+v %s", isErr, ans, text)
	}
	id := ans.ApprovalRequestID
	// Asking again does not open another request.
	var again weirmcp.ApprovalAnswer
	call(t, cs, "request_approval", withJust(update, "again"), &again)
	if again.ApprovalRequestID != id || !again.Existing {
		t.Errorf("second request_approval: %+v", again)
	}
	// Approvers see it like any held request, with the justification.
	v, err := env.approvals.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != "pending" || v.Agent != "ci-bot" || v.Context["agent_justification"] != "customer 42 was undercharged by one cent (TICKET-7)" ||
		v.Context["ticket"] != "OPS-9" || v.Context["claimed_mcp_client_name"] != "e2e-approval" || len(v.Statements) != 1 {
		t.Errorf("approver's view: %+v", v)
	}
	var st weirmcp.ApprovalState
	call(t, cs, "approval_status", map[string]any{"id": id}, &st)
	if st.Status != "pending" {
		t.Errorf("status before the decision: %+v", st)
	}
	// Before approval the statement is refused, citing the same request.
	var f weirmcp.ToolFailure
	if _, isErr := call(t, cs, "query", update, &f); !isErr || f.ApprovalRequestID != id || f.Rule != "review-prod-writes" || !strings.Contains(f.NextStep, "approval_status") {
		t.Fatalf("query before approval: %v %+v", isErr, f)
	}
	var before int
	if err := env.pg.Exec(ctx, "shop", "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	before = orderTotal(t, 42)
	// An approver decides (a person, not the agent) while the agent waits.
	go func() {
		time.Sleep(300 * time.Millisecond)
		if _, err := env.approvals.Approve(context.Background(), id, approval.Approver{Name: "alice", Role: identity.RoleApprover}, "ok"); err != nil {
			t.Error(err)
		}
	}()
	st = weirmcp.ApprovalState{}
	call(t, cs, "approval_status", map[string]any{"id": id, "wait_seconds": 20}, &st)
	if st.Status != "approved" || st.DecidedBy != "alice" || !strings.Contains(st.NextStep, "call query now") {
		t.Fatalf("status after approval: %+v", st)
	}
	// A different parameter is not what was approved.
	other := map[string]any{"target": "shop", "sql": update["sql"], "params": []any{"43"}}
	if _, isErr := call(t, cs, "query", other, nil); !isErr {
		t.Error("the grant applied to another parameter")
	}
	var out weirmcp.QueryResult
	if text, isErr := call(t, cs, "query", update, &out); isErr || out.Command != "UPDATE 1" {
		t.Fatalf("approved query: %v %s %+v", isErr, text, out)
	}
	if got := orderTotal(t, 42); got != before+1 {
		t.Errorf("total %d, want %d", got, before+1)
	}
	st = weirmcp.ApprovalState{}
	call(t, cs, "approval_status", map[string]any{"id": id}, &st)
	if !st.Used {
		t.Errorf("status after use: %+v", st)
	}
	// Single use: the same statement needs approval again.
	f = weirmcp.ToolFailure{}
	if _, isErr := call(t, cs, "query", update, &f); !isErr || f.ApprovalRequestID == id || f.ApprovalRequestID == 0 {
		t.Errorf("second run: %v %+v", isErr, f)
	}
	// What the policy denies cannot be approved; what it allows needs no approval.
	ans = weirmcp.ApprovalAnswer{}
	if _, isErr := call(t, cs, "request_approval", map[string]any{"target": "shop", "sql": "DROP TABLE orders", "justification": "cleanup"}, &ans); !isErr || ans.Status != "denied" || ans.Rule != "no-ddl" {
		t.Errorf("approval of a denied statement: %+v", ans)
	}
	ans = weirmcp.ApprovalAnswer{}
	call(t, cs, "request_approval", map[string]any{"target": "shop", "sql": "SELECT 1", "justification": "x"}, &ans)
	if ans.Status != "not_needed" {
		t.Errorf("approval of an allowed statement: %+v", ans)
	}
	// Another agent cannot read this agent's request.
	rtok, _ := token(t, "reader")
	if text, isErr := call(t, goClient(t, rtok, "e2e-other"), "approval_status", map[string]any{"id": id}, nil); !isErr || !strings.Contains(text, "no approval request") {
		t.Errorf("another agent's status: %s", text)
	}
	// The MCP session's own gateway session shows the tool calls and the
	// agent-requested approval.
	eventually(t, "the tool calls in the audit log", func() bool {
		var sawReq, sawNote bool
		for _, e := range auditEvents(t) {
			d, _ := e["data"].(map[string]any)
			if e["type"] == "command" && d["via"] == "request_approval" && d["decision"] == "review" && d["approval"] == float64(id) {
				sawReq = true
			}
			if e["type"] == "session.note" && d["tool"] == "approval_status" {
				sawNote = true
			}
		}
		return sawReq && sawNote
	})
}

func orderTotal(t *testing.T, id int) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), env.pg.DSN("shop"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT total_cents FROM orders WHERE id = $1", id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestInvalidTokenRefused(t *testing.T) {
	post := func(tok string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, env.url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	good, claims := token(t, "ci-bot")
	revoked, rc := token(t, "ci-bot")
	if err := env.st.RevokeToken(context.Background(), rc.ID, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, tok, body string
	}{
		{"none", "", "no bearer token"},
		{"garbage", "not-a-token", "invalid token"},
		{"tampered", good[:len(good)-4] + "AAAA", "invalid token"},
		{"revoked", revoked, "revoked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := post(tc.tok)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			wa := resp.Header.Get("WWW-Authenticate")
			if want := `resource_metadata="` + env.base + weirmcp.MetadataPath + weirmcp.Path + `"`; !strings.Contains(wa, want) {
				t.Errorf("WWW-Authenticate %q lacks %s", wa, want)
			}
			if !strings.Contains(string(body), tc.body) {
				t.Errorf("body %q lacks %q", body, tc.body)
			}
		})
	}
	if resp := post(good); resp.StatusCode != http.StatusOK {
		t.Errorf("valid token: %d", resp.StatusCode)
	}
	// The metadata the header points at tells a client what to do.
	resp, err := http.Get(env.base + weirmcp.MetadataPath + weirmcp.Path)
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	json.NewDecoder(resp.Body).Decode(&meta)
	resp.Body.Close()
	if meta["resource"] != env.url || !strings.Contains(meta["weir_token_issue"].(string), "weir token issue") {
		t.Errorf("metadata: %v", meta)
	}
	// Refused tokens are audited.
	eventually(t, "auth.refused for MCP", func() bool {
		for _, e := range auditEvents(t) {
			d, _ := e["data"].(map[string]any)
			if e["type"] == "auth.refused" && d["protocol"] == "mcp" && d["token_id"] == rc.ID {
				return true
			}
		}
		return false
	})
	_ = claims
	// The Go SDK client is refused at connect.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := &mcp.StreamableClientTransport{Endpoint: env.url, HTTPClient: &http.Client{Transport: bearerTransport{"bad"}}, MaxRetries: -1}
	if _, err := mcp.NewClient(&mcp.Implementation{Name: "x", Version: "1"}, nil).Connect(ctx, tr, nil); err == nil {
		t.Error("the Go client connected with a bad token")
	}
}

// A token revoked during a session ends the MCP session: the agent must
// come back with a valid token.
func TestRevokedTokenEndsSession(t *testing.T) {
	tok, c := token(t, "ci-bot")
	cs := goClient(t, tok, "e2e-revoke")
	if text, isErr := call(t, cs, "query", map[string]any{"target": "shop", "sql": "SELECT 1"}, nil); isErr {
		t.Fatal(text)
	}
	live := env.mcp.Sessions()
	if err := env.st.RevokeToken(context.Background(), c.ID, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the MCP session to end", func() bool { return env.mcp.Sessions() < live })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "query", Arguments: map[string]any{"target": "shop", "sql": "SELECT 1"}})
	if err == nil && !res.IsError {
		t.Error("a revoked token's session still runs queries")
	}
}

// Calls of one MCP session run concurrently across targets and one at a
// time per target (one PostgreSQL session each), each with its own answer.
func TestConcurrentCalls(t *testing.T) {
	tok, _ := token(t, "ci-bot")
	cs := goClient(t, tok, "e2e-concurrent")
	errs := make(chan error, 16)
	for i := range 16 {
		go func() {
			target := []string{"shop", "other"}[i%2]
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "query", Arguments: map[string]any{"target": target, "sql": "SELECT $1::int * 2 AS n", "params": []any{i}}})
			switch {
			case err != nil:
				errs <- err
			case res.IsError:
				errs <- errors.New(res.Content[0].(*mcp.TextContent).Text)
			default:
				var q weirmcp.QueryResult
				b, _ := json.Marshal(res.StructuredContent)
				json.Unmarshal(b, &q)
				if len(q.Rows) != 1 || *q.Rows[0][0] != strconv.Itoa(i*2) {
					errs <- fmt.Errorf("call %d got %s", i, b)
				} else {
					errs <- nil
				}
			}
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
