package config

import (
	"strings"
	"testing"
	"time"
)

func TestApprovalsConfig(t *testing.T) {
	cfg, err := Parse("weir.yaml", []byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Approvals.Timeout != 60*time.Second || cfg.Approvals.GrantTTL != 15*time.Minute || cfg.Approvals.AsyncTimeout != 24*time.Hour {
		t.Fatalf("defaults %+v", cfg.Approvals)
	}
	text := valid + `    - name: review-writes
      when: 'command.writes'
      action: review
    - name: review-async
      when: 'command.writes'
      action: review
      mode: async
approvals:
  timeout: 30s
  grant_ttl: 5m
  notify:
    - {kind: slack, url_env: SLACK_URL}
    - {kind: teams, url_env: TEAMS_URL}
    - {kind: webhook, url_env: HOOK_URL}
`
	cfg, err = Parse("weir.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Policy.Rules[2].Mode != ModeHold || cfg.Policy.Rules[3].Mode != ModeAsync || cfg.Policy.Rules[0].Mode != "" {
		t.Fatalf("modes %+v", cfg.Policy.Rules)
	}
	if cfg.RuleMode("review-async") != ModeAsync || cfg.RuleMode("review-writes") != ModeHold {
		t.Fatal("RuleMode")
	}
	if cfg.Approvals.Timeout != 30*time.Second || cfg.Approvals.GrantTTL != 5*time.Minute || len(cfg.Approvals.Notify) != 3 || cfg.Approvals.Notify[1].URLEnv != "TEAMS_URL" {
		t.Fatalf("approvals %+v", cfg.Approvals)
	}
}

func TestApprovalsConfigErrors(t *testing.T) {
	tests := []struct{ name, add, expect string }{
		{"mode on allow", "      mode: async\n", "policy.rules[1].mode: applies only to action review"},
		{"bad mode", "    - {name: r, when: 'true', action: review, mode: later}\n", `policy.rules[2].mode: must be hold`},
		{"bad kind", "approvals:\n  notify: [{kind: email, url_env: X}]\n", `approvals.notify[0].kind: must be webhook, slack or teams`},
		{"url in config", "approvals:\n  notify: [{kind: slack, url_env: 'https://hooks'}]\n", `approvals.notify[0].url_env: "https://hooks" is not an environment variable name`},
		{"missing url_env", "approvals:\n  notify: [{kind: slack}]\n", `approvals.notify[0].url_env: missing`},
		{"timeout", "approvals:\n  timeout: 2h\n", "approvals.timeout: must be between 1s and 1h"},
		{"grant_ttl", "approvals:\n  grant_ttl: -1s\n", "approvals.grant_ttl: must be between"},
		{"unknown key", "approvals:\n  timout: 1m\n", `unknown key "timout"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("weir.yaml", []byte(valid+tc.add))
			if err == nil || !strings.Contains(err.Error(), tc.expect) {
				t.Fatalf("got %v\nwant it to contain %q", err, tc.expect)
			}
		})
	}
}
