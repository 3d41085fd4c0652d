package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-gw/weir/internal/audit"
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

func TestSessionsReplayExportVerify(t *testing.T) {
	cfg := writeConfig(t, readsRule)
	env, err := openEnvPath(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, ev := range []audit.Event{
		{Type: audit.TypeSessionStart, SessionID: "s_1", Agent: "ci-bot", Target: "orders", Data: map[string]any{"protocol": "postgres", "client_addr": "127.0.0.1:5000", "token_id": "tok_1", "context": map[string]any{"attested": map[string]string{"ticket": "OPS-12"}}}},
		{Type: audit.TypeCommand, SessionID: "s_1", Agent: "ci-bot", Target: "orders", Data: map[string]any{"seq": 1, "decision": "allow", "rule": "reads", "via": "query", "commands": []map[string]string{{"text": "SELECT 1"}}}},
		{Type: audit.TypeResult, SessionID: "s_1", Agent: "ci-bot", Target: "orders", Data: map[string]any{"seq": 1, "rows": 1, "duration_ms": 0.5,
			"masked": map[string]int{"email": 1}, "columns": []string{"id", "email"}, "rows_seen": [][]any{{"1", "a****@e*****.com"}}}},
		{Type: audit.TypeCommand, SessionID: "s_1", Agent: "ci-bot", Target: "orders", Data: map[string]any{"seq": 2, "decision": "deny", "rule": "no-ddl", "reason": "weir: no", "commands": []map[string]string{{"text": "DROP TABLE t"}}}},
		{Type: audit.TypeSessionEnd, SessionID: "s_1", Agent: "ci-bot", Target: "orders", Data: map[string]any{"reason": "client terminated", "statements": 2, "denied": 1}},
	} {
		if err := audit.AppendOne(ctx, env.st, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := audit.Checkpoint(ctx, env.st, env.auth, time.Now()); err != nil {
		t.Fatal(err)
	}
	env.close()

	out, _, err := weir(t, "sessions", "list", "--config", cfg, "--agent", "ci-bot")
	if err != nil || !strings.Contains(out, "s_1") || !strings.Contains(out, "ticket=OPS-12") {
		t.Fatalf("sessions list: %v\n%s", err, out)
	}
	out, _, err = weir(t, "replay", "--config", cfg, "s_1")
	for _, want := range []string{"orders=> SELECT 1;", `allowed by rule "reads"`, "#1 ok: 1 rows in 0.500 ms, masked 1 email", " id | email", " 1  | a****@e*****.com", "orders=> DROP TABLE t;", `DENY by rule "no-ddl"`, "2 statements, 1 denied"} {
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("replay lacks %q: %v\n%s", want, err, out)
		}
	}
	if _, _, err := weir(t, "replay", "--config", cfg, "s_nosuch"); err == nil {
		t.Fatal("replay of an unknown session succeeded")
	}
	pub, _, err := weir(t, "audit", "pubkey", "--config", cfg)
	if err != nil || !strings.Contains(pub, "BEGIN PUBLIC KEY") {
		t.Fatalf("pubkey: %v %s", err, pub)
	}
	export, _, err := weir(t, "audit", "export", "--config", cfg)
	if err != nil || strings.Count(export, "\n") != 6 {
		t.Fatalf("export: %v\n%s", err, export)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "weir.pub"), []byte(pub), 0o600)
	os.WriteFile(filepath.Join(dir, "export.jsonl"), []byte(export), 0o600)
	out, _, err = weir(t, "audit", "verify", "--config", cfg, "--file", filepath.Join(dir, "export.jsonl"), "--key", filepath.Join(dir, "weir.pub"))
	if err != nil || !strings.Contains(out, "ok: 6 records, chain intact, 1 signed checkpoints") {
		t.Fatalf("offline verify: %v %s", err, out)
	}
	os.WriteFile(filepath.Join(dir, "export.jsonl"), []byte(strings.Replace(export, "DROP TABLE t", "SELECT 2", 1)), 0o600)
	if _, _, err = weir(t, "audit", "verify", "--config", cfg, "--file", filepath.Join(dir, "export.jsonl"), "--key", filepath.Join(dir, "weir.pub")); err == nil || !strings.Contains(err.Error(), "broken at record 4") {
		t.Fatalf("tampered export: %v", err)
	}
}

func TestAuditPrune(t *testing.T) {
	cfg := writeConfig(t, readsRule)
	env, err := openEnvPath(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	old := time.Now().Add(-48 * time.Hour)
	for i := 0; i < 5; i++ {
		if err := audit.AppendOne(ctx, env.st, audit.Event{Type: audit.TypeCommand, Time: old.Add(time.Duration(i) * time.Minute), SessionID: "s_old", Data: i}); err != nil {
			t.Fatal(err)
		}
	}
	if err := audit.Checkpoint(ctx, env.st, env.auth, old.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := audit.AppendOne(ctx, env.st, audit.Event{Type: audit.TypeCommand, SessionID: "s_new", Data: "new"}); err != nil {
		t.Fatal(err)
	}
	env.close()
	out, _, err := weir(t, "audit", "prune", "--config", cfg, "--older-than", "24h")
	if err != nil || !strings.HasPrefix(out, "pruned 5 records") {
		t.Fatalf("prune: %v %q", err, out)
	}
	out, _, err = weir(t, "audit", "verify", "--config", cfg)
	if err != nil || !strings.Contains(out, "earlier records pruned; the start is signed") {
		t.Fatalf("verify after prune: %v %q", err, out)
	}
	if _, _, err := weir(t, "audit", "prune", "--config", cfg); err == nil {
		t.Fatal("prune without --older-than ran")
	}
}

func TestKeyRotateCLI(t *testing.T) {
	cfg := writeConfig(t, readsRule)
	if _, _, err := weir(t, "token", "issue", "--config", cfg, "--agent", "ci-bot"); err != nil {
		t.Fatal(err)
	}
	list, _, _ := weir(t, "key", "list", "--config", cfg)
	oldKid := strings.Fields(strings.Split(list, "\n")[1])[0]
	out, _, err := weir(t, "key", "rotate", "--config", cfg)
	if err != nil || !strings.HasPrefix(out, "new signing key ") {
		t.Fatalf("rotate: %v %q", err, out)
	}
	newKid := strings.TrimSuffix(strings.Fields(out)[3], ";")
	list, _, _ = weir(t, "key", "list", "--config", cfg)
	if !strings.Contains(list, newKid+"  ") || !strings.Contains(list, "signs and verifies") || !strings.Contains(list, oldKid) {
		t.Fatalf("list after rotate:\n%s", list)
	}
	if _, _, err := weir(t, "key", "retire", "--config", cfg, newKid); err == nil || !strings.Contains(err.Error(), "active signing key") {
		t.Fatalf("retire active: %v", err)
	}
	if out, _, err := weir(t, "key", "retire", "--config", cfg, oldKid); err != nil || !strings.Contains(out, "retired") {
		t.Fatalf("retire old: %v %q", err, out)
	}
}

// The shipped example policy tests pass against the shipped example config
// (docs cannot drift), and a wrong expectation fails with the reason.
func TestPolicyTest(t *testing.T) {
	out, _, err := weir(t, "policy", "test", "--config", "../../examples/weir.yaml", "../../examples/tests/policy.yaml")
	if err != nil || !strings.Contains(out, "7 passed, 0 failed") {
		t.Fatalf("examples: %v\n%s", err, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("cases:\n  - name: drop is fine\n    agent: ci-bot\n    target: orders\n    sql: DROP TABLE orders\n    expect: allow\n"), 0o600)
	out, _, err = weir(t, "policy", "test", "--config", "../../examples/weir.yaml", bad)
	if err == nil || !strings.Contains(out, `FAIL  `+bad+`:2 drop is fine: deny by "no-destructive-ddl" (want allow); weir saw DROP TABLE (kind ddl`) {
		t.Fatalf("failing case: %v\n%s", err, out)
	}
}
