package main

import (
	"bytes"
	"context"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-gw/weir/internal/approval"
	"github.com/weir-gw/weir/internal/audit"
	"github.com/weir-gw/weir/internal/httpapi"
	"github.com/weir-gw/weir/internal/identity"
	"github.com/weir-gw/weir/internal/store"
	"github.com/weir-gw/weir/internal/tlsutil"
)

func weirWithApprovals(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	root := newRoot()
	if c, _, err := root.Find([]string{"approvals"}); err != nil || c == root {
		root.AddCommand(approvalsCmd())
	}
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

// TestApprovalsCLI runs the CLI against the real API handler over TLS with
// weir's generated certificate, as `weir serve` would serve it.
func TestApprovalsCLI(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "weir.yaml")
	os.WriteFile(cfgPath, []byte(`data_dir: `+dataDir+`
listen:
  postgres: 127.0.0.1:0
  http: `+ln.Addr().String()+`
targets:
  - name: orders
    kind: postgres
    address: 127.0.0.1:5432
    database: orders
    username: weir_agent
    password_env: ORDERS_PG_PASSWORD
agents:
  - name: ci-bot
    targets: [orders]
policy:
  rules:
    - name: review-writes
      when: 'command.writes'
      action: review
      mode: async
`), 0o600)

	st, err := store.OpenSQLite(dataDir, false)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	auth, err := identity.NewAuthority(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	aw, err := audit.NewWriter(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	defer aw.Close()
	svc, err := approval.New(approval.Options{Store: st, Audit: aw.Append})
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := tlsutil.ServerConfig("", "", dataDir)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(httpapi.New(httpapi.Options{Authority: auth, Audit: aw.Append, Approvals: svc}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.TLS = tlsCfg
	srv.StartTLS()
	defer srv.Close()

	t.Setenv(adminTokenEnv, "")
	if _, _, err := weirWithApprovals(t, "approvals", "list", "--config", cfgPath); err == nil || !strings.Contains(err.Error(), adminTokenEnv+" is not set") {
		t.Fatalf("missing token: %v", err)
	}
	tok, _, err := auth.IssueAdmin(ctx, "alice", identity.RoleApprover, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(adminTokenEnv, tok)

	for i := 0; i < 2; i++ {
		if _, err := svc.Request(ctx, approval.Req{Agent: "ci-bot", Target: "orders", Statements: []string{"DELETE FROM orders WHERE id = 7"},
			Rule: "review-writes", Mode: approval.ModeAsync, Preview: "rows=1", Context: map[string]string{"ticket": "OPS-9"}}); err != nil {
			t.Fatal(err)
		}
	}
	out, _, err := weirWithApprovals(t, "approvals", "list", "--config", cfgPath)
	if err != nil || !strings.Contains(out, "DELETE FROM orders WHERE id = 7") || !strings.Contains(out, "ci-bot") {
		t.Fatalf("list: %q %v", out, err)
	}
	out, _, err = weirWithApprovals(t, "approvals", "show", "1", "--config", cfgPath)
	if err != nil || !strings.Contains(out, "ticket=OPS-9") || !strings.Contains(out, "rows=1") || !strings.Contains(out, "weir approvals approve 1") {
		t.Fatalf("show: %q %v", out, err)
	}
	out, _, err = weirWithApprovals(t, "approvals", "approve", "1", "--reason", "OPS-9", "--config", cfgPath)
	if err != nil || !strings.Contains(out, "approved 1") {
		t.Fatalf("approve: %q %v", out, err)
	}
	if _, _, err = weirWithApprovals(t, "approvals", "approve", "1", "--config", cfgPath); err == nil || !strings.Contains(err.Error(), "already decided") || !strings.Contains(err.Error(), "HTTP 409") {
		t.Fatalf("second approve: %v", err)
	}
	if _, _, err = weirWithApprovals(t, "approvals", "deny", "2", "--config", cfgPath); err == nil || !strings.Contains(err.Error(), "--reason") {
		t.Fatalf("deny without reason: %v", err)
	}
	out, _, err = weirWithApprovals(t, "approvals", "deny", "2", "--reason", "too broad", "--config", cfgPath)
	if err != nil || !strings.Contains(out, "denied 2") {
		t.Fatalf("deny: %q %v", out, err)
	}
	if _, _, err = weirWithApprovals(t, "approvals", "show", "x", "--config", cfgPath); err == nil {
		t.Fatal("bad id accepted")
	}
	ok, err := svc.Consume(ctx, approval.GrantKey{Agent: "ci-bot", Target: "orders", Statements: []string{"DELETE FROM orders WHERE id = 7"}, ParamsHash: approval.HashParams(nil)})
	if err != nil || !ok {
		t.Fatalf("grant from the CLI's approval: %v %v", ok, err)
	}
}
