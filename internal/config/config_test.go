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

const withFederation = `    federation:
      - issuer: https://token.actions.githubusercontent.com
        audience: weir
        subject: "repo:acme/shop:ref:refs/heads/*"
        when: 'claims.repository_owner == "acme"'
        ttl: 15m
      - issuer: https://vstoken.dev.azure.com/0f0e1d2c
        audience: api://AzureADTokenExchange
        subject: "sc://acme/shop/*"
`

// validHTTP is valid with listen.http, which federation needs.
var validHTTP = strings.Replace(valid, "  postgres: 127.0.0.1:6432\n", "  postgres: 127.0.0.1:6432\n  http: 127.0.0.1:8080\n", 1)

func TestParseFederation(t *testing.T) {
	text := strings.Replace(validHTTP, "    max_ttl: 1h\n", "    max_ttl: 1h\n"+withFederation, 1)
	cfg, err := Parse("weir.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := cfg.Agent("ci-bot")
	if len(a.Federation) != 2 {
		t.Fatalf("federation %+v", a.Federation)
	}
	gh, ado := a.Federation[0], a.Federation[1]
	if gh.Provider != ProviderGitHubActions || gh.TTL != 15*time.Minute || gh.Audience != "weir" || gh.Line != 21 {
		t.Errorf("github rule %+v", gh)
	}
	if ado.Provider != ProviderAzureDevOps || ado.TTL != 0 || ado.Line != 23 {
		t.Errorf("azure devops rule %+v", ado)
	}
	for issuer, want := range map[string]string{
		"https://token.actions.githubusercontent.com":      ProviderGitHubActions,
		"https://token.actions.githubusercontent.com/acme": ProviderGitHubActions,
		"https://token.actions.githubusercontent.com.evil": ProviderGeneric,
		"https://vstoken.dev.azure.com/0f0e":               ProviderAzureDevOps,
		"https://login.microsoftonline.com/tid/v2.0":       ProviderEntra,
		"https://sts.windows.net/tid/":                     ProviderEntra,
		"https://idp.example.com":                          ProviderGeneric,
		"http://token.actions.githubusercontent.com":       ProviderGeneric,
	} {
		if got := DetectProvider(issuer); got != want {
			t.Errorf("DetectProvider(%q) = %s, want %s", issuer, got, want)
		}
	}
}

func TestParseFederationErrors(t *testing.T) {
	base := strings.Replace(validHTTP, "    max_ttl: 1h\n", "    max_ttl: 1h\n"+withFederation, 1)
	tests := []struct {
		name, old, new, expect string
	}{
		{"unknown key", "        ttl: 15m\n", "        ttl: 15m\n        audiences: [x]\n", `weir.yaml:23: unknown key "audiences" (in federation)`},
		{"missing issuer", "      - issuer: https://token.actions.githubusercontent.com\n        audience: weir\n", "      - audience: weir\n", "weir.yaml:18: agents[0].federation[0].issuer: missing"},
		{"plain http issuer", "issuer: https://token.actions", "issuer: http://token.actions", "agents[0].federation[0].issuer: must be https"},
		{"issuer not a URL", "issuer: https://token.actions.githubusercontent.com", "issuer: token.actions.githubusercontent.com", "agents[0].federation[0].issuer: \"token.actions.githubusercontent.com\" is not an issuer URL"},
		{"issuer with query", "issuer: https://token.actions.githubusercontent.com", "issuer: https://token.actions.githubusercontent.com?x=1", "is not an issuer URL"},
		{"missing audience", "        audience: weir\n", "", "weir.yaml:18: agents[0].federation[0].audience: missing"},
		{"missing subject", `        subject: "repo:acme/shop:ref:refs/heads/*"` + "\n", "", "agents[0].federation[0].subject: missing"},
		{"subject all wildcards", `subject: "sc://acme/shop/*"`, `subject: "**"`, `weir.yaml:25: agents[0].federation[1].subject: "**" matches (nearly) every subject`},
		{"github owner wildcard", `subject: "repo:acme/shop:ref:refs/heads/*"`, `subject: "repo:*/shop:ref:refs/heads/*"`, "agents[0].federation[0].subject: the owner in"},
		{"github catch-all", `subject: "repo:acme/shop:ref:refs/heads/*"`, `subject: "repo:**"`, "agents[0].federation[0].subject: the owner in"},
		{"triple star", `subject: "sc://acme/shop/*"`, `subject: "sc://acme/***"`, `"***" is ambiguous`},
		{"ttl over max_ttl", "ttl: 15m", "ttl: 2h", "weir.yaml:22: agents[0].federation[0].ttl: 2h0m0s exceeds the agent's max_ttl of 1h0m0s"},
		{"ttl too small", "ttl: 15m", "ttl: 10ms", "agents[0].federation[0].ttl: must be at least 1s"},
		{"bad provider", "ttl: 15m", "ttl: 15m\n        provider: gitlab", `agents[0].federation[0].provider: must be github-actions, azure-devops, entra or generic`},
		{"no listen.http", "  http: 127.0.0.1:8080\n", "", "weir.yaml:16: agents[0].federation: needs listen.http"},
		{"blank when", `when: 'claims.repository_owner == "acme"'`, `when: " "`, "agents[0].federation[0].when: is blank"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(base, tc.old) {
				t.Fatalf("test edits %q, which the config lacks", tc.old)
			}
			text := strings.Replace(base, tc.old, tc.new, 1)
			_, err := Parse("weir.yaml", []byte(text))
			if err == nil || !strings.Contains(err.Error(), tc.expect) {
				t.Fatalf("got %v\nwant it to contain %q", err, tc.expect)
			}
		})
	}
	// A loopback issuer may be plain http (tests, a local issuer).
	text := strings.Replace(base, "issuer: https://token.actions.githubusercontent.com", "issuer: http://127.0.0.1:9999/oidc", 1)
	text = strings.Replace(text, `subject: "repo:acme/shop:ref:refs/heads/*"`, `subject: "svc-*"`, 1)
	if _, err := Parse("weir.yaml", []byte(text)); err != nil {
		t.Fatal(err)
	}
}
