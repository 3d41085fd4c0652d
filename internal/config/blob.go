package config

import (
	"net/url"
	"regexp"
)

// BlobTarget holds the keys of a kind: azure-blob target.
type BlobTarget struct {
	// Account is the storage account name weir signs upstream requests as.
	Account string `yaml:"account"`
	// AccountKeyEnv names the environment variable holding the account key
	// (auth: shared-key); the key itself never goes in the config.
	AccountKeyEnv string `yaml:"account_key_env"`
	// CopySources lists the storage accounts a copy (x-ms-copy-source) may
	// read from; any other source is refused.
	CopySources []string `yaml:"copy_sources"`
}

var storageAccountName = regexp.MustCompile(`^[a-z0-9]{3,24}$`)

func (t *Target) blobDefaults() {
	if t.Auth == "" {
		t.Auth = "shared-key"
	}
	if t.Entra.Scope == "" {
		t.Entra.Scope = "https://storage.azure.com/.default"
	}
}

func (t *Target) validateBlob(v *validator, key string) {
	u, err := url.Parse(t.Endpoint)
	if t.Endpoint == "" {
		v.fail(key+".endpoint", "missing: the upstream blob endpoint, e.g. https://ACCOUNT.blob.core.windows.net (Azurite: http://127.0.0.1:10000/devstoreaccount1)")
	} else if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		v.fail(key+".endpoint", "must be an http(s) URL without query, e.g. https://ACCOUNT.blob.core.windows.net")
	}
	if !storageAccountName.MatchString(t.Blob.Account) {
		v.fail(key+".account", "must be the storage account name (3-24 lower-case letters and digits), got %q", t.Blob.Account)
	}
	switch t.Auth {
	case "shared-key":
		if t.Blob.AccountKeyEnv == "" {
			v.fail(key+".account_key_env", "missing: name the environment variable that holds the account key (the key itself never goes in the config)")
		}
	case "entra":
		if t.Entra.ClientSecretEnv != "" && (t.Entra.TenantID == "" || t.Entra.ClientID == "") {
			v.fail(key+".entra", "client_secret_env needs tenant_id and client_id")
		}
	default:
		v.fail(key+".auth", `must be "shared-key" or "entra" for an azure-blob target, got %q`, t.Auth)
	}
	for i, a := range t.Blob.CopySources {
		if !storageAccountName.MatchString(a) {
			v.fail(key+".copy_sources["+itoa(i)+"]", "must be a storage account name, got %q", a)
		}
	}
	t.noPostgresKeys(v, key)
}

// noPostgresKeys refuses PostgreSQL keys on an Azure target, where they
// would be silently ignored.
func (t *Target) noPostgresKeys(v *validator, key string) {
	if t.Address != "" || t.Database != "" || t.Username != "" || t.PasswordEnv != "" || t.SSLMode != "" || t.SSLRootCert != "" {
		v.fail(key, "address, database, username, password_env, sslmode and sslrootcert belong to postgres targets; an %s target uses endpoint", t.Kind)
	}
}
