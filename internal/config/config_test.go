package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const valid = `data_dir: /tmp/weir-test
listen:
  postgres: 127.0.0.1:6432
targets:
  - name: orders
    kind: postgres
    address: 127.0.0.1:5432
    database: orders
    username: weir_agent
    password_env: ORDERS_PG_PASSWORD
    labels: {env: prod}
agents:
  - name: ci-bot
    targets: [orders]
    max_ttl: 1h
policy:
  rules:
    - name: no-destructive-ddl
      when: 'command.kind == "ddl"'
      action: deny
    - name: reads
      when: 'command.kind == "read"'
      action: allow
`

func TestParseValid(t *testing.T) {
	cfg, err := Parse("weir.yaml", []byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	tg, ok := cfg.Target("orders")
	if !ok || tg.SSLMode != "require" || tg.Auth != "password" || tg.Labels["env"] != "prod" {
		t.Fatalf("target defaults: %+v", tg)
	}
	if a, _ := cfg.Agent("ci-bot"); a.MaxTTL != time.Hour {
		t.Fatalf("max_ttl %v", a.MaxTTL)
	}
	if cfg.Policy.Rules[1].Line != 22 {
		t.Fatalf("rule line %d", cfg.Policy.Rules[1].Line)
	}
	if cfg.Tokens.DefaultTTL != 15*time.Minute || cfg.Limits.MaxMessageBytes != DefaultMaxMessageBytes {
		t.Fatalf("defaults %+v %+v", cfg.Tokens, cfg.Limits)
	}
}

// The errors an operator meets name the file, line and key, and say what to do.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, old, new, expect string
	}{
		{"unknown key", "    labels: {env: prod}\n", "    labels: {env: prod}\n    pasword_env: X\n", `weir.yaml:12: unknown key "pasword_env" (in target)`},
		{"bad kind", "kind: postgres", "kind: mongo", `weir.yaml:6: targets[0].kind: unsupported kind "mongo"`},
		{"missing password_env", "    password_env: ORDERS_PG_PASSWORD\n", "", `weir.yaml:5: targets[0].password_env: missing`},
		{"unknown target", "targets: [orders]", "targets: [order]", `weir.yaml:14: agents[0].targets[0]: unknown target "order"`},
		{"bad action", "action: deny", "action: block", `policy.rules[0].action: must be allow, deny or review, got "block"`},
		{"bad ttl", "max_ttl: 1h", "max_ttl: banana", `weir.yaml:15: "banana" is not a duration`},
		{"plaintext off loopback", "postgres: 127.0.0.1:6432", "postgres: 0.0.0.0:6432\ntls: {allow_plaintext_loopback: true}", "tls.allow_plaintext_loopback: is only allowed when listen.postgres is a loopback address"},
		{"bad sslmode", "labels: {env: prod}", "labels: {env: prod}\n    sslmode: prefer", "targets[0].sslmode: must be disable, require, verify-ca or verify-full"},
		{"duplicate target", "agents:", "  - name: orders\n    kind: postgres\n    address: h:1\n    database: d\n    username: u\n    password_env: P\nagents:", `target "orders" is defined twice`},
		{"yaml syntax", "listen:\n", "listen:\n  - [\n", "weir.yaml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text := strings.Replace(valid, tc.old, tc.new, 1)
			_, err := Parse("weir.yaml", []byte(text))
			if err == nil || !strings.Contains(err.Error(), tc.expect) {
				t.Fatalf("got %v\nwant it to contain %q", err, tc.expect)
			}
		})
	}
}

func TestExampleConfigsLoad(t *testing.T) {
	// Every example config shipped in the repository must load (docs cannot drift).
	matches, _ := filepath.Glob("../../examples/*.yaml")
	for _, m := range matches {
		data, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(m, data); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
}
