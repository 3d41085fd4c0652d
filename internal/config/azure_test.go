package config

import (
	"strings"
	"testing"
)

const azureBase = `data_dir: /tmp/weir-test
listen:
  postgres: 127.0.0.1:6432
  http: 127.0.0.1:8080
  azure_proxy: 127.0.0.1:8443
targets:
  - name: arm
    kind: azure-arm
    endpoint: https://management.azure.com
  - name: vault
    kind: azure-keyvault
    endpoint: https://myvault.vault.azure.net
  - name: fn
    kind: azure-functions
    endpoint: https://myapp.azurewebsites.net
    function_key_env: FN_KEY
agents:
  - name: ci-bot
    targets: [arm, vault, fn]
azure:
  credential:
    tenant_id: 00000000-0000-0000-0000-000000000001
    client_id: 11111111-1111-1111-1111-111111111111
    client_secret_env: WEIR_ENTRA_SECRET
`

func TestAzureValid(t *testing.T) {
	cfg, err := Parse("weir.yaml", []byte(azureBase))
	if err != nil {
		t.Fatal(err)
	}
	arm, _ := cfg.Target("arm")
	if len(arm.Azure.Hosts) != 1 || arm.Azure.Hosts[0] != "management.azure.com" {
		t.Fatalf("hosts default: %v", arm.Azure.Hosts)
	}
	if cfg.Azure.Cloud != "public" || cfg.Azure.TenantID != "00000000-0000-0000-0000-000000000001" || cfg.Azure.MaxBodyBytes != DefaultAzureMaxBody {
		t.Fatalf("defaults: %+v", cfg.Azure)
	}
	for host, ok := range map[string]bool{
		"management.azure.com": true, "myvault.vault.azure.net": true, "a.azurewebsites.net": true, "acct.blob.core.windows.net": true,
		"vault.azure.net": false, "a.b.vault.azure.net": false, "evil.example": false, "management.azure.com.evil.example": false,
	} {
		if cfg.Azure.HostAllowed(host) != ok {
			t.Errorf("HostAllowed(%s) = %v", host, !ok)
		}
	}
}

func TestAzureErrors(t *testing.T) {
	tests := []struct{ name, old, new, expect string }{
		{"http endpoint", "endpoint: https://management.azure.com", "endpoint: http://management.azure.com", "targets[0].endpoint: must be an https URL"},
		{"host outside Azure", "endpoint: https://management.azure.com", "endpoint: https://management.azure.com\n    hosts: [evil.example.net]", "is not an Azure host weir intercepts"},
		{"IP endpoint without hosts", "endpoint: https://management.azure.com", "endpoint: https://127.0.0.1:9443", "targets[0].hosts: missing"},
		{"host served twice", "endpoint: https://myvault.vault.azure.net", "endpoint: https://myvault.vault.azure.net\n    hosts: [management.azure.com]", "already served by target arm"},
		{"function key missing", "    function_key_env: FN_KEY\n", "", "function_key_env: missing"},
		{"function key on ARM", "endpoint: https://management.azure.com", "endpoint: https://management.azure.com\n    function_key_env: X", "only an azure-functions target"},
		{"unknown cloud", "azure:\n", "azure:\n  cloud: mars\n", "azure.cloud: must be public, china or usgov"},
		{"two credentials", "client_secret_env: WEIR_ENTRA_SECRET", "client_secret_env: WEIR_ENTRA_SECRET\n    certificate_file: /x.pem", "choose one of"},
		{"secret without tenant", "    tenant_id: 00000000-0000-0000-0000-000000000001\n", "", "need tenant_id and client_id"},
		{"bad allowed host", "azure:\n", "azure:\n  allowed_hosts: [\"*\"]\n", "azure.allowed_hosts[0]"},
		{"missing CA file", "azure:\n", "azure:\n  upstream_ca_file: /nonexistent/ca.pem\n", "azure.upstream_ca_file: cannot read"},
		{"tiny body bound", "azure:\n", "azure:\n  max_body_bytes: 10\n", "azure.max_body_bytes"},
		{"bad proxy address", "azure_proxy: 127.0.0.1:8443", "azure_proxy: nowhere", "listen.azure_proxy: must be host:port"},
		{"http authority", "azure:\n", "azure:\n  credential:\n    authority_host: http://login.example\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(azureBase, tc.old, tc.new, 1)
			if tc.name == "http authority" {
				src = azureBase + "    authority_host: http://login.example\n"
				tc.expect = "authority_host: must be an https URL"
			}
			_, err := Parse("weir.yaml", []byte(src))
			if err == nil || !strings.Contains(err.Error(), tc.expect) {
				t.Fatalf("got %v, want %q", err, tc.expect)
			}
			if !strings.Contains(err.Error(), "weir.yaml:") {
				t.Fatalf("error not located: %v", err)
			}
		})
	}
}

func TestAzureSovereign(t *testing.T) {
	src := strings.NewReplacer("management.azure.com", "management.usgovcloudapi.net", "myvault.vault.azure.net", "myvault.vault.usgovcloudapi.net",
		"myapp.azurewebsites.net", "myapp.azurewebsites.us", "azure:\n", "azure:\n  cloud: usgov\n").Replace(azureBase)
	cfg, err := Parse("weir.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.Azure.CloudInfo(); c.ARMHost != "management.usgovcloudapi.net" || c.VaultResource != "https://vault.usgovcloudapi.net" {
		t.Fatalf("%+v", c)
	}
	// A public-cloud host is not intercepted for a usgov weir.
	if _, err := Parse("weir.yaml", []byte(strings.Replace(src, "myapp.azurewebsites.us", "myapp.azurewebsites.net", 1))); err == nil {
		t.Fatal("a public-cloud host was accepted in the usgov cloud")
	}
}
