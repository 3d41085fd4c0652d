package azure

import (
	"strings"
	"testing"

	"github.com/weir-gw/weir/internal/config"
)

// The vault (or site) a Key Vault or Functions request is decided for is
// the host the client asked for, but it is forwarded to the target's one
// endpoint. A target that names another vault than its endpoint, or two
// vaults, would have weir decide on one vault and run on another, so the
// config is refused.
func TestConfigVaultHostMustBeTheEndpoint(t *testing.T) {
	base := `listen:
  http: 127.0.0.1:0
  azure_proxy: 127.0.0.1:0
agents:
  - name: a
    targets: [t]
targets:
  - name: t
`
	for _, c := range []struct {
		target, want string
	}{
		{"    kind: azure-keyvault\n    endpoint: https://dev.vault.azure.net\n    hosts: [dev.vault.azure.net, prod.vault.azure.net]\n", "one host"},
		{"    kind: azure-keyvault\n    endpoint: https://dev.vault.azure.net\n    hosts: [prod.vault.azure.net]\n", "dev"},
		{"    kind: azure-functions\n    endpoint: https://app1.azurewebsites.net\n    hosts: [app2.azurewebsites.net]\n    function_key_env: K\n", "app1"},
		// accepted: the endpoint's own host, a private endpoint of the
		// same vault, an address (tests, private networks), ARM.
		{"    kind: azure-keyvault\n    endpoint: https://dev.vault.azure.net\n", ""},
		{"    kind: azure-keyvault\n    endpoint: https://dev.privatelink.vaultcore.azure.net\n    hosts: [dev.vault.azure.net]\n", ""},
		{"    kind: azure-keyvault\n    endpoint: https://10.0.0.5\n    hosts: [dev.vault.azure.net]\n", ""},
		{"    kind: azure-arm\n    endpoint: https://management.azure.com\n", ""},
	} {
		_, err := config.Parse("t.yaml", []byte(base+c.target))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.target, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: got %v, want an error naming %q", c.target, err, c.want)
		}
	}
}
