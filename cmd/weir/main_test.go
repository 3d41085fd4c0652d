package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, policy string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := `data_dir: ` + filepath.Join(dir, "data") + `
listen:
  postgres: 127.0.0.1:0
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
    max_ttl: 1h
policy:
  rules:
` + policy
	path := filepath.Join(dir, "weir.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const readsRule = `    - name: reads
      when: 'command.kind == "read"'
      action: allow
`

func weir(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	root := newRoot()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

func TestTokenLifecycle(t *testing.T) {
	cfg := writeConfig(t, readsRule)
	out, stderr, err := weir(t, "token", "issue", "--config", cfg, "--agent", "ci-bot", "--ttl", "30m", "--context", "ticket=OPS-12")
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(out)
	if strings.Count(tok, ".") != 2 || strings.ContainsAny(tok, " \n") {
		t.Fatalf("stdout must be the token alone, got %q", out)
	}
	if !strings.Contains(stderr, "issued tok_") {
		t.Fatalf("stderr: %q", stderr)
	}
	id := strings.Fields(stderr)[1]
	list, _, err := weir(t, "token", "list", "--config", cfg)
	if err != nil || !strings.Contains(list, id) || !strings.Contains(list, "ticket=OPS-12") || !strings.Contains(list, "live") {
		t.Fatalf("list: %v\n%s", err, list)
	}
	if _, _, err := weir(t, "token", "revoke", "--config", cfg, id); err != nil {
		t.Fatal(err)
	}
	list, _, _ = weir(t, "token", "list", "--config", cfg, "--all")
	if !strings.Contains(list, "revoked") {
		t.Fatalf("after revoke:\n%s", list)
	}
	if _, _, err := weir(t, "token", "revoke", "--config", cfg, "tok_nosuch"); err == nil || !strings.Contains(err.Error(), "no token") {
		t.Fatalf("revoke unknown: %v", err)
	}
	out, _, err = weir(t, "audit", "verify", "--config", cfg)
	if err != nil || !strings.Contains(out, "ok: 2 records, chain intact") {
		t.Fatalf("verify: %v %q", err, out)
	}
}

func TestTokenIssueRefusals(t *testing.T) {
	cfg := writeConfig(t, readsRule)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--agent", "ci-bot", "--ttl", "2h"}, "exceeds agent ci-bot's max_ttl of 1h0m0s"},
		{[]string{"--agent", "nobody"}, `agent "nobody" is not in`},
		{[]string{"--agent", "ci-bot", "--target", "billing"}, `--target "billing" is not one of agent ci-bot's targets`},
		{[]string{"--agent", "ci-bot", "--context", "novalue"}, "want key=value"},
	}
	for _, tc := range tests {
		_, _, err := weir(t, append([]string{"token", "issue", "--config", cfg}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestServeRefusesBadPolicy(t *testing.T) {
	cfg := writeConfig(t, `    - name: typo
      when: 'command.knd == "read"'
      action: allow
`)
	_, _, err := weir(t, "serve", "--config", cfg)
	if err == nil || !strings.Contains(err.Error(), `weir.yaml:18: policy rule "typo"`) || !strings.Contains(err.Error(), "undefined field 'knd'") {
		t.Fatalf("got %v", err)
	}
}

func TestMissingConfig(t *testing.T) {
	_, _, err := weir(t, "token", "list", "--config", "/nonexistent/weir.yaml")
	if err == nil || !strings.Contains(err.Error(), "reading config") {
		t.Fatalf("got %v", err)
	}
}
