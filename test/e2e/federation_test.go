package e2e

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/weir-gw/weir/internal/audit"
	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/httpapi"
	"github.com/weir-gw/weir/internal/identity"
)

// A CI job exchanges its OIDC token (mockoidc as a real issuer) for a weir
// token, connects through weir with it, and the session's audit record
// carries the job's verified claims as attested context (issue 6).
func TestFederatedCIJobEndToEnd(t *testing.T) {
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Keypair.KeyID(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown()

	cfg := *env.cfg
	cfg.Agents = append([]config.Agent(nil), env.cfg.Agents...)
	cfg.Agents[0].Federation = []config.Federation{{Issuer: m.Issuer(), Audience: "weir", Subject: "repo:acme/shop:ref:refs/heads/*",
		When: `claims.repository_owner == "acme"`, Provider: "github-actions", TTL: 10 * time.Minute}}
	fed, err := identity.NewFederator(&cfg, env.auth, identity.FederatorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(httpapi.New(httpapi.Options{Federator: fed, Authority: env.auth, Audit: env.aw.Append}))
	defer api.Close()

	now := time.Now()
	oidc, err := m.Keypair.SignJWT(jwt.MapClaims{
		"iss": m.Issuer(), "aud": "weir", "sub": "repo:acme/shop:ref:refs/heads/main",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"repository": "acme/shop", "repository_owner": "acme", "ref": "refs/heads/main", "workflow": "deploy",
		"run_id": "4242", "actor": "octocat", "sha": "0123456789abcdef0123456789abcdef01234567",
	})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(api.URL+"/v1/token/exchange", "application/json", strings.NewReader(`{"token":"`+oidc+`","agent":"ci-bot"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Token   string `json:"token"`
		TokenID string `json:"token_id"`
		Error   string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("exchange: %d %+v %v", resp.StatusCode, out, err)
	}

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn(out.Token, "shop", "require"))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil || n == 0 {
		t.Fatalf("query with the exchanged token: %v", err)
	}
	conn.Close(ctx)

	var exchanged, started bool
	for _, r := range auditRecords(t) {
		if r.Type == httpapi.TypeTokenExchange && r.Data["result"] != "refused" && r.Data["token_id"] == out.TokenID {
			exchanged = true
		}
		if r.Type == audit.TypeSessionStart && r.Data["token_id"] == out.TokenID {
			ctxs := r.Data["context"].(map[string]any)
			att := ctxs["attested"].(map[string]any)
			if att["repository"] == "acme/shop" && att["run_id"] == "4242" && att["actor"] == "octocat" && strings.HasPrefix(r.Data["issued_by"].(string), "oidc:") {
				started = true
			} else {
				t.Errorf("attested context %v issued_by %v", att, r.Data["issued_by"])
			}
		}
	}
	if !started || !exchanged {
		t.Fatalf("audit: exchange recorded %v, session with the job's attested claims %v", exchanged, started)
	}
}
