package azure

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// The Go SDK: DefaultAzureCredential takes its token from weir's
// managed-identity endpoint (IDENTITY_ENDPOINT/IDENTITY_HEADER, App Service
// 2019-08-01), and azcore's ARM and bearer-token pipelines send requests
// through the proxy. Go reads HTTPS_PROXY and SSL_CERT_FILE once per
// process, so this in-process client gets the same two settings as an
// explicit proxy URL and root pool (the same values `weir env` prints).
func TestGoSDK(t *testing.T) {
	tok := issueToken(t, "ci-bot")
	t.Setenv("IDENTITY_ENDPOINT", "http://"+w.httpAddr+"/msi/token")
	t.Setenv("IDENTITY_HEADER", tok)
	for _, v := range []string{"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE", "MSI_ENDPOINT", "MSI_SECRET"} {
		t.Setenv(v, "") // restores the variable after the test
		os.Unsetenv(v)
	}
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		t.Fatal(err)
	}
	proxy, _ := url.Parse("http://" + w.proxyAddr)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy), TLSClientConfig: &tls.Config{RootCAs: bundle(t)}}}
	opts := policy.ClientOptions{Transport: client, Retry: policy.RetryOptions{MaxRetries: -1}}
	ctx := context.Background()

	armClient, err := arm.NewClient("weir-e2e", "v0.0.1", cred, &arm.ClientOptions{ClientOptions: opts})
	if err != nil {
		t.Fatal(err)
	}
	do := func(p runtime.Pipeline, method, u string, body any) (int, string) {
		t.Helper()
		req, err := runtime.NewRequest(ctx, method, u)
		if err != nil {
			t.Fatal(err)
		}
		if body != nil {
			if err := runtime.MarshalAsJSON(req, body); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := p.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, u, err)
		}
		b, _ := runtime.Payload(resp)
		return resp.StatusCode, string(b)
	}
	status, body := do(armClient.Pipeline(), "GET", "https://management.azure.com/subscriptions/"+subID+"/resourcegroups?api-version=2022-09-01", nil)
	if status != 200 || !strings.Contains(body, "my-resource-group") {
		t.Fatalf("list resource groups: %d %s", status, body)
	}
	status, body = do(armClient.Pipeline(), "PUT", "https://management.azure.com/subscriptions/"+subID+"/resourceGroups/rg-dev/providers/Microsoft.Authorization/roleAssignments/5b1e8b0e-3a44-4c55-8e7e-0d6e1bde1a01?api-version=2022-04-01",
		map[string]any{"properties": map[string]string{"roleDefinitionId": "x", "principalId": "y"}})
	var armErr struct {
		Error struct{ Code, Message string }
	}
	json.Unmarshal([]byte(body), &armErr)
	if status != 403 || !strings.Contains(armErr.Error.Message, "no-role-assignments") {
		t.Fatalf("role assignment through the SDK: %d %s", status, body)
	}

	// Key Vault: a bearer-token pipeline for vault.azure.net.
	kv := runtime.NewPipeline("weir-e2e", "v0.0.1", runtime.PipelineOptions{
		PerRetry: []policy.Policy{runtime.NewBearerTokenPolicy(cred, []string{"https://vault.azure.net/.default"}, nil)},
	}, &opts)
	status, body = do(kv, "GET", "https://myvault.vault.azure.net/secrets/mysecretname?api-version=7.4", nil)
	var secret struct{ Value, ID string }
	if err := json.Unmarshal([]byte(body), &secret); err != nil || status != 200 || secret.Value == "" || strings.Contains(body, "mysecretvalue") {
		t.Fatalf("get secret: %d %s", status, body)
	}
	var _ azcore.TokenCredential = cred
}
