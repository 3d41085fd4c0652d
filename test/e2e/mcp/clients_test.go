package mcp

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/weir-gw/weir/internal/approval"
	"github.com/weir-gw/weir/internal/identity"
	weirmcp "github.com/weir-gw/weir/internal/mcp"
)

// repoRoot is the module root (test/e2e/mcp is three levels down).
func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

type tsCall struct {
	Name       string          `json:"name"`
	IsError    bool            `json:"isError"`
	Text       string          `json:"text"`
	Structured json.RawMessage `json:"structured"`
}

// The TypeScript SDK from npm, an independent client implementation, gets
// the same tools, results, masking and refusals.
func TestTypeScriptClient(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not installed (the e2e environment has it): ", err)
	}
	sdk := filepath.Join(repoRoot(t), "tools", "node", "node_modules", "@modelcontextprotocol", "sdk", "dist", "esm")
	if _, err := os.Stat(sdk); err != nil {
		t.Fatalf("the TypeScript MCP SDK is not installed under tools/node (run the deps script): %v", err)
	}
	tok, _ := token(t, "ci-bot")
	calls := []map[string]any{
		{"name": "list_targets", "arguments": map[string]any{}},
		{"name": "query", "arguments": map[string]any{"target": "shop", "sql": "SELECT id, email FROM customers WHERE id = $1", "params": []any{5}}},
		{"name": "query", "arguments": map[string]any{"target": "shop", "sql": "DELETE FROM customers"}},
		{"name": "query", "arguments": map[string]any{"target": "shop", "sql": "SELECT value FROM secrets"}},
	}
	out, outb := runNode(t, sdk, tok, calls)
	if out.Server.Name != "weir" || !slices.Equal(out.Tools, []string{"approval_status", "list_targets", "query", "request_approval"}) || len(out.Calls) != 4 {
		t.Fatalf("TypeScript client saw %s", outb)
	}
	if c := out.Calls[0]; c.IsError || !strings.Contains(c.Text, "shop (postgres; env=prod)") {
		t.Errorf("list_targets: %+v", c)
	}
	var q weirmcp.QueryResult
	json.Unmarshal(out.Calls[1].Structured, &q)
	if c := out.Calls[1]; c.IsError || q.RowCount != 1 || *q.Rows[0][1] != "c****@e*****.com" || strings.Contains(string(outb), "c5@example.com") {
		t.Errorf("allowed, masked query: %+v", c)
	}
	var f weirmcp.ToolFailure
	json.Unmarshal(out.Calls[2].Structured, &f)
	if c := out.Calls[2]; !c.IsError || f.Rule != "review-prod-writes" || f.ApprovalRequestID == 0 || !strings.Contains(c.Text, "Next step:") {
		t.Errorf("write under review: %+v %+v", c, f)
	}
	f = weirmcp.ToolFailure{}
	json.Unmarshal(out.Calls[3].Structured, &f)
	if c := out.Calls[3]; !c.IsError || f.Rule != "no-secrets" || !strings.Contains(c.Text, "the secrets table is off limits") {
		t.Errorf("denied query: %+v", c)
	}
	// The customers are all still there.
	if n := countRows(t, "customers"); n != 50 {
		t.Errorf("%d customers left", n)
	}

	// Approval round trip: the TypeScript client asks, a person approves,
	// the client (a new session, as after a restart) checks and runs it.
	update := map[string]any{"target": "shop", "sql": "UPDATE orders SET total_cents = total_cents + 1 WHERE id = $1", "params": []any{"77"}}
	ask := map[string]any{"justification": "order 77 short by one cent"}
	for k, v := range update {
		ask[k] = v
	}
	out, _ = runNode(t, sdk, tok, []map[string]any{{"name": "request_approval", "arguments": ask}})
	var ans weirmcp.ApprovalAnswer
	json.Unmarshal(out.Calls[0].Structured, &ans)
	if out.Calls[0].IsError || ans.Status != "pending" || ans.ApprovalRequestID == 0 {
		t.Fatalf("request_approval: %+v", out.Calls[0])
	}
	if _, err := env.approvals.Approve(context.Background(), ans.ApprovalRequestID, approval.Approver{Name: "bob", Role: identity.RoleApprover}, "fine"); err != nil {
		t.Fatal(err)
	}
	before := orderTotal(t, 77)
	out, outb = runNode(t, sdk, tok, []map[string]any{
		{"name": "approval_status", "arguments": map[string]any{"id": ans.ApprovalRequestID}},
		{"name": "query", "arguments": update},
	})
	var st weirmcp.ApprovalState
	json.Unmarshal(out.Calls[0].Structured, &st)
	var q2 weirmcp.QueryResult
	json.Unmarshal(out.Calls[1].Structured, &q2)
	if st.Status != "approved" || out.Calls[1].IsError || q2.Command != "UPDATE 1" || orderTotal(t, 77) != before+1 {
		t.Errorf("after approval: %s", outb)
	}
}

type nodeOut struct {
	Server struct{ Name string } `json:"server"`
	Tools  []string              `json:"tools"`
	Calls  []tsCall              `json:"calls"`
	Error  string                `json:"error"`
}

// runNode runs testdata/client.mjs with calls.
func runNode(t *testing.T, sdk, tok string, calls []map[string]any) (nodeOut, []byte) {
	t.Helper()
	arg, _ := json.Marshal(calls)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join("testdata", "client.mjs"), string(arg))
	cmd.Env = append(os.Environ(), "WEIR_MCP_URL="+env.url, "WEIR_TOKEN="+tok, "MCP_SDK="+sdk)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var out nodeOut
	if err := json.Unmarshal(outb, &out); err != nil {
		t.Fatalf("%v: %s", err, outb)
	}
	if out.Error != "" {
		t.Fatalf("TypeScript client: %s", out.Error)
	}
	if len(out.Calls) != len(calls) {
		t.Fatalf("TypeScript client made %d of %d calls: %s", len(out.Calls), len(calls), outb)
	}
	return out, outb
}

func countRows(t *testing.T, table string) int {
	t.Helper()
	var n int
	conn := pgSuper(t)
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// weir serve, built from source, serves MCP on its HTTP listener with TLS;
// `weir mcp` bridges stdio to it for a local agent (the Go SDK's client
// running it as a command), trusting the certificate in data_dir.
func TestServeAndStdioBridge(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "weir")
	build := exec.Command("go", "build", "-o", bin, "./cmd/weir")
	build.Dir = repoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	httpAddr := freeAddr(t)
	cfgPath := filepath.Join(dir, "weir.yaml")
	yml := fmt.Sprintf("data_dir: %s\nlisten:\n  postgres: %s\n  http: %s\n", filepath.Join(dir, "data"), freeAddr(t), httpAddr) + env.cfgYAML
	if err := os.WriteFile(cfgPath, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	var serveLog syncBuffer
	serve := exec.Command(bin, "serve", "--config", cfgPath)
	serve.Stderr = &serveLog
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		serve.Process.Signal(os.Interrupt)
		serve.Wait()
		if strings.Contains(serveLog.String(), upstreamPassword) {
			t.Error("weir serve's log contains the upstream password")
		}
	})
	// weir serve generates its certificate in data_dir; wait for the
	// metadata endpoint over TLS.
	var hc *http.Client
	eventually(t, "weir serve to answer over TLS", func() bool {
		pem, err := os.ReadFile(filepath.Join(dir, "data", "tls", "server.crt"))
		if err != nil {
			return false
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		hc = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second}
		resp, err := hc.Get("https://" + httpAddr + weirmcp.MetadataPath)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	resp, err := hc.Post("https://"+httpAddr+weirmcp.Path, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "https://"+httpAddr+weirmcp.MetadataPath+weirmcp.Path) {
		t.Errorf("no token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	issue := func(args ...string) string {
		out, err := exec.Command(bin, append([]string{"token", "issue", "--config", cfgPath, "--agent", "ci-bot"}, args...)...).Output()
		if err != nil {
			t.Fatalf("token issue: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	tok := issue()
	// The ready-made client config names both ways in.
	var cfgJSON struct {
		MCPServers map[string]struct {
			Command string            `json:"command"`
			Args    []string          `json:"args"`
			Env     map[string]string `json:"env"`
			URL     string            `json:"url"`
			Headers map[string]string `json:"headers"`
		} `json:"mcpServers"`
	}
	if err := json.Unmarshal([]byte(issue("--format", "mcp-json")), &cfgJSON); err != nil {
		t.Fatalf("--format mcp-json: %v", err)
	}
	if s := cfgJSON.MCPServers["weir"]; s.Command != "weir" || s.Args[0] != "mcp" || s.Env["WEIR_TOKEN"] == "" {
		t.Errorf("stdio config: %+v", s)
	}
	if s := cfgJSON.MCPServers["weir-http"]; s.URL != "https://"+httpAddr+"/mcp" || !strings.HasPrefix(s.Headers["Authorization"], "Bearer ") {
		t.Errorf("http config: %+v", s)
	}

	connect := func(token string) (*mcp.ClientSession, *syncBuffer, error) {
		var stderr syncBuffer
		cmd := exec.Command(bin, "mcp", "--config", cfgPath)
		cmd.Env = append(os.Environ(), "WEIR_TOKEN="+token)
		cmd.Stderr = &stderr
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "e2e-stdio", Version: "0.1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
		return cs, &stderr, err
	}
	cs, stderr, err := connect(tok)
	if err != nil {
		t.Fatalf("connect through weir mcp: %v\n%s", err, stderr.String())
	}
	defer cs.Close()
	tools, err := cs.ListTools(context.Background(), nil)
	if err != nil || len(tools.Tools) != 4 {
		t.Fatalf("tools through the bridge: %v %v", err, tools)
	}
	var q weirmcp.QueryResult
	if text, isErr := call(t, cs, "query", map[string]any{"target": "shop", "sql": "SELECT email FROM customers WHERE id = 2"}, &q); isErr || *q.Rows[0][0] != "c****@e*****.com" {
		t.Errorf("query through the bridge: %s %+v", text, q)
	}
	var f weirmcp.ToolFailure
	if _, isErr := call(t, cs, "query", map[string]any{"target": "shop", "sql": "DROP TABLE orders"}, &f); !isErr || f.Rule != "no-ddl" {
		t.Errorf("denied through the bridge: %+v", f)
	}
	weirEnv := func(env []string, args ...string) string {
		cmd := exec.Command(bin, append(args, "--config", cfgPath)...)
		cmd.Env = append(os.Environ(), env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("weir %v: %v\n%s", args, err, stderr.String())
		}
		return string(out)
	}
	weir := func(args ...string) string { return weirEnv(nil, args...) }
	// The agent asks for approval; a person sees it with `weir approvals`
	// like any held request, approves it, and the agent's query runs once.
	update := map[string]any{"target": "shop", "sql": "UPDATE orders SET total_cents = total_cents + 1 WHERE id = $1", "params": []any{"150"}}
	ask := map[string]any{"justification": "order 150: refund the rounding error (DEMO-9)"}
	for k, v := range update {
		ask[k] = v
	}
	var ans weirmcp.ApprovalAnswer
	if text, isErr := call(t, cs, "request_approval", ask, &ans); isErr || ans.ApprovalRequestID == 0 {
		t.Fatalf("request_approval through the bridge: %s", text)
	}
	id := fmt.Sprint(ans.ApprovalRequestID)
	admin := []string{"WEIR_ADMIN_TOKEN=" + strings.TrimSpace(weir("admin", "token", "issue", "--name", "alice", "--role", "approver"))}
	if list := weirEnv(admin, "approvals", "list"); !strings.Contains(list, "UPDATE orders SET total_cents") {
		t.Errorf("weir approvals list:\n%s", list)
	}
	if show := weirEnv(admin, "approvals", "show", id); !strings.Contains(show, "agent_justification=order 150: refund the rounding error (DEMO-9)") ||
		!strings.Contains(show, "mcp_client_name=e2e-stdio") {
		t.Errorf("weir approvals show:\n%s", show)
	}
	weirEnv(admin, "approvals", "approve", id, "--reason", "checked")
	before := orderTotal(t, 150)
	var uq weirmcp.QueryResult
	if text, isErr := call(t, cs, "query", update, &uq); isErr || uq.Command != "UPDATE 1" || orderTotal(t, 150) != before+1 {
		t.Errorf("approved query through the bridge: %s %+v", text, uq)
	}

	// The operator sees both sessions of this MCP session: the SQL in the
	// PostgreSQL one, the tool calls in the agent one.
	cs.Close()
	var lastReplay string
	defer func() {
		if t.Failed() {
			t.Logf("sessions:\n%s\nreplays:\n%s", weir("sessions", "list"), lastReplay)
		}
	}()
	eventually(t, "weir replay to show the MCP sessions, ended", func() bool {
		var ids []string
		for _, line := range strings.Split(weir("sessions", "list"), "\n") {
			if strings.Contains(line, "mcp_client_name=e2e-stdio") && !strings.Contains(line, " live ") {
				ids = append(ids, strings.Fields(line)[0])
			}
		}
		var all strings.Builder
		for _, id := range ids {
			all.WriteString(weir("replay", id))
		}
		r := all.String()
		lastReplay = r
		return len(ids) == 2 && strings.Contains(r, "via mcp") && strings.Contains(r, "DENY by rule \"no-ddl\"") &&
			strings.Contains(r, "allowed by rule \"review-prod-writes (approved)\"") &&
			strings.Contains(r, "tool query") && strings.Contains(r, "rule=no-ddl") && strings.Contains(r, "masked 1 email")
	})
	// A refused token ends the bridge with weir's reason.
	_, stderr, err = connect(tok[:len(tok)-3] + "xyz")
	if err == nil {
		t.Fatal("a bad token connected through the bridge")
	}
	eventually(t, "the bridge to explain the refusal", func() bool {
		return strings.Contains(stderr.String(), "weir refused the token (401)")
	})

	// weir serve gave its MCP server the Blob front end it mounted: an
	// agent with an azure-blob target reads through it, masked.
	lakeTok, err := exec.Command(bin, "token", "issue", "--config", cfgPath, "--agent", "lake-bot").Output()
	if err != nil {
		t.Fatalf("token issue: %v", err)
	}
	lcs, stderr, err := connect(strings.TrimSpace(string(lakeTok)))
	if err != nil {
		t.Fatalf("connect lake-bot through weir mcp: %v\n%s", err, stderr.String())
	}
	defer lcs.Close()
	var r weirmcp.BlobReadResult
	if text, isErr := call(t, lcs, "blob_read", map[string]any{"target": "lake", "container": "reports", "blob": "customers.csv"}, &r); isErr ||
		!strings.Contains(r.Text, "Ada Lovelace") || strings.Contains(text, "ada@example.com") || strings.Contains(text, "4111 1111 1111 1111") {
		t.Errorf("blob_read through weir serve: %s", text)
	}
	var bf weirmcp.BlobFailure
	if text, isErr := call(t, lcs, "blob_write", map[string]any{"target": "lake", "container": "reports", "blob": "x.txt", "content": "x"}, &bf); !isErr || bf.Rule != "blob-writes-elsewhere" {
		t.Errorf("refused blob_write through weir serve: %s", text)
	}
}

// The config snippets in docs/mcp.md are valid JSON, so users can paste them.
func TestDocsSnippetsParse(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "mcp.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(doc), "```json\n")[1:]
	if len(blocks) < 2 {
		t.Fatalf("docs/mcp.md has %d JSON snippets", len(blocks))
	}
	for _, b := range blocks {
		snippet, _, _ := strings.Cut(b, "```")
		var v map[string]any
		if err := json.Unmarshal([]byte(snippet), &v); err != nil {
			t.Errorf("snippet does not parse: %v\n%s", err, snippet)
		}
		if v["mcpServers"] == nil && v["servers"] == nil {
			t.Errorf("snippet names no MCP servers:\n%s", snippet)
		}
	}
}
