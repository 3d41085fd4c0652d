package azure

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/weir-gw/weir/internal/config"
)

// UpstreamTransport is how weir reaches Azure: never through a proxy from
// its own environment (weir's HTTPS_PROXY could be itself), trusting the
// system roots or azure.upstream_ca_file, asking for no compression.
func UpstreamTransport(a *config.Azure) (*http.Transport, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if a.UpstreamCAFile != "" {
		pem, err := os.ReadFile(a.UpstreamCAFile)
		if err != nil {
			return nil, fmt.Errorf("azure.upstream_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("azure.upstream_ca_file %s holds no PEM certificate", a.UpstreamCAFile)
		}
		tc.RootCAs = pool
	}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tc,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 5 * time.Minute,
		DisableCompression:    true,
	}, nil
}

// Credential builds weir's own Entra credential from azure.credential.
// azidentity caches tokens per scope (MSAL's cache) and refreshes them
// before they expire. Its errors describe the failing flow, never the secret.
func Credential(a *config.Azure, transport *http.Transport) (azcore.TokenCredential, error) {
	cr := &a.Credential
	opts := azcore.ClientOptions{Transport: &http.Client{Transport: transport}}
	cl := a.CloudInfo()
	opts.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: cl.AuthorityHost, Services: map[cloud.ServiceName]cloud.ServiceConfiguration{}}
	custom := cr.AuthorityHost != ""
	if custom {
		opts.Cloud.ActiveDirectoryAuthorityHost = cr.AuthorityHost
	}
	switch {
	case cr.ClientSecretEnv != "":
		secret := os.Getenv(cr.ClientSecretEnv)
		if secret == "" {
			return nil, fmt.Errorf("environment variable %s (azure.credential.client_secret_env) is not set", cr.ClientSecretEnv)
		}
		return azidentity.NewClientSecretCredential(cr.TenantID, cr.ClientID, secret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: custom})
	case cr.CertificateFile != "":
		data, err := os.ReadFile(cr.CertificateFile)
		if err != nil {
			return nil, fmt.Errorf("azure.credential.certificate_file: %w", err)
		}
		var pw []byte
		if cr.CertificatePasswordEnv != "" {
			pw = []byte(os.Getenv(cr.CertificatePasswordEnv))
		}
		certs, key, err := azidentity.ParseCertificates(data, pw)
		if err != nil {
			return nil, fmt.Errorf("azure.credential.certificate_file %s: %w", cr.CertificateFile, err)
		}
		return azidentity.NewClientCertificateCredential(cr.TenantID, cr.ClientID, certs, key,
			&azidentity.ClientCertificateCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: custom})
	case cr.WorkloadIdentity:
		return azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: opts, ClientID: cr.ClientID, TenantID: cr.TenantID, DisableInstanceDiscovery: custom})
	case cr.ClientID != "":
		return azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts, ID: azidentity.ClientID(cr.ClientID)})
	default:
		return azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: custom})
	}
}

// scopeFor is the upstream token scope of a target kind.
func scopeFor(a *config.Azure, kind string) string {
	c := a.CloudInfo()
	if kind == config.KindAzureKeyVault {
		return c.VaultResource + "/.default"
	}
	return c.ARMScope
}
