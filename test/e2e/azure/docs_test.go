package azure

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/policy"
	"github.com/weir-gw/weir/internal/proxy/azure"
)

// The config in docs/azure.md loads, and its policy, over weir's own
// classification of real request lines, does what the page says.
func TestDocsConfig(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "azure.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(doc), "```yaml\n")
	yml, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("docs/azure.md has no yaml block")
	}
	cfg, err := config.Parse("docs/azure.md", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := policy.CompileFile(cfg.Path, cfg.Policy.Rules)
	if err != nil {
		t.Fatal(err)
	}
	s := "/subscriptions/" + subID
	for _, tc := range []struct {
		kind, host, method, target, body string
		want                             policy.Action
		rule                             string
	}{
		{config.KindAzureARM, "management.azure.com", "GET", "/subscriptions?api-version=2022-12-01", "", policy.Allow, "read-subscriptions"},
		{config.KindAzureARM, "management.azure.com", "GET", s + "/resourcegroups?api-version=2022-09-01", "", policy.Allow, "read-subscriptions"},
		{config.KindAzureARM, "management.azure.com", "GET", s + "/resourceGroups/rg-dev/providers/Microsoft.Storage/storageAccounts?api-version=2022-09-01", "", policy.Allow, "read-rg-dev"},
		{config.KindAzureARM, "management.azure.com", "GET", s + "/resourceGroups/rg-prod/providers/Microsoft.Storage/storageAccounts?api-version=2022-09-01", "", policy.Deny, policy.DefaultRule},
		{config.KindAzureARM, "management.azure.com", "POST", s + "/resourceGroups/rg-dev/providers/Microsoft.Storage/storageAccounts/mystorage/listKeys?api-version=2022-09-01", "", policy.Review, "review-secret-reads"},
		{config.KindAzureARM, "management.azure.com", "PUT", s + "/resourceGroups/rg-dev/providers/Microsoft.Authorization/roleAssignments/x?api-version=2022-04-01", `{"properties":{}}`, policy.Deny, "no-role-assignments"},
		{config.KindAzureARM, "management.azure.com", "DELETE", s + "/resourceGroups/rg-dev?api-version=2022-09-01", "", policy.Deny, policy.DefaultRule},
		{config.KindAzureKeyVault, "myvault.vault.azure.net", "GET", "/secrets/db-password?api-version=7.4", "", policy.Allow, "vault-reads"},
		{config.KindAzureKeyVault, "myvault.vault.azure.net", "PUT", "/secrets/db-password?api-version=7.4", `{"value":"x"}`, policy.Deny, policy.DefaultRule},
	} {
		path, query, _ := strings.Cut(tc.target, "?")
		var body []byte
		if tc.body != "" {
			body = []byte(tc.body)
		}
		cl, err := azure.Classify(&azure.ClassifyOptions{Kind: tc.kind, Host: tc.host}, tc.method, path, query, body)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.target, err)
		}
		target := map[string]string{config.KindAzureARM: "arm", config.KindAzureKeyVault: "secrets"}[tc.kind]
		in := &policy.Input{Agent: policy.Agent{Name: "ci-bot"}, Target: policy.Target{Name: target, Kind: tc.kind}}
		d := eng.Decide(in, cl.Commands)
		if d.Action != tc.want || d.Rule != tc.rule {
			t.Errorf("%s %s: %s by %q, want %s by %q", tc.method, tc.target, d.Action, d.Rule, tc.want, tc.rule)
		}
	}
}
