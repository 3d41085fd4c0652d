package config

import (
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// AzureTarget holds the keys of kind azure-arm, azure-keyvault and
// azure-functions targets.
type AzureTarget struct {
	// FunctionKeyEnv names the environment variable holding the function
	// (or host) key weir injects for an azure-functions target.
	FunctionKeyEnv string `yaml:"function_key_env"`
	// Hosts are the host names agents' clients ask the HTTPS proxy for
	// (CONNECT host:443) that this target answers, e.g. management.azure.com
	// or myvault.vault.azure.net. Default: the endpoint's host. Each must be
	// allowed by the cloud's host list or azure.allowed_hosts.
	Hosts []string `yaml:"hosts"`
}

// Azure is the top-level azure: section: the HTTPS proxy (listen.azure_proxy),
// the managed-identity endpoint and the credential weir uses upstream for
// ARM and Key Vault.
type Azure struct {
	// Cloud selects the host names and token audiences: public (default),
	// china or usgov.
	Cloud string `yaml:"cloud"`
	// Credential is weir's own Entra credential for ARM and Key Vault.
	Credential AzureCredential `yaml:"credential"`
	// AllowedHosts adds host patterns ("name" or "*.suffix") that targets'
	// hosts may use, beyond the cloud's own (ARM, *.vault…, *.azurewebsites…).
	AllowedHosts []string `yaml:"allowed_hosts"`
	// APIVersions, when set, are the only api-version values accepted;
	// otherwise any stable (non-preview) version is.
	APIVersions []string `yaml:"api_versions"`
	// UpstreamCAFile is a PEM bundle of roots weir trusts for upstream TLS
	// instead of the system's (for tests and private endpoints).
	UpstreamCAFile string `yaml:"upstream_ca_file"`
	// TenantID is the tid claim of the managed-identity tokens weir hands
	// out (az reads it to find subscriptions). Default: credential.tenant_id.
	TenantID string `yaml:"tenant_id"`
	// MaxBodyBytes bounds request and response bodies weir inspects
	// (decompressed); larger ones are refused. Default 16 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// AzureCredential selects weir's upstream Entra credential: a client secret
// (tenant_id, client_id, client_secret_env), a certificate (tenant_id,
// client_id, certificate_file), workload identity (workload_identity: true,
// from AZURE_FEDERATED_TOKEN_FILE), a user-assigned managed identity (only
// client_id) or, with nothing set, the default chain.
type AzureCredential struct {
	TenantID               string `yaml:"tenant_id"`
	ClientID               string `yaml:"client_id"`
	ClientSecretEnv        string `yaml:"client_secret_env"`
	CertificateFile        string `yaml:"certificate_file"`
	CertificatePasswordEnv string `yaml:"certificate_password_env"`
	WorkloadIdentity       bool   `yaml:"workload_identity"`
	// AuthorityHost overrides the Entra login host (sovereign clouds pick
	// theirs from cloud; tests point it at a local token endpoint).
	AuthorityHost string `yaml:"authority_host"`
}

// AzureCloud is what weir knows about one Azure cloud.
type AzureCloud struct {
	ARMHost string
	// ARMResources are the token resources (audiences) clients ask for ARM.
	ARMResources  []string
	ARMScope      string
	VaultSuffix   string // ".vault.azure.net"
	VaultResource string
	WebSuffix     string // ".azurewebsites.net"
	BlobSuffix    string
	AuthorityHost string
}

// AzureClouds are the clouds azure.cloud may name.
var AzureClouds = map[string]AzureCloud{
	"public": {ARMHost: "management.azure.com", ARMResources: []string{"https://management.core.windows.net/", "https://management.azure.com/"},
		ARMScope: "https://management.azure.com/.default", VaultSuffix: ".vault.azure.net", VaultResource: "https://vault.azure.net",
		WebSuffix: ".azurewebsites.net", BlobSuffix: ".blob.core.windows.net", AuthorityHost: "https://login.microsoftonline.com/"},
	"china": {ARMHost: "management.chinacloudapi.cn", ARMResources: []string{"https://management.core.chinacloudapi.cn/", "https://management.chinacloudapi.cn/"},
		ARMScope: "https://management.chinacloudapi.cn/.default", VaultSuffix: ".vault.azure.cn", VaultResource: "https://vault.azure.cn",
		WebSuffix: ".chinacloudsites.cn", BlobSuffix: ".blob.core.chinacloudapi.cn", AuthorityHost: "https://login.chinacloudapi.cn/"},
	"usgov": {ARMHost: "management.usgovcloudapi.net", ARMResources: []string{"https://management.core.usgovcloudapi.net/", "https://management.usgovcloudapi.net/"},
		ARMScope: "https://management.usgovcloudapi.net/.default", VaultSuffix: ".vault.usgovcloudapi.net", VaultResource: "https://vault.usgovcloudapi.net",
		WebSuffix: ".azurewebsites.us", BlobSuffix: ".blob.core.usgovcloudapi.net", AuthorityHost: "https://login.microsoftonline.us/"},
}

// CloudInfo returns the selected cloud.
func (a *Azure) CloudInfo() AzureCloud { return AzureClouds[a.Cloud] }

// HostPatterns are the host patterns a target's hosts may use.
func (a *Azure) HostPatterns() []string {
	c := a.CloudInfo()
	p := []string{c.ARMHost, "*" + c.VaultSuffix, "*" + c.WebSuffix, "*" + c.BlobSuffix}
	for _, h := range a.AllowedHosts {
		p = append(p, strings.ToLower(h))
	}
	return p
}

// HostAllowed reports whether host matches one of the patterns.
func (a *Azure) HostAllowed(host string) bool {
	host = strings.ToLower(host)
	for _, p := range a.HostPatterns() {
		if suffix, ok := strings.CutPrefix(p, "*"); ok {
			if strings.HasSuffix(host, suffix) && len(host) > len(suffix) && !strings.Contains(host[:len(host)-len(suffix)], ".") {
				return true
			}
		} else if host == p {
			return true
		}
	}
	return false
}

// DefaultAzureMaxBody bounds inspected bodies unless azure.max_body_bytes says otherwise.
const DefaultAzureMaxBody = 16 << 20

func (a *Azure) defaults() {
	if a.Cloud == "" {
		a.Cloud = "public"
	}
	if a.TenantID == "" {
		a.TenantID = a.Credential.TenantID
	}
	if a.TenantID == "" {
		a.TenantID = "00000000-0000-0000-0000-000000000000"
	}
	if a.MaxBodyBytes == 0 {
		a.MaxBodyBytes = DefaultAzureMaxBody
	}
}

var (
	hostPattern = regexp.MustCompile(`^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$`)
	// APIVersionStable is an api-version weir accepts without azure.api_versions:
	// ARM's dated versions and Key Vault's numbered ones, never previews.
	APIVersionStable = regexp.MustCompile(`^(\d{4}-\d{2}-\d{2}|\d{1,2}\.\d{1,2})$`)
)

func (a *Azure) validate(v *validator, c *Config) {
	cr := &a.Credential
	if _, ok := AzureClouds[a.Cloud]; !ok {
		v.fail("azure.cloud", "must be public, china or usgov, got %q", a.Cloud)
	}
	n := 0
	if cr.ClientSecretEnv != "" {
		n++
	}
	if cr.CertificateFile != "" {
		n++
	}
	if cr.WorkloadIdentity {
		n++
	}
	if n > 1 {
		v.fail("azure.credential", "choose one of client_secret_env, certificate_file and workload_identity")
	}
	if (cr.ClientSecretEnv != "" || cr.CertificateFile != "") && (cr.TenantID == "" || cr.ClientID == "") {
		v.fail("azure.credential", "client_secret_env and certificate_file need tenant_id and client_id")
	}
	if cr.AuthorityHost != "" {
		if u, err := url.Parse(cr.AuthorityHost); err != nil || u.Scheme != "https" || u.Host == "" {
			v.fail("azure.credential.authority_host", "must be an https URL, e.g. https://login.microsoftonline.com/")
		}
	}
	for i, h := range a.AllowedHosts {
		if !hostPattern.MatchString(strings.ToLower(h)) {
			v.fail("azure.allowed_hosts["+itoa(i)+"]", `must be a host name or "*.suffix", got %q`, h)
		}
	}
	for i, ver := range a.APIVersions {
		if ver == "" || strings.ContainsAny(ver, "&=#?/ ") {
			v.fail("azure.api_versions["+itoa(i)+"]", "must be an api-version such as 2022-09-01 or 7.4, got %q", ver)
		}
	}
	if a.UpstreamCAFile != "" {
		if _, err := os.Stat(a.UpstreamCAFile); err != nil {
			v.fail("azure.upstream_ca_file", "cannot read: %v", err)
		}
	}
	if a.MaxBodyBytes < 4096 || a.MaxBodyBytes > 1<<30 {
		v.fail("azure.max_body_bytes", "must be between 4096 and 1 GiB, got %d", a.MaxBodyBytes)
	}
	if c.Listen.AzureProxy != "" {
		if _, _, err := net.SplitHostPort(c.Listen.AzureProxy); err != nil {
			v.fail("listen.azure_proxy", "must be host:port: %v", err)
		}
	}
	seen := map[string]string{}
	for i := range c.Targets {
		t := &c.Targets[i]
		switch t.Kind {
		case KindAzureARM, KindAzureKeyVault, KindAzureFunctions:
		default:
			continue
		}
		for j, h := range t.Azure.Hosts {
			key := "targets[" + itoa(i) + "].hosts[" + itoa(j) + "]"
			switch {
			case !hostPattern.MatchString(h) || strings.HasPrefix(h, "*"):
				v.fail(key, "must be a lower-case host name, got %q", h)
			case !a.HostAllowed(h):
				v.fail(key, "host %q is not an Azure host weir intercepts (%s); add it to azure.allowed_hosts if it is one", h, strings.Join(a.HostPatterns(), ", "))
			case seen[h] != "":
				v.fail(key, "host %q is already served by target %s", h, seen[h])
			}
			seen[h] = t.Name
		}
	}
}

func (t *Target) azureDefaults() {
	if len(t.Azure.Hosts) == 0 {
		if u, err := url.Parse(t.Endpoint); err == nil && u.Hostname() != "" && net.ParseIP(u.Hostname()) == nil {
			t.Azure.Hosts = []string{strings.ToLower(u.Hostname())}
		}
	}
}

func (t *Target) validateAzure(v *validator, key string) {
	u, err := url.Parse(t.Endpoint)
	if t.Endpoint == "" {
		v.fail(key+".endpoint", "missing: the upstream base URL, e.g. https://management.azure.com")
	} else if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		v.fail(key+".endpoint", "must be an https URL of a host, e.g. https://management.azure.com")
	}
	if len(t.Azure.Hosts) == 0 {
		v.fail(key+".hosts", "missing: name the host(s) clients ask for (e.g. management.azure.com); the endpoint is an address, so weir cannot derive them")
	}
	if (t.Kind == KindAzureKeyVault || t.Kind == KindAzureFunctions) && len(t.Azure.Hosts) > 0 {
		// weir decides on the vault (site) the client asked for and runs
		// the request at the endpoint: they must be the same one.
		what := map[string]string{KindAzureKeyVault: "vault", KindAzureFunctions: "function app"}[t.Kind]
		if len(t.Azure.Hosts) > 1 {
			v.fail(key+".hosts", "an %s target serves one %s: give it one host (one target per %s), got %s", t.Kind, what, what, strings.Join(t.Azure.Hosts, ", "))
		} else if err == nil && u.Hostname() != "" && net.ParseIP(u.Hostname()) == nil && u.Hostname() != "localhost" {
			ep, _, _ := strings.Cut(strings.ToLower(u.Hostname()), ".")
			h, _, _ := strings.Cut(t.Azure.Hosts[0], ".")
			if ep != h {
				v.fail(key+".hosts", "host %s names %s %q but the endpoint is %s %q: weir would decide on one and run the request on the other", t.Azure.Hosts[0], what, h, what, ep)
			}
		}
	}
	if t.Kind == KindAzureFunctions && t.Azure.FunctionKeyEnv == "" {
		v.fail(key+".function_key_env", "missing: name the environment variable that holds the function key weir injects")
	}
	if t.Kind != KindAzureFunctions && t.Azure.FunctionKeyEnv != "" {
		v.fail(key+".function_key_env", "only an azure-functions target takes a function key")
	}
	t.noPostgresKeys(v, key)
}

func itoa(i int) string { return strconv.Itoa(i) }
