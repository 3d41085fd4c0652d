package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/proxy/postgres"
)

// Result caps: what one query call returns to the model. The whole result
// still flows through weir (masked, recorded); only the tool's answer is
// cut, with a continuation hint.
const (
	defaultMaxRows = 100
	maxMaxRows     = 1000
	maxResultBytes = 64 << 10
	maxParams      = 100
	maxCellText    = 200 // per cell in the text table; structured content keeps the value
)

type queryIn struct {
	Target  string `json:"target" jsonschema:"the PostgreSQL target to run on (see list_targets)"`
	SQL     string `json:"sql" jsonschema:"the SQL to run; several statements may be separated by semicolons when params is empty"`
	Params  []any  `json:"params,omitempty" jsonschema:"values for $1, $2, ... placeholders (strings, numbers, booleans or null); sent as text, so pass large numbers as strings"`
	MaxRows int    `json:"max_rows,omitempty" jsonschema:"at most this many rows are returned (default 100, at most 1000); more rows are reported as truncated"`
}

// QueryResult is the structured content of a successful query.
type QueryResult struct {
	Target  string   `json:"target"`
	Columns []string `json:"columns"`
	// Rows hold text values as PostgreSQL prints them; null is SQL NULL.
	// Values weir masked arrive masked.
	Rows [][]*string `json:"rows"`
	// RowCount is how many rows the statement returned (or changed), all of
	// them, also when Rows was cut.
	RowCount  int64  `json:"row_count"`
	Truncated bool   `json:"truncated"`
	Command   string `json:"command"`
	// Statements are the command tags of every statement run ("BEGIN",
	// "UPDATE 3"), when the SQL held several.
	Statements   []string `json:"statements,omitempty"`
	Continuation string   `json:"continuation,omitempty"`
}

// ToolFailure is the structured content of a refused or failed call.
type ToolFailure struct {
	Error    string `json:"error"`
	SQLState string `json:"sqlstate,omitempty"`
	// Rule is the policy rule that refused it ("default-deny" when none
	// allowed it, "weir" for what weir refuses on its own).
	Rule string `json:"rule,omitempty"`
	// RuleAction is the rule's action: deny or review.
	RuleAction string `json:"rule_action,omitempty"`
	// ApprovalRequestID is the approval request opened or waiting for it.
	ApprovalRequestID int64  `json:"approval_request_id,omitempty"`
	Reference         string `json:"reference,omitempty"`
	NextStep          string `json:"next_step"`
}

const queryDescription = `Run SQL on a PostgreSQL target through weir, exactly as if the agent used psql: weir classifies every statement, decides with the policy, holds or refuses what needs a human's approval, records it in the audit log and masks sensitive values in the results.
What the policy allows differs per deployment and target: call list_targets first (often reads are allowed, writes to production need approval, schema changes and risky functions are denied, but list_targets says what holds here).
To stay inside the policy: send one clear statement at a time, with $1, $2 placeholders and params for values; add LIMIT (and ORDER BY with OFFSET to page through large results). Results are capped at max_rows rows and 64 KiB; row_count tells how many there were.
If a statement needs approval: call request_approval with the same target, sql and params and a justification, follow it with approval_status, then call query again with exactly the same sql and params. A denied statement is denied again if retried unchanged. Statements run in one session per target for this MCP session (BEGIN/COMMIT span calls).`

func registerQuery(s *Server) {
	AddTool(s, &mcp.Tool{Name: "query", Title: "Run SQL through weir", Description: queryDescription,
		Annotations: &mcp.ToolAnnotations{OpenWorldHint: ptr(false)}}, s.query)
}

func ptr[T any](v T) *T { return &v }

func (s *Server) query(ctx context.Context, a *AgentSession, in queryIn) (*mcp.CallToolResult, any) {
	t, fail := s.sqlTarget(a, in.Target)
	if fail != nil {
		a.Note("query", map[string]any{"target": in.Target, "outcome": "refused", "reason": fail.Error})
		return failure(fail)
	}
	params, err := textParams(in.Params)
	if err != nil {
		return failure(&ToolFailure{Error: err.Error(), NextStep: "fix params and call query again"})
	}
	maxRows := in.MaxRows
	switch {
	case maxRows <= 0:
		maxRows = defaultMaxRows
	case maxRows > maxMaxRows:
		maxRows = maxMaxRows
	}
	if strings.TrimSpace(in.SQL) == "" {
		return failure(&ToolFailure{Error: "sql is empty", NextStep: "send a SQL statement"})
	}
	p, err := a.pipe(ctx, t.Name)
	if err != nil {
		a.Note("query", map[string]any{"target": t.Name, "outcome": "connect_failed"})
		return failure(s.explain(err))
	}
	res, err := p.run(ctx, in.SQL, params, in.Params != nil, maxRows)
	if err != nil {
		if p.dead.Load() {
			a.dropPipe(t.Name, p)
		}
		f := s.explain(err)
		note := map[string]any{"target": t.Name, "outcome": "failed", "sqlstate": f.SQLState}
		if f.Reference != "" {
			// Refused by weir: the reference names the command's record
			// in the target's session.
			note["outcome"], note["rule"], note["reference"] = "refused", f.Rule, f.Reference
			if f.ApprovalRequestID != 0 {
				note["approval_id"] = f.ApprovalRequestID
			}
		}
		a.Note("query", note)
		return failure(f)
	}
	res.Target = t.Name
	a.Note("query", map[string]any{"target": t.Name, "outcome": "ok", "rows": res.RowCount, "truncated": res.Truncated})
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: renderTable(res)}}}, res
}

func failure(f *ToolFailure) (*mcp.CallToolResult, any) {
	text := f.Error
	if f.NextStep != "" {
		text += "\nNext step: " + f.NextStep
	}
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: text}}}, f
}

// sqlTarget checks that target is one of the token's PostgreSQL targets.
func (s *Server) sqlTarget(a *AgentSession, name string) (*config.Target, *ToolFailure) {
	t, ok := s.opts.Gateway.Config().Target(name)
	if !ok || !a.Claims.AllowsTarget(name) {
		return nil, &ToolFailure{Error: fmt.Sprintf("weir: %q is not one of your targets", name), NextStep: "call list_targets to see your targets"}
	}
	if t.Kind != config.KindPostgres || s.opts.Postgres == nil {
		return nil, &ToolFailure{Error: fmt.Sprintf("weir: target %q is a %s target; query runs SQL on PostgreSQL targets only", name, t.Kind), NextStep: "call list_targets to see which tools fit each target"}
	}
	return t, nil
}

// textParams turns JSON values into PostgreSQL text parameters, the form
// the approval grant is bound to (nil = NULL).
func textParams(vals []any) ([][]byte, error) {
	if len(vals) > maxParams {
		return nil, fmt.Errorf("weir: at most %d params", maxParams)
	}
	out := make([][]byte, len(vals))
	for i, v := range vals {
		switch v := v.(type) {
		case nil:
			out[i] = nil
		case string:
			out[i] = []byte(v)
		case bool:
			out[i] = []byte(strconv.FormatBool(v))
		case float64:
			out[i] = []byte(strconv.FormatFloat(v, 'f', -1, 64))
		case json.Number:
			out[i] = []byte(v.String())
		default:
			b, err := json.Marshal(v)
			if err != nil {
				return nil, fmt.Errorf("weir: params[%d]: %v", i, err)
			}
			out[i] = b // objects and arrays as JSON text (for json/jsonb parameters)
		}
	}
	return out, nil
}

// pgPipe is one in-process PostgreSQL connection from an MCP session to
// weir's own PostgreSQL front end.
type pgPipe struct {
	mu   sync.Mutex // a PgConn runs one thing at a time
	conn *pgconn.PgConn
	// dead is set when a call found the connection closed (cancelled,
	// ended by weir); the next call connects again.
	dead atomic.Bool
}

func (p *pgPipe) close() {
	if !p.mu.TryLock() {
		// A call is running (maybe held for approval): closing the pipe
		// under it ends it; the PgConn itself is the running call's.
		p.conn.Conn().Close()
		return
	}
	defer p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p.conn.Close(ctx)
}

func (a *AgentSession) dropPipe(target string, p *pgPipe) {
	a.mu.Lock()
	if a.pipes[target] == p {
		delete(a.pipes, target)
	}
	a.mu.Unlock()
	p.close()
}

// pipe returns the session's connection to target, connecting it first:
// the front end authenticates it with the agent's own token, as psql's.
func (a *AgentSession) pipe(ctx context.Context, target string) (*pgPipe, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, errors.New("weir: this MCP session has ended")
	}
	if p := a.pipes[target]; p != nil && !p.dead.Load() {
		return p, nil
	}
	cfg, err := pgconn.ParseConfig("host=weir-internal port=5432 sslmode=disable connect_timeout=30")
	if err != nil {
		return nil, err
	}
	cfg.User, cfg.Password, cfg.Database = a.Claims.Agent, a.token, target
	cfg.Fallbacks = nil
	// The "host" is a name for the pipe, never looked up.
	cfg.LookupFunc = func(_ context.Context, host string) ([]string, error) { return []string{host}, nil }
	srv := a.srv.opts.Postgres
	ic := postgres.InternalClient{Protocol: Protocol, ClientAddr: a.addr, Claimed: a.claimed}
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		client, server := net.Pipe()
		go srv.ServeInternal(server, ic)
		return client, nil
	}
	// The internal client speaks no cancel request: pgconn's default on a
	// cancelled call (a deadline on the pipe) closes the connection, and
	// the next call connects again.
	conn, err := pgconn.ConnectConfig(context.WithoutCancel(ctx), cfg)
	if err != nil {
		return nil, err
	}
	p := &pgPipe{conn: conn}
	a.pipes[target] = p
	return p, nil
}

var (
	ruleRe     = regexp.MustCompile(`\brule "([^"]+)"`)
	approvalRe = regexp.MustCompile(`(?i)approval request (\d+)|waiting for approval \(request (\d+)`)
)

// explain turns what the PostgreSQL front end said into a failure the
// model can act on.
func (s *Server) explain(err error) *ToolFailure {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		s.log.Warn("mcp query failed", "err", err)
	}
	return explainError(err, s.opts.Gateway.Config().Policy.Rules)
}

// explainError reads the rule, the approval request and the reference out
// of the front end's error (its message is written for agents, with the
// rule quoted) and says what to do next.
func explainError(err error, rules []config.Rule) *ToolFailure {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return &ToolFailure{Error: "weir: the call was cancelled before it finished; the connection was closed (an open transaction was rolled back)", NextStep: "call query again if needed"}
		}
		return &ToolFailure{Error: "weir: the connection to the target failed", NextStep: "call query again; if it keeps failing, ask the weir operator (weir's log has the cause)"}
	}
	f := &ToolFailure{Error: pe.Message, SQLState: pe.Code}
	if !strings.HasPrefix(pe.Hint, "weir session ") {
		// The database's own error (syntax, missing table, constraint);
		// weir allowed the statement and the server refused it.
		if pe.Detail != "" {
			f.Error += " (" + pe.Detail + ")"
		}
		if pe.Hint != "" {
			f.Error += " Hint: " + pe.Hint
		}
		if pe.Severity == "FATAL" {
			// A refused or ended connection: weir's front end said it
			// (login refused, token revoked, upstream unreachable).
			f.Error = "weir: the connection to the target was refused or ended: " + f.Error
			f.NextStep = "check the target name and your token (list_targets); a revoked or expired token needs a new one"
			return f
		}
		f.Error = "PostgreSQL: " + f.Error
		f.NextStep = "fix the statement and call query again"
		return f
	}
	f.Reference = pe.Hint
	if m := ruleRe.FindStringSubmatch(pe.Message); m != nil {
		f.Rule = strings.TrimSuffix(m[1], " (approved)")
	} else if strings.Contains(pe.Message, "default deny") {
		f.Rule = "default-deny"
	} else {
		f.Rule = "weir"
	}
	for _, r := range rules {
		if r.Name == f.Rule {
			f.RuleAction = r.Action
		}
	}
	if m := approvalRe.FindStringSubmatch(pe.Message); m != nil {
		id := m[1]
		if id == "" {
			id = m[2]
		}
		f.ApprovalRequestID, _ = strconv.ParseInt(id, 10, 64)
	}
	switch {
	case f.ApprovalRequestID != 0:
		f.NextStep = fmt.Sprintf("a person must approve request %d (weir approvals approve %d). Check it with approval_status {\"id\": %d, \"wait_seconds\": 30}; once it is approved, call query again with exactly the same sql and params (it runs once). Do not retry before.", f.ApprovalRequestID, f.ApprovalRequestID, f.ApprovalRequestID)
	case f.RuleAction == "review":
		f.NextStep = "this statement needs a person's approval: call request_approval with the same target, sql and params and a justification"
	case f.Rule == "weir":
		f.NextStep = "weir refused this on its own (see the error); change the statement as it says"
	default:
		f.NextStep = "do not retry it unchanged: a denied statement cannot be approved. Change it so the policy allows it (list_targets summarises the policy), or tell the user you lack access"
	}
	return f
}

// run executes sql: with params through the extended protocol (one
// statement), without through a simple query (several allowed).
func (p *pgPipe) run(ctx context.Context, sql string, params [][]byte, extended bool, maxRows int) (_ *QueryResult, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer func() {
		if err != nil && p.conn.IsClosed() {
			p.dead.Store(true)
		}
	}()
	res := &QueryResult{Columns: []string{}, Rows: [][]*string{}}
	budget := maxResultBytes
	read := func(rr *pgconn.ResultReader) (pgconn.CommandTag, error) {
		fds := rr.FieldDescriptions()
		if len(fds) > 0 || res.Command == "" {
			// A new result set with columns replaces the previous one:
			// the model sees the last rows returned.
			res.Columns = res.Columns[:0]
			res.Rows = res.Rows[:0]
			res.Truncated = false
			budget = maxResultBytes
			for _, fd := range fds {
				res.Columns = append(res.Columns, fd.Name)
			}
		}
		var n int64
		for rr.NextRow() {
			n++
			if len(res.Rows) >= maxRows || budget <= 0 {
				res.Truncated = true
				continue // drain: the front end records and masks the rest
			}
			vals := rr.Values()
			row := make([]*string, len(vals))
			for i, v := range vals {
				if v != nil {
					s := string(v)
					row[i] = &s
					budget -= len(v)
				}
			}
			res.Rows = append(res.Rows, row)
		}
		tag, err := rr.Close()
		if err == nil && len(fds) > 0 {
			res.RowCount = n
		} else if err == nil {
			res.RowCount = tag.RowsAffected()
		}
		return tag, err
	}
	if extended {
		tag, err := read(p.conn.ExecParams(ctx, sql, params, nil, nil, nil))
		if err != nil {
			return nil, err
		}
		res.Command = tag.String()
	} else {
		mrr := p.conn.Exec(ctx, sql)
		for mrr.NextResult() {
			tag, err := read(mrr.ResultReader())
			if err != nil {
				mrr.Close()
				return nil, err
			}
			res.Command = tag.String()
			res.Statements = append(res.Statements, tag.String())
		}
		if err := mrr.Close(); err != nil {
			return nil, err
		}
		if len(res.Statements) < 2 {
			res.Statements = nil
		}
	}
	if res.Truncated {
		res.Continuation = fmt.Sprintf("only %d of %d rows are shown; to see more, add ORDER BY and LIMIT/OFFSET to the SQL (e.g. OFFSET %d), or narrow the WHERE clause", len(res.Rows), res.RowCount, len(res.Rows))
	}
	return res, nil
}

// renderTable writes the result as a psql-like text table for the model.
func renderTable(r *QueryResult) string {
	var b strings.Builder
	if len(r.Columns) > 0 {
		cells := make([][]string, 0, len(r.Rows)+1)
		head := make([]string, len(r.Columns))
		for i, c := range r.Columns {
			head[i] = cellText(c)
		}
		cells = append(cells, head)
		for _, row := range r.Rows {
			line := make([]string, len(row))
			for i, v := range row {
				switch {
				case v == nil:
					line[i] = "NULL"
				default:
					line[i] = cellText(*v)
				}
			}
			cells = append(cells, line)
		}
		width := make([]int, len(r.Columns))
		for _, line := range cells {
			for i, c := range line {
				if i < len(width) {
					width[i] = max(width[i], utf8.RuneCountInString(c))
				}
			}
		}
		for li, line := range cells {
			for i, c := range line {
				if i > 0 {
					b.WriteString(" | ")
				}
				b.WriteString(c)
				if i < len(line)-1 {
					b.WriteString(strings.Repeat(" ", width[i]-utf8.RuneCountInString(c)))
				}
			}
			b.WriteByte('\n')
			if li == 0 {
				for i, w := range width {
					if i > 0 {
						b.WriteString("-+-")
					}
					b.WriteString(strings.Repeat("-", w))
				}
				b.WriteByte('\n')
			}
		}
		fmt.Fprintf(&b, "(%d row%s", r.RowCount, plural(r.RowCount))
		if r.Truncated {
			fmt.Fprintf(&b, ", %d shown", len(r.Rows))
		}
		b.WriteString(")\n")
	} else {
		fmt.Fprintf(&b, "%s\n", r.Command)
	}
	if len(r.Statements) > 1 {
		fmt.Fprintf(&b, "statements: %s\n", strings.Join(r.Statements, "; "))
	}
	if r.Continuation != "" {
		b.WriteString(r.Continuation + "\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

func plural(n int64) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// cellText keeps the table readable: one line per row, long values cut.
func cellText(s string) string {
	s = strings.NewReplacer("\r\n", `\n`, "\n", `\n`, "\r", `\r`, "\t", " ").Replace(s)
	if utf8.RuneCountInString(s) > maxCellText {
		r := []rune(s)
		return string(r[:maxCellText]) + "…"
	}
	return s
}
