package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/identity"
	"github.com/weir-gw/weir/internal/store"
)

// weirWithAdmin runs the CLI with `weir admin` mounted (whether or not the
// root command mounts it yet).
func weirWithAdmin(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	root := newRoot()
	if c, _, err := root.Find([]string{"admin"}); err != nil || c == root {
		root.AddCommand(adminCmd())
	}
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

func TestAdminTokenIssue(t *testing.T) {
	ctx := context.Background()
	path := writeConfig(t, readsRule)
	out, stderr, err := weirWithAdmin(t, "admin", "token", "issue", "--config", path, "--name", "alice", "--role", "approver", "--ttl", "2h")
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(out)
	if strings.Count(tok, ".") != 2 || strings.ContainsAny(tok, " \n") {
		t.Fatalf("stdout must be the token alone, got %q", out)
	}
	if !strings.Contains(stderr, "issued adm_") || !strings.Contains(stderr, "alice (role approver)") {
		t.Fatalf("stderr: %q", stderr)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(cfg.DataDir, false)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	auth, err := identity.NewAuthority(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	c, err := auth.VerifyAdmin(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "alice" || c.Role != identity.RoleApprover || !strings.HasPrefix(c.IssuedBy, "local:") {
		t.Fatalf("claims %+v", c)
	}
	if d := time.Until(c.Expiry()); d < 2*time.Hour-time.Minute || d > 2*time.Hour {
		t.Fatalf("expires in %s", d)
	}
	if _, err := auth.Verify(ctx, tok); err == nil {
		t.Fatal("an admin token verified as an agent token")
	}
	recs, err := st.ReadAudit(ctx, 0, 100)
	if err != nil || len(recs) != 1 {
		t.Fatalf("audit: %v %d records", err, len(recs))
	}
	var data map[string]any
	if err := json.Unmarshal(recs[0].Data, &data); err != nil {
		t.Fatal(err)
	}
	if recs[0].Type != "admin_token.issued" || recs[0].Agent != "admin:alice" || data["token_id"] != c.ID || data["role"] != "approver" || data["name"] != "alice" {
		t.Fatalf("audit record %+v %v", recs[0], data)
	}
	if bytes.Contains(recs[0].Data, []byte(strings.Split(tok, ".")[2])) {
		t.Fatal("the token reached the audit log")
	}
	// Listed and revoked like any token.
	list, _, err := weirWithAdmin(t, "token", "list", "--config", path)
	if err != nil || !strings.Contains(list, c.ID) || !strings.Contains(list, "admin:alice") || !strings.Contains(list, "role=approver") {
		t.Fatalf("list: %v\n%s", err, list)
	}
	if _, _, err := weirWithAdmin(t, "token", "revoke", "--config", path, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.VerifyAdmin(ctx, tok); err == nil {
		t.Fatal("revoked admin token still verifies")
	}
}

func TestAdminTokenIssueRefusals(t *testing.T) {
	path := writeConfig(t, readsRule)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--name", "alice", "--role", "root"}, `--role: role must be approver, admin or auditor, got "root"`},
		{[]string{"--name", "alice"}, `required flag(s) "role" not set`},
		{[]string{"--role", "admin"}, `required flag(s) "name" not set`},
		{[]string{"--name", "alice:x", "--role", "admin"}, `admin name "alice:x" is not valid`},
		{[]string{"--name", "alice", "--role", "admin", "--ttl", "200h"}, "--ttl must be between 1s and 168h0m0s"},
		{[]string{"--name", "alice", "--role", "admin", "--ttl", "0s"}, "--ttl must be between"},
	}
	for _, tc := range tests {
		out, _, err := weirWithAdmin(t, append([]string{"admin", "token", "issue", "--config", path}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want %q", tc.args, err, tc.want)
		}
		if out != "" {
			t.Errorf("%v: printed %q", tc.args, out)
		}
	}
}
