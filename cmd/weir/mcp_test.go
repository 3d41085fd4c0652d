package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestMCPRefusesUnsafeURLs(t *testing.T) {
	cfg := writeConfig(t, readsRule)
	for _, tc := range []struct {
		url, token, want string
	}{
		{"https://weir:8080/mcp", "", "WEIR_TOKEN is not set"},
		{"http://weir.example.com:8080/mcp", "t", "plain http to a host that is not loopback"},
		{"ftp://weir/mcp", "t", "must be https://"},
		{"weir:8080", "t", "must be https://"},
		// Accepted: loopback; with stdin at its end the bridge ends at once.
		{"http://[::1]:1/mcp", "t", ""},
	} {
		t.Run(tc.url, func(t *testing.T) {
			t.Setenv("WEIR_TOKEN", tc.token)
			_, _, err := weir(t, "mcp", "--config", cfg, "--url", tc.url)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestTokenIssueMCPJSON(t *testing.T) {
	cfg := writeConfig(t, readsRule)
	out, _, err := weir(t, "token", "issue", "--config", cfg, "--agent", "ci-bot", "--format", "mcp-json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		MCPServers map[string]map[string]any `json:"mcpServers"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if v.MCPServers["weir"]["command"] != "weir" || v.MCPServers["weir-http"]["url"] == nil {
		t.Errorf("config: %s", out)
	}
}
