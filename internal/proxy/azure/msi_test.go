package azure

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/weir-gw/weir/internal/audit"
	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/identity"
	"github.com/weir-gw/weir/internal/store"
)

const msiConfig = `data_dir: /tmp/weir-msi-test
listen: {postgres: 127.0.0.1:6432}
targets:
  - {name: arm, kind: azure-arm, endpoint: "https://management.azure.com"}
  - {name: vault, kind: azure-keyvault, endpoint: "https://v.vault.azure.net"}
agents:
  - {name: ops, targets: [arm, vault]}
  - {name: kv, targets: [vault]}
azure: {tenant_id: 72f988bf-0000-0000-0000-000000000000}
`

func newTokens(t *testing.T) (*Tokens, *identity.Authority, *[]audit.Event) {
	cfg, err := config.Parse("weir.yaml", []byte(msiConfig))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	auth, err := identity.NewAuthority(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	var events []audit.Event
	return &Tokens{Auth: auth, Cfg: cfg, Audit: func(_ context.Context, ev audit.Event) error { events = append(events, ev); return nil }}, auth, &events
}

func TestManagedIdentityEndpoint(t *testing.T) {
	tk, auth, events := newTokens(t)
	ctx := context.Background()
	ops, _, _ := auth.Issue(ctx, identity.IssueRequest{Agent: "ops", Targets: []string{"arm", "vault"}, TTL: 10 * time.Minute})
	kv, _, _ := auth.Issue(ctx, identity.IssueRequest{Agent: "kv", Targets: []string{"vault"}, TTL: 10 * time.Minute})
	srv := httptest.NewServer(tk.Handler())
	defer srv.Close()
	get := func(header, secret, resource string) (int, map[string]string) {
		req, _ := http.NewRequest("GET", srv.URL+"/msi/token?api-version=2019-08-01&resource="+url.QueryEscape(resource), nil)
		if header != "" {
			req.Header.Set(header, secret)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]string
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	tests := []struct {
		name, header, secret, resource string
		status                         int
		kind                           string
	}{
		{"ARM (App Service 2019)", "X-IDENTITY-HEADER", ops, "https://management.azure.com/", 200, config.KindAzureARM},
		{"ARM as az asks (2017)", "secret", ops, "https://management.core.windows.net/", 200, config.KindAzureARM},
		{"Key Vault scope form", "X-IDENTITY-HEADER", ops, "https://vault.azure.net/.default", 200, config.KindAzureKeyVault},
		{"no secret", "", "", "https://management.azure.com/", 401, ""},
		{"not a weir token", "X-IDENTITY-HEADER", "abc", "https://management.azure.com/", 401, ""},
		{"no ARM target", "X-IDENTITY-HEADER", kv, "https://management.azure.com/", 403, ""},
		{"unknown resource", "X-IDENTITY-HEADER", ops, "https://graph.microsoft.com/", 400, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := len(*events)
			status, out := get(tc.header, tc.secret, tc.resource)
			if status != tc.status {
				t.Fatalf("status %d %v", status, out)
			}
			if tc.header != "" && len(*events) != n+1 {
				t.Fatalf("token request not audited")
			}
			if status != 200 {
				return
			}
			id, kind, err := tk.Unwrap(out["access_token"])
			if err != nil || id != identity.TokenID(tc.secret) || kind != tc.kind || out["token_type"] != "Bearer" || out["expires_on"] == "" {
				t.Fatalf("unwrap: %v %q %q %v", err, kind, id, out)
			}
			// The access token names the weir token but does not carry it:
			// one that reaches a third party gives nothing for weir.
			if strings.Contains(out["access_token"], tc.secret) || strings.Contains(decodedPayload(t, out["access_token"]), tc.secret) {
				t.Fatal("the managed-identity token carries the weir token")
			}
			// Tampering with the payload breaks the signature.
			parts := strings.Split(out["access_token"], ".")
			p, _ := b64.DecodeString(parts[1])
			p = []byte(strings.Replace(string(p), `"weir_resource_kind":"`+tc.kind+`"`, `"weir_resource_kind":"azure-functions"`, 1))
			forged := parts[0] + "." + b64.EncodeToString(p) + "." + parts[2]
			if _, _, err := tk.Unwrap(forged); err == nil || err == ErrNotMI {
				t.Fatalf("forged token accepted: %v", err)
			}
		})
	}
	// A plain weir token is not a managed-identity token.
	if _, _, err := tk.Unwrap(ops); err != ErrNotMI {
		t.Fatalf("weir token read as MI token: %v", err)
	}
	// Expired: Unwrap refuses after exp.
	_, out := get("X-IDENTITY-HEADER", ops, "https://management.azure.com/")
	tk.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if _, _, err := tk.Unwrap(out["access_token"]); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired token: %v", err)
	}
}

func decodedPayload(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	p, err := b64.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	return string(p)
}
