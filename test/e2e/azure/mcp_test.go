package azure

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The MCP tool azure_request, called with the real Go MCP SDK client over
// streamable HTTP on the served /mcp, goes through the same Azure HTTPS
// proxy as az: the fake ARM/Key Vault behind it (bodies from the REST API
// specifications' examples, see harness_test.go) must see exactly what the
// policy allowed, with weir's Entra token, and the model must see only
// masked answers and refusals it can act on.

type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	// The MCP endpoint is weir's own listener: never through a proxy.
	tr := &http.Transport{Proxy: nil}
	return tr.RoundTrip(r)
}

func mcpClient(t testing.TB, token string) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := &mcp.StreamableClientTransport{Endpoint: "http://" + w.httpAddr + "/mcp", HTTPClient: &http.Client{Transport: bearer{token}}, MaxRetries: -1}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "azure-e2e", Version: "1.0.0"}, nil).Connect(ctx, tr, nil)
	if err != nil {
		t.Fatalf("connecting to weir's MCP endpoint: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// mcpResult is what the tools return, failures and answers alike.
type mcpResult struct {
	Status            int               `json:"status"`
	Body              string            `json:"body"`
	Truncated         bool              `json:"truncated"`
	NextOffset        int64             `json:"next_offset"`
	NextLink          string            `json:"next_link"`
	TotalBytes        int               `json:"total_bytes"`
	Headers           map[string]string `json:"headers"`
	Error             string            `json:"error"`
	Code              string            `json:"code"`
	Rule              string            `json:"rule"`
	RuleAction        string            `json:"rule_action"`
	ApprovalRequestID int64             `json:"approval_request_id"`
	NextStep          string            `json:"next_step"`
}

func callTool(t testing.TB, cs *mcp.ClientSession, tool string, args map[string]any) (mcpResult, string, bool) {
	t.Helper()
	var out mcpResult
	text, isErr := callInto(t, cs, tool, args, &out)
	return out, text, isErr
}

func callInto(t testing.TB, cs *mcp.ClientSession, tool string, args map[string]any, out any) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	var text strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			text.WriteString(tc.Text)
		}
	}
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s: structured content %s: %v", tool, b, err)
	}
	return text.String(), res.IsError
}

func sameJSON(t *testing.T, got string, want []byte) bool {
	t.Helper()
	var g, w any
	if json.Unmarshal([]byte(got), &g) != nil || json.Unmarshal(want, &w) != nil {
		return false
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	return string(gb) == string(wb)
}

func TestMCPAzureRequest(t *testing.T) {
	tok := issueToken(t, "ci-bot")
	cs := mcpClient(t, tok)
	sub := "/subscriptions/" + subID

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(tools.Tools, func(tl *mcp.Tool) bool { return tl.Name == "azure_request" })
	if i < 0 {
		t.Fatal("azure_request is not offered to an agent with ARM targets")
	}
	if d := tools.Tools[i].Description; !strings.Contains(d, "masked") || !strings.Contains(d, "approval_status") {
		t.Fatalf("the description does not tell a model about masking and approvals: %s", d)
	}
	// A tool to run SQL or blobs makes no sense here; ARM's does.
	if slices.ContainsFunc(tools.Tools, func(tl *mcp.Tool) bool { return tl.Name == "blob_read" }) {
		t.Fatal("blob tools are offered to an agent without azure-blob targets")
	}

	t.Run("list_targets says what the policy does with typical Azure requests", func(t *testing.T) {
		var lt struct {
			Targets []struct {
				Name    string   `json:"name"`
				Tools   []string `json:"tools"`
				Typical []struct{ What, Verdict, Rule string }
			} `json:"targets"`
		}
		text, isErr := callInto(t, cs, "list_targets", nil, &lt)
		if isErr || len(lt.Targets) != 3 {
			t.Fatalf("list_targets: %s", text)
		}
		verdicts := map[string]string{}
		for _, tg := range lt.Targets {
			if !slices.Contains(tg.Tools, "azure_request") {
				t.Fatalf("list_targets does not name azure_request for %s: %s", tg.Name, text)
			}
			for _, v := range tg.Typical {
				verdicts[tg.Name+": "+v.What] = v.Verdict + " (" + v.Rule + ")"
			}
		}
		for what, want := range map[string]string{
			"arm: read (GET of a resource group in example-rg)":     "allowed (arm-reads)",
			"arm: write (PUT of a storage account in example-rg)":   "denied (default-deny)",
			"arm: secret read (listKeys of a storage account)":      "needs approval (review-secret-reads)",
			"arm: role assignment (PUT of a roleAssignment)":        "denied (no-role-assignments)",
			"vault: read a secret (its value comes back masked)":    "allowed (keyvault-reads)",
			"vault: read a secret with reveal (its value unmasked)": "needs approval (reveal-needs-approval)",
		} {
			if verdicts[what] != want {
				t.Errorf("%s: %q, want %q\n%s", what, verdicts[what], want, text)
			}
		}
		if !strings.Contains(text, "needs approval (rule review-secret-reads)") || !strings.Contains(text, "azure_request takes no request_approval") {
			t.Errorf("the summary does not show the typical verdicts:\n%s", text)
		}
	})

	t.Run("allowed read returns the spec example", func(t *testing.T) {
		res, text, isErr := callTool(t, cs, "azure_request", map[string]any{"target": "arm", "method": "GET",
			"path": sub + "/resourcegroups/my-resource-group?api-version=2022-09-01"})
		if isErr || res.Status != 200 || !sameJSON(t, res.Body, readTestdata("resourcegroup.json")) {
			t.Fatalf("GET resource group: error=%v %+v\n%s", isErr, res, text)
		}
		got, ok := w.fake.last("/resourcegroups/my-resource-group")
		if !ok || got.Header.Get("Authorization") != "Bearer "+armToken || got.Header.Get("User-Agent") == "" {
			t.Fatalf("the fake ARM did not get the read with weir's Entra token: %+v", got)
		}
	})

	t.Run("a cut answer continues at next_offset", func(t *testing.T) {
		args := map[string]any{"target": "arm", "method": "GET", "path": sub + "/resourcegroups/my-resource-group?api-version=2022-09-01", "max_bytes": 40}
		var whole strings.Builder
		for n := 0; ; n++ {
			res, text, isErr := callTool(t, cs, "azure_request", args)
			if isErr || n > 20 {
				t.Fatalf("window %d: %v %s", n, isErr, text)
			}
			whole.WriteString(res.Body)
			if !res.Truncated {
				break
			}
			if !strings.Contains(text, "offset "+strconv.FormatInt(res.NextOffset, 10)) {
				t.Fatalf("a cut answer does not say how to continue: %s", text)
			}
			args["offset"] = res.NextOffset
		}
		if !sameJSON(t, whole.String(), readTestdata("resourcegroup.json")) {
			t.Fatalf("the windows do not add up to the answer: %s", whole.String())
		}
	})

	t.Run("next_link is followed on the same target", func(t *testing.T) {
		res, text, isErr := callTool(t, cs, "azure_request", map[string]any{"target": "arm", "method": "GET",
			"path": sub + "/resourcegroups?api-version=2022-09-01&$skiptoken=own"})
		if isErr || res.NextLink == "" || !strings.Contains(text, res.NextLink) {
			t.Fatalf("no next_link: %v %+v\n%s", isErr, res, text)
		}
		u, err := url.Parse(res.NextLink)
		if err != nil || u.Host != "management.azure.com" {
			t.Fatalf("next_link %q is not the host the agent uses", res.NextLink)
		}
		before := w.fake.count("skiptoken=2")
		res, text, isErr = callTool(t, cs, "azure_request", map[string]any{"target": "arm", "method": "GET", "path": res.NextLink})
		if isErr || res.Status != 200 || !strings.Contains(res.Body, "my-resource-group") || w.fake.count("skiptoken=2") != before+1 {
			t.Fatalf("following next_link: %v %+v\n%s", isErr, res, text)
		}
		// A link to another host is refused by the proxy, and by the tool
		// before it is sent.
		res, text, isErr = callTool(t, cs, "azure_request", map[string]any{"target": "arm", "method": "GET",
			"path": sub + "/resourcegroups?api-version=2022-09-01&$skiptoken=foreign"})
		if !isErr || res.Code != "WeirUpstreamRefused" || strings.Contains(text, "evil.example.net") {
			t.Fatalf("foreign nextLink: %v %+v\n%s", isErr, res, text)
		}
		_, text, isErr = callTool(t, cs, "azure_request", map[string]any{"target": "arm", "method": "GET",
			"path": "https://evil.example.net" + sub + "/resourcegroups?api-version=2022-09-01"})
		if !isErr || !strings.Contains(text, "not a URL of this target") {
			t.Fatalf("a URL of another host was not refused: %s", text)
		}
	})

	t.Run("role assignment write is denied by its rule", func(t *testing.T) {
		path := sub + "/resourceGroups/rg-dev/providers/Microsoft.Authorization/roleAssignments/5f8d2b7c-7f1e-4d41-9d6c-2a1c3e7b9a10?api-version=2022-04-01"
		res, text, isErr := callTool(t, cs, "azure_request", map[string]any{"target": "arm", "method": "PUT", "path": path,
			"body": map[string]any{"properties": map[string]any{
				"roleDefinitionId": sub + "/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7",
				"principalId":      "8f70baf1-1f6e-46a2-a1ff-238dac1ebfb7"}}})
		if !isErr || res.Rule != "no-role-assignments" || res.RuleAction != "deny" || !strings.Contains(text, "no-role-assignments") ||
			!strings.Contains(res.NextStep, "do not retry") || res.ApprovalRequestID != 0 {
			t.Fatalf("role assignment: %v %+v\n%s", isErr, res, text)
		}
		if w.fake.saw("5f8d2b7c-7f1e-4d41-9d6c-2a1c3e7b9a10") {
			t.Fatal("a denied role assignment reached ARM")
		}
	})

	t.Run("malformed request is refused before any rule", func(t *testing.T) {
		res, text, isErr := callTool(t, cs, "azure_request", map[string]any{"target": "arm", "method": "GET",
			"path": sub + "/resourcegroups?api-version=2022-09-01&api-version=2021-04-01"})
		if !isErr || res.Rule != "weir" || !strings.Contains(text, "api-version") || res.Status != 400 {
			t.Fatalf("two api-versions: %v %+v\n%s", isErr, res, text)
		}
		_, text, isErr = callTool(t, cs, "azure_request", map[string]any{"target": "arm", "method": "GET", "path": sub + "/resourcegroups"})
		if !isErr || !strings.Contains(text, "api-version") {
			t.Fatalf("no api-version: %v %s", isErr, text)
		}
	})

	t.Run("listKeys needs approval, then returns masked keys", func(t *testing.T) {
		// Its own resource group and spelling (ARM is case-insensitive), so
		// the az tests' "listKeys never reached ARM" checks are not ours.
		path := sub + "/resourceGroups/rg-mcp/providers/Microsoft.Storage/storageAccounts/sto2220/listkeys?api-version=2022-09-01"
		args := map[string]any{"target": "arm", "method": "POST", "path": path}
		before := w.fake.count("/rg-mcp/")
		res, text, isErr := callTool(t, cs, "azure_request", args)
		if !isErr || res.ApprovalRequestID == 0 || res.Rule != "review-secret-reads" || !strings.Contains(res.NextStep, "approval_status") {
			t.Fatalf("listKeys without approval: %v %+v\n%s", isErr, res, text)
		}
		if w.fake.count("/rg-mcp/") != before {
			t.Fatal("listKeys reached ARM before approval")
		}
		id := strconv.FormatInt(res.ApprovalRequestID, 10)
		admin, _ := weir(t, nil, "admin", "token", "issue", "--name", "carol", "--role", "approver")
		weir(t, []string{"WEIR_ADMIN_TOKEN=" + strings.TrimSpace(admin), "WEIR_URL=http://" + w.httpAddr}, "approvals", "approve", id)
		var st struct{ Status, Target string }
		text, isErr = callInto(t, cs, "approval_status", map[string]any{"id": res.ApprovalRequestID}, &st)
		if isErr || st.Status != "approved" || st.Target != "arm" {
			t.Fatalf("approval_status after approval: %v %+v\n%s", isErr, st, text)
		}
		res, text, isErr = callTool(t, cs, "azure_request", args)
		if isErr || res.Status != 200 || w.fake.count("/rg-mcp/") != before+1 {
			t.Fatalf("approved listKeys: %v %+v\n%s", isErr, res, text)
		}
		var got struct {
			Keys []struct{ KeyName, Value string } `json:"keys"`
		}
		var want struct {
			Keys []struct{ Value string } `json:"keys"`
		}
		json.Unmarshal(readTestdata("listkeys.json"), &want)
		if err := json.Unmarshal([]byte(res.Body), &got); err != nil || len(got.Keys) != 2 || got.Keys[0].KeyName != "key1" {
			t.Fatalf("masking broke the answer: %v %s", err, res.Body)
		}
		for i, k := range want.Keys {
			if got.Keys[i].Value == k.Value || got.Keys[i].Value == "" || strings.Contains(text, k.Value) {
				t.Fatalf("storage key %d reached the model unmasked: %s", i, text)
			}
		}
		// The grant ran once.
		res, _, isErr = callTool(t, cs, "azure_request", args)
		if !isErr || res.ApprovalRequestID == 0 || w.fake.count("/rg-mcp/") != before+1 {
			t.Fatalf("the approval was used twice: %v %+v", isErr, res)
		}
	})

	t.Run("a Key Vault secret is masked unless its reveal is approved", func(t *testing.T) {
		args := map[string]any{"target": "vault", "method": "GET", "path": "/secrets/mysecretname?api-version=7.4"}
		res, text, isErr := callTool(t, cs, "azure_request", args)
		if isErr || res.Status != 200 || strings.Contains(text, "mysecretvalue") || !strings.Contains(res.Body, "mysecretname") {
			t.Fatalf("secret read: %v %+v\n%s", isErr, res, text)
		}
		args["reveal"] = true
		res, text, isErr = callTool(t, cs, "azure_request", args)
		if !isErr || res.ApprovalRequestID == 0 || res.Rule != "reveal-needs-approval" || strings.Contains(text, "mysecretvalue") {
			t.Fatalf("reveal without approval: %v %+v\n%s", isErr, res, text)
		}
		admin, _ := weir(t, nil, "admin", "token", "issue", "--name", "dave", "--role", "approver")
		weir(t, []string{"WEIR_ADMIN_TOKEN=" + strings.TrimSpace(admin), "WEIR_URL=http://" + w.httpAddr}, "approvals", "approve", strconv.FormatInt(res.ApprovalRequestID, 10))
		res, text, isErr = callTool(t, cs, "azure_request", args)
		if isErr || !strings.Contains(res.Body, `"value":"mysecretvalue"`) {
			t.Fatalf("approved reveal: %v %+v\n%s", isErr, res, text)
		}
	})

	t.Run("a Functions trigger gets weir's function key, the model a masked text", func(t *testing.T) {
		res, text, isErr := callTool(t, cs, "azure_request", map[string]any{"target": "fn", "method": "GET", "path": "/api/orders/mcp-7"})
		if isErr || res.Status != 200 || !strings.Contains(res.Body, "order mcp-7 accepted") || strings.Contains(text, "ops@example.com") || !w.fake.saw("/api/orders/mcp-7") {
			t.Fatalf("function: %v %+v\n%s", isErr, res, text)
		}
		_, text, isErr = callTool(t, cs, "azure_request", map[string]any{"target": "fn", "method": "GET", "path": "/api/mcp-admin"})
		if !isErr || !strings.Contains(text, "rule") || w.fake.saw("/api/mcp-admin") {
			t.Fatalf("another function: %v %s", isErr, text)
		}
	})

	t.Run("a target of another agent is not reachable", func(t *testing.T) {
		kv := mcpClient(t, issueToken(t, "kv-only"))
		// Offered for a Key Vault target alone as well.
		tools, err := kv.ListTools(ctx, nil)
		if err != nil || !slices.ContainsFunc(tools.Tools, func(tl *mcp.Tool) bool { return tl.Name == "azure_request" }) {
			t.Fatalf("azure_request is not offered to an agent with only a Key Vault target: %v", err)
		}
		res, text, isErr := callTool(t, kv, "azure_request", map[string]any{"target": "arm", "method": "GET", "path": sub + "/resourcegroups?api-version=2022-09-01"})
		if !isErr || !strings.Contains(text, "not one of your targets") || res.Status != 0 {
			t.Fatalf("kv-only agent on arm: %v %s", isErr, text)
		}
	})

	t.Run("the calls are in the audit chain", func(t *testing.T) {
		// The MCP session notes each tool call; the proxy's session (its
		// client the MCP server, user agent weir-mcp) records the commands.
		var export string
		deadline := time.Now().Add(30 * time.Second)
		for {
			export, _ = weir(t, nil, "audit", "export")
			if strings.Contains(export, `"tool":"azure_request"`) && strings.Contains(export, "weir-mcp") || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		var note, cmd bool
		for _, line := range strings.Split(export, "\n") {
			if strings.Contains(line, `"tool":"azure_request"`) && strings.Contains(line, `"rule":"no-role-assignments"`) {
				note = true
			}
			if strings.Contains(line, "microsoft.storage/storageaccounts/listkeys/action") && strings.Contains(line, `"decision":"allow"`) {
				cmd = true
			}
		}
		if !note || !cmd {
			t.Fatalf("audit: tool note %v, approved listKeys command %v", note, cmd)
		}
		for _, s := range []string{entraSecret, armToken, kvToken, "mysecretvalue"} {
			if strings.Contains(export, s) {
				t.Fatalf("the audit log holds %q", s)
			}
		}
		weir(t, nil, "audit", "verify")
	})
}

// BenchmarkMCPAzureRequest is one ARM read as an MCP tool call (the Go SDK
// client over streamable HTTP to weir serve, then the tool through the
// proxy, kept-alive tunnel), next to BenchmarkProxyGET's same read sent
// through the proxy by a client of its own.
//
//	go test ./test/e2e/azure -run '^$' -bench 'MCPAzure|ProxyGET' -benchtime 1000x
func BenchmarkMCPAzureRequest(b *testing.B) {
	cs := mcpClient(b, issueToken(b, "ci-bot"))
	args := map[string]any{"target": "arm", "method": "GET", "path": "/subscriptions/" + subID + "/resourcegroups/my-resource-group?api-version=2022-09-01"}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if res, text, isErr := callTool(b, cs, "azure_request", args); isErr || res.Status != 200 {
			b.Fatalf("%v %s", isErr, text)
		}
	}
}

// The TypeScript MCP SDK from npm, an independent client implementation
// (the script the MCP e2e tests use), gets the same answers and refusals.
func TestMCPAzureRequestTypeScript(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not installed (the e2e environment has it): ", err)
	}
	root, _ := filepath.Abs(filepath.Join("..", "..", ".."))
	sdk := filepath.Join(root, "tools", "node", "node_modules", "@modelcontextprotocol", "sdk", "dist", "esm")
	script := filepath.Join(root, "test", "e2e", "mcp", "testdata", "client.mjs")
	for _, p := range []string{sdk, script} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("the TypeScript MCP SDK client is not installed: %v", err)
		}
	}
	sub := "/subscriptions/" + subID
	calls := []map[string]any{
		{"name": "azure_request", "arguments": map[string]any{"target": "arm", "method": "GET", "path": sub + "/resourcegroups/my-resource-group?api-version=2022-09-01"}},
		{"name": "azure_request", "arguments": map[string]any{"target": "arm", "method": "PUT",
			"path": sub + "/resourceGroups/rg-dev/providers/Microsoft.Authorization/roleAssignments/9b1c2d3e-4f5a-4b6c-8d7e-0f1a2b3c4d5e?api-version=2022-04-01",
			"body": `{"properties":{"roleDefinitionId":"` + sub + `/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7","principalId":"8f70baf1-1f6e-46a2-a1ff-238dac1ebfb7"}}`}},
		{"name": "azure_request", "arguments": map[string]any{"target": "arm", "method": "POST", "path": sub + "/resourceGroups/rg-mcp-ts/providers/Microsoft.Storage/storageAccounts/sto2220/listkeys?api-version=2022-09-01"}},
		{"name": "azure_request", "arguments": map[string]any{"target": "vault", "method": "GET", "path": "/secrets/mysecretname?api-version=7.4"}},
	}
	arg, _ := json.Marshal(calls)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", script, string(arg))
	cmd.Env = append(os.Environ(), "WEIR_MCP_URL=http://"+w.httpAddr+"/mcp", "WEIR_TOKEN="+issueToken(t, "ci-bot"), "MCP_SDK="+sdk)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var out struct {
		Error string   `json:"error"`
		Tools []string `json:"tools"`
		Calls []struct {
			IsError    bool      `json:"isError"`
			Text       string    `json:"text"`
			Structured mcpResult `json:"structured"`
		} `json:"calls"`
	}
	if err := json.Unmarshal(outb, &out); err != nil || out.Error != "" || len(out.Calls) != len(calls) {
		t.Fatalf("TypeScript client: %v %s", err, outb)
	}
	if !slices.Contains(out.Tools, "azure_request") || slices.Contains(out.Tools, "blob_list") {
		t.Errorf("tools: %v", out.Tools)
	}
	if c := out.Calls[0]; c.IsError || c.Structured.Status != 200 || !sameJSON(t, c.Structured.Body, readTestdata("resourcegroup.json")) {
		t.Errorf("allowed read: %+v", c)
	}
	if c := out.Calls[1]; !c.IsError || c.Structured.Rule != "no-role-assignments" || !strings.Contains(c.Text, "Next step:") || w.fake.saw("9b1c2d3e-4f5a-4b6c-8d7e-0f1a2b3c4d5e") {
		t.Errorf("role assignment: %+v", c)
	}
	if c := out.Calls[2]; !c.IsError || c.Structured.Rule != "review-secret-reads" || c.Structured.ApprovalRequestID == 0 || w.fake.saw("/rg-mcp-ts/") {
		t.Errorf("listKeys: %+v", c)
	}
	if c := out.Calls[3]; c.IsError || c.Structured.Status != 200 || strings.Contains(string(outb), "mysecretvalue") {
		t.Errorf("secret read: %+v", c)
	}
}
