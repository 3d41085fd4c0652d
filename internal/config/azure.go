package config

import (
	"net/url"
	"strconv"
)

// AzureTarget holds the keys of kind azure-arm, azure-keyvault and
// azure-functions targets.
type AzureTarget struct {
	// FunctionKeyEnv names the environment variable holding the function
	// (or host) key weir injects for an azure-functions target.
	FunctionKeyEnv string `yaml:"function_key_env"`
}

// Azure is the top-level azure: section: the HTTPS proxy (listen.azure_proxy)
// and the credential weir uses upstream for ARM and Key Vault.
type Azure struct {
	// Credential selects weir's own Entra credential: tenant_id, client_id
	// and client_secret_env for a client secret; only client_id for a
	// user-assigned managed identity; nothing for the default chain.
	Credential Entra `yaml:"credential"`
}

func (a *Azure) defaults() {}

func (a *Azure) validate(v *validator, c *Config) {
	if a.Credential.ClientSecretEnv != "" && (a.Credential.TenantID == "" || a.Credential.ClientID == "") {
		v.fail("azure.credential", "client_secret_env needs tenant_id and client_id")
	}
}

func (t *Target) azureDefaults() {}

func (t *Target) validateAzure(v *validator, key string) {
	u, err := url.Parse(t.Endpoint)
	if t.Endpoint == "" {
		v.fail(key+".endpoint", "missing: the upstream base URL, e.g. https://management.azure.com")
	} else if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		v.fail(key+".endpoint", "must be an https URL of a host, e.g. https://management.azure.com")
	}
	if t.Kind == KindAzureFunctions && t.Azure.FunctionKeyEnv == "" {
		v.fail(key+".function_key_env", "missing: name the environment variable that holds the function key weir injects")
	}
	t.noPostgresKeys(v, key)
}

func itoa(i int) string { return strconv.Itoa(i) }
