package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/weir-gw/weir/internal/config"
)

// testIssuer is a real OIDC issuer over loopback (discovery, JWKS,
// signing) with counters of the requests weir makes to it.
type testIssuer struct {
	m         *mockoidc.MockOIDC
	discovery atomic.Int64
	jwks      atomic.Int64
}

func startIssuer(t *testing.T) *testIssuer {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	ti := &testIssuer{m: m}
	if err := m.AddMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case mockoidc.DiscoveryEndpoint:
				ti.discovery.Add(1)
			case mockoidc.JWKSEndpoint:
				ti.jwks.Add(1)
			}
			next.ServeHTTP(w, r)
		})
	}); err != nil {
		t.Fatal(err)
	}
	// Compute the key id before the server shares the key pair.
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
	t.Cleanup(func() { m.Shutdown() })
	return ti
}

func (ti *testIssuer) issuer() string { return ti.m.Issuer() }

// sign signs claims with the issuer's current (published) key.
func (ti *testIssuer) sign(t *testing.T, c jwt.MapClaims) string {
	t.Helper()
	tok, err := ti.m.Keypair.SignJWT(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// rotate makes the issuer sign with, and publish only, a new key.
func (ti *testIssuer) rotate(t *testing.T) *mockoidc.Keypair {
	t.Helper()
	kp, err := mockoidc.RandomKeypair(2048)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kp.KeyID(); err != nil {
		t.Fatal(err)
	}
	old := ti.m.Keypair
	ti.m.Keypair = kp
	return old
}

func githubClaims(iss string, now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": iss, "aud": "weir", "sub": "repo:acme/shop:ref:refs/heads/main",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": "gh-1",
		"repository": "acme/shop", "repository_id": "123", "repository_owner": "acme", "repository_owner_id": "42",
		"ref": "refs/heads/main", "ref_type": "branch", "sha": "0123456789abcdef0123456789abcdef01234567",
		"workflow": "deploy", "workflow_ref": "acme/shop/.github/workflows/deploy.yml@refs/heads/main",
		"job_workflow_ref": "acme/shop/.github/workflows/deploy.yml@refs/heads/main", "run_id": "1001", "run_attempt": "2", "actor": "octocat", "actor_id": "7", "event_name": "push",
		"environment": "prod", "runner_environment": "github-hosted",
	}
}

const defaultFederation = `    federation:
      - issuer: ISSUER
        audience: weir
        subject: "repo:acme/shop:ref:refs/heads/*"
        when: 'claims.repository_owner == "acme"'
        provider: github-actions
        ttl: 15m
`

func fedConfig(t *testing.T, issuer, federation string) *config.Config {
	t.Helper()
	text := `data_dir: ` + filepath.Join(t.TempDir(), "data") + `
listen:
  postgres: 127.0.0.1:0
  http: 127.0.0.1:0
targets:
  - name: orders
    kind: postgres
    address: 127.0.0.1:5432
    database: orders
    username: weir_agent
    password_env: ORDERS_PG_PASSWORD
agents:
  - name: manual-bot
    targets: [orders]
  - name: ci-bot
    targets: [orders]
    max_ttl: 1h
` + strings.ReplaceAll(federation, "ISSUER", issuer)
	cfg, err := config.Parse("weir.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

type fedEnv struct {
	auth *Authority
	fed  *Federator
	now  time.Time
}

// newFed builds a federator and authority sharing a fixed clock at now.
func newFed(t *testing.T, cfg *config.Config, now time.Time) *fedEnv {
	t.Helper()
	a, _ := newAuthority(t)
	clock := func() time.Time { return now }
	a.SetClock(clock)
	f, err := NewFederator(cfg, a, FederatorOptions{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	return &fedEnv{auth: a, fed: f, now: now}
}

func TestExchangeAccepted(t *testing.T) {
	ctx := context.Background()
	ti := startIssuer(t)
	now := time.Now().Truncate(time.Second)
	e := newFed(t, fedConfig(t, ti.issuer(), defaultFederation), now)
	raw := ti.sign(t, githubClaims(ti.issuer(), now))

	tok, c, err := e.fed.Exchange(ctx, raw, "ci-bot", "127.0.0.1:5555")
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.auth.Verify(ctx, tok)
	if err != nil {
		t.Fatalf("the issued weir token does not verify: %v", err)
	}
	if got.ID != c.ID || got.Agent != "ci-bot" || !got.AllowsTarget("orders") || got.IssuedBy != "oidc:"+ti.issuer() {
		t.Fatalf("claims %+v", got)
	}
	want := map[string]string{
		"provider": "github-actions", "issuer": ti.issuer(), "subject": "repo:acme/shop:ref:refs/heads/main", "federation_rule": "0",
		"repository": "acme/shop", "repository_id": "123", "repository_owner": "acme", "repository_owner_id": "42",
		"ref": "refs/heads/main", "ref_type": "branch", "sha": "0123456789abcdef0123456789abcdef01234567",
		"workflow": "deploy", "workflow_ref": "acme/shop/.github/workflows/deploy.yml@refs/heads/main",
		"job_workflow_ref": "acme/shop/.github/workflows/deploy.yml@refs/heads/main", "run_id": "1001", "run_attempt": "2", "actor": "octocat", "actor_id": "7", "event_name": "push", "environment": "prod",
	}
	if len(got.Context) != len(want) {
		t.Errorf("context has %d keys, want %d: %v", len(got.Context), len(want), got.Context)
	}
	for k, v := range want {
		if got.Context[k] != v {
			t.Errorf("context[%s] = %q, want %q", k, got.Context[k], v)
		}
	}
	if _, ok := got.Context["runner_environment"]; ok {
		t.Error("an unmapped claim reached the context")
	}
	if d := got.Expiry().Sub(now); d != 5*time.Minute {
		t.Errorf("TTL %s, want the OIDC token's remaining 5m", d)
	}
	// Discovery once; a second exchange with the same key uses the cached JWKS.
	if _, _, err := e.fed.Exchange(ctx, ti.sign(t, githubClaims(ti.issuer(), now)), "ci-bot", ""); err != nil {
		t.Fatal(err)
	}
	if d, j := ti.discovery.Load(), ti.jwks.Load(); d != 1 || j != 1 {
		t.Errorf("discovery fetched %d times, JWKS %d times; want 1 and 1", d, j)
	}
}

// An ID token from the issuer's own authorization-code flow (not one this
// test assembled) is accepted with the generic mapping.
func TestExchangeIssuerFlowToken(t *testing.T) {
	ctx := context.Background()
	ti := startIssuer(t)
	ti.m.QueueUser(&mockoidc.MockUser{Subject: "runner-7", Email: "runner@example.com"})
	cfg := fedConfig(t, ti.issuer(), `    federation:
      - issuer: ISSUER
        audience: `+ti.m.ClientID+`
        subject: "runner-?"
        when: 'claims.email == "runner@example.com"'
`)
	e := newFed(t, cfg, time.Now())

	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	q := url.Values{"client_id": {ti.m.ClientID}, "scope": {"openid email"}, "state": {"s"}, "response_type": {"code"}, "redirect_uri": {"http://127.0.0.1/cb"}}
	resp, err := noRedirect.Get(ti.m.AuthorizationEndpoint() + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("authorize: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, err = http.PostForm(ti.m.TokenEndpoint(), url.Values{
		"client_id": {ti.m.ClientID}, "client_secret": {ti.m.ClientSecret}, "grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr struct {
		IDToken string `json:"id_token"`
	}
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &tr); err != nil || tr.IDToken == "" {
		t.Fatalf("token endpoint: %d %s", resp.StatusCode, body)
	}
	tok, _, err := e.fed.Exchange(ctx, tr.IDToken, "ci-bot", "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.auth.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if got.Context["provider"] != "generic" || got.Context["subject"] != "runner-7" || len(got.Context) != 4 {
		t.Fatalf("context %v", got.Context)
	}
}

func TestExchangeRefused(t *testing.T) {
	ctx := context.Background()
	ti := startIssuer(t)
	now := time.Now()
	e := newFed(t, fedConfig(t, ti.issuer(), defaultFederation), now)
	iss := ti.issuer()
	kid, _ := ti.m.Keypair.KeyID()

	other, err := mockoidc.RandomKeypair(2048)
	if err != nil {
		t.Fatal(err)
	}
	sameKid := &mockoidc.Keypair{PrivateKey: other.PrivateKey, PublicKey: other.PublicKey, Kid: kid}
	signWith := func(kp *mockoidc.Keypair, c jwt.MapClaims) string {
		tok, err := kp.SignJWT(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	with := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := githubClaims(iss, now)
		mod(c)
		return c
	}
	b64url := base64.RawURLEncoding.EncodeToString
	payload := func(c jwt.MapClaims) string {
		b, _ := json.Marshal(c)
		return b64url(b)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(ti.m.Keypair.PublicKey)
	hs256 := func() string {
		tk := jwt.NewWithClaims(jwt.SigningMethodHS256, githubClaims(iss, now))
		tk.Header["kid"] = kid
		s, err := tk.SignedString(pubDER)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	es256 := func() string {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tk := jwt.NewWithClaims(jwt.SigningMethodES256, githubClaims(iss, now))
		tk.Header["kid"] = "es-never-published"
		s, err := tk.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	valid := ti.sign(t, githubClaims(iss, now))
	vparts := strings.Split(valid, ".")

	tests := []struct {
		name   string
		agent  string
		token  string
		want   *ExchangeReason
		status string // substring of Detail, when worth checking
	}{
		{"wrong audience", "ci-bot", ti.sign(t, with(func(c jwt.MapClaims) { c["aud"] = "not-weir" })), ErrExchangeAudience, "wants audience"},
		{"audience list without weir", "ci-bot", ti.sign(t, with(func(c jwt.MapClaims) { c["aud"] = []string{"a", "b"} })), ErrExchangeAudience, ""},
		{"wrong issuer", "ci-bot", ti.sign(t, with(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" })), ErrExchangeIssuer, ""},
		{"subject of another repository", "ci-bot", ti.sign(t, with(func(c jwt.MapClaims) { c["sub"] = "repo:evil/shop:ref:refs/heads/main" })), ErrExchangeSubject, ""},
		{"subject pull request", "ci-bot", ti.sign(t, with(func(c jwt.MapClaims) { c["sub"] = "repo:acme/shop:pull_request" })), ErrExchangeSubject, ""},
		{"subject star does not cross colon", "ci-bot", ti.sign(t, with(func(c jwt.MapClaims) { c["sub"] = "repo:acme/shop:ref:refs/heads/x:environment:prod" })), ErrExchangeSubject, ""},
		{"condition false", "ci-bot", ti.sign(t, with(func(c jwt.MapClaims) { c["repository_owner"] = "evil" })), ErrExchangeCondition, "condition is false"},
		{"condition on missing claim", "ci-bot", ti.sign(t, with(func(c jwt.MapClaims) { delete(c, "repository_owner") })), ErrExchangeCondition, "could not be evaluated"},
		{"expired", "ci-bot", ti.sign(t, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Second).Unix() })), ErrExchangeExpired, ""},
		{"expires now", "ci-bot", ti.sign(t, with(func(c jwt.MapClaims) { c["exp"] = now.Unix() })), ErrExchangeExpired, ""},
		{"not yet valid", "ci-bot", ti.sign(t, with(func(c jwt.MapClaims) { c["nbf"] = now.Add(10 * time.Minute).Unix() })), ErrExchangeNotYetValid, ""},
		{"issued in the future", "ci-bot", ti.sign(t, with(func(c jwt.MapClaims) { c["iat"] = now.Add(10 * time.Minute).Unix() })), ErrExchangeNotYetValid, ""},
		{"no exp", "ci-bot", ti.sign(t, with(func(c jwt.MapClaims) { delete(c, "exp") })), ErrExchangeMalformed, ""},
		{"no sub", "ci-bot", ti.sign(t, with(func(c jwt.MapClaims) { delete(c, "sub") })), ErrExchangeMalformed, ""},
		{"signed by another key under the published kid", "ci-bot", signWith(sameKid, githubClaims(iss, now)), ErrExchangeSignature, ""},
		{"signed by a key never published", "ci-bot", signWith(other, githubClaims(iss, now)), ErrExchangeSignature, ""},
		{"ES256 by a key never published", "ci-bot", es256(), ErrExchangeSignature, ""},
		{"tampered payload", "ci-bot", vparts[0] + "." + payload(with(func(c jwt.MapClaims) { c["repository"] = "acme/other" })) + "." + vparts[2], ErrExchangeSignature, ""},
		{"alg none", "ci-bot", b64url([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + payload(githubClaims(iss, now)) + ".", ErrExchangeSignature, `"none"`},
		{"alg none with kid", "ci-bot", b64url([]byte(`{"alg":"none","kid":"`+kid+`"}`)) + "." + payload(githubClaims(iss, now)) + "." + vparts[2], ErrExchangeSignature, ""},
		{"HS256 keyed with the public key", "ci-bot", hs256(), ErrExchangeSignature, `"HS256"`},
		{"not a JWT", "ci-bot", "hello", ErrExchangeMalformed, ""},
		{"JWS JSON serialization", "ci-bot", `{"payload":"` + vparts[1] + `","protected":"` + vparts[0] + `","signature":"` + vparts[2] + `"}`, ErrExchangeMalformed, ""},
		{"garbage segments", "ci-bot", "a.b.c", ErrExchangeMalformed, ""},
		{"oversized", "ci-bot", strings.Repeat("a", maxOIDCTokenLen+1), ErrExchangeMalformed, ""},
		{"unknown agent", "no-such-bot", valid, ErrExchangeUnknownAgent, ""},
		{"agent without federation", "manual-bot", valid, ErrExchangeNoRule, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, c, err := e.fed.Exchange(ctx, tc.token, tc.agent, "127.0.0.1:1")
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v (%+v), want %v", err, err, tc.want)
			}
			if tok != "" || c.ID != "" {
				t.Fatal("a refused exchange returned a token")
			}
			var xe *ExchangeError
			if !errors.As(err, &xe) {
				t.Fatalf("%T is not an *ExchangeError", err)
			}
			if err.Error() != tc.want.Error() {
				t.Errorf("public text %q, want %q", err.Error(), tc.want.Error())
			}
			if tc.status != "" && !strings.Contains(xe.Detail, tc.status) {
				t.Errorf("detail %q lacks %q", xe.Detail, tc.status)
			}
			// The token (or its signature) never appears in what is logged or shown.
			everything := fmt.Sprintf("%v %+v %#v", err, xe, xe)
			parts := strings.Split(tc.token, ".")
			for _, p := range append(parts, tc.token) {
				if len(p) > 16 && strings.Contains(everything, p) {
					t.Errorf("the error contains part of the token: %s", everything)
				}
			}
			if tc.want == ErrExchangeSignature && xe.Subject != "" {
				t.Errorf("subject %q reported from an unverified token", xe.Subject)
			}
		})
	}
}

// The issuer rotates its key: a token signed by the new key is accepted
// after weir refetches the JWKS (unknown kid); one signed by the retired
// key or by a key never published is refused.
func TestExchangeKeyRotation(t *testing.T) {
	ctx := context.Background()
	ti := startIssuer(t)
	now := time.Now()
	e := newFed(t, fedConfig(t, ti.issuer(), defaultFederation), now)
	if _, _, err := e.fed.Exchange(ctx, ti.sign(t, githubClaims(ti.issuer(), now)), "ci-bot", ""); err != nil {
		t.Fatal(err)
	}
	if n := ti.jwks.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times", n)
	}
	old := ti.rotate(t)
	tok, _, err := e.fed.Exchange(ctx, ti.sign(t, githubClaims(ti.issuer(), now)), "ci-bot", "")
	if err != nil {
		t.Fatalf("token signed by the rotated key: %v", err)
	}
	if _, err := e.auth.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if n := ti.jwks.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want a refetch on the new kid", n)
	}
	retired, err := old.SignJWT(githubClaims(ti.issuer(), now))
	if err != nil {
		t.Fatal(err)
	}
	// go-oidc wakes the caller that triggered a refetch before it stores
	// the new key set, so for a moment the retired key is still cached (as
	// it is anywhere between an issuer's rotation and weir's next refetch).
	// Once the cache holds the new set, the retired key must be refused.
	for i := 0; ; i++ {
		_, _, err := e.fed.Exchange(ctx, retired, "ci-bot", "")
		if errors.Is(err, ErrExchangeSignature) {
			break
		}
		if err != nil || i == 500 {
			t.Fatalf("token signed by the retired key: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	never, err := mockoidc.RandomKeypair(2048)
	if err != nil {
		t.Fatal(err)
	}
	unpublished, err := never.SignJWT(githubClaims(ti.issuer(), now))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.fed.Exchange(ctx, unpublished, "ci-bot", ""); !errors.Is(err, ErrExchangeSignature) {
		t.Fatalf("token signed by a key never published: %v", err)
	}
	// The new key still works from the cache.
	if _, _, err := e.fed.Exchange(ctx, ti.sign(t, githubClaims(ti.issuer(), now)), "ci-bot", ""); err != nil {
		t.Fatal(err)
	}
}

func TestExchangeIssuerUnavailable(t *testing.T) {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there any more
	iss := "http://" + addr + "/oidc"
	now := time.Now()
	e := newFed(t, fedConfig(t, iss, defaultFederation), now)
	ti := startIssuer(t) // only for its signing key
	raw := ti.sign(t, githubClaims(iss, now))
	for range 2 {
		if _, _, err := e.fed.Exchange(ctx, raw, "ci-bot", ""); !errors.Is(err, ErrExchangeUnavailable) {
			t.Fatalf("got %v", err)
		}
	}

	// The issuer goes away after discovery: a token with a new kid cannot be checked.
	ti2 := startIssuer(t)
	e2 := newFed(t, fedConfig(t, ti2.issuer(), defaultFederation), now)
	if _, _, err := e2.fed.Exchange(ctx, ti2.sign(t, githubClaims(ti2.issuer(), now)), "ci-bot", ""); err != nil {
		t.Fatal(err)
	}
	ti2.rotate(t)
	raw2 := ti2.sign(t, githubClaims(ti2.issuer(), now))
	ti2.m.Shutdown()
	if _, _, err := e2.fed.Exchange(ctx, raw2, "ci-bot", ""); !errors.Is(err, ErrExchangeUnavailable) {
		t.Fatalf("got %v", err)
	}
}

// The weir token lives min(rule ttl or tokens.default_ttl, agent max_ttl,
// the OIDC token's remaining lifetime).
func TestExchangeTTL(t *testing.T) {
	ctx := context.Background()
	ti := startIssuer(t)
	now := time.Now().Truncate(time.Second)
	rule := func(ttl string) string {
		s := `    federation:
      - issuer: ISSUER
        audience: weir
        subject: "repo:acme/shop:**"
`
		if ttl != "" {
			s += "        ttl: " + ttl + "\n"
		}
		return s
	}
	tests := []struct {
		name      string
		maxTTL    string
		ruleTTL   string
		oidcLeft  time.Duration
		wantTTL   time.Duration
		wantError *ExchangeReason
	}{
		{"rule ttl", "1h", "10m", 2 * time.Hour, 10 * time.Minute, nil},
		{"default ttl", "1h", "", 2 * time.Hour, config.DefaultTokenTTL, nil},
		{"max_ttl caps the default", "5m", "", 2 * time.Hour, 5 * time.Minute, nil},
		{"token lifetime caps", "1h", "30m", 90 * time.Second, 90 * time.Second, nil},
		{"token lifetime caps max_ttl", "2m", "", 100 * time.Minute, 2 * time.Minute, nil},
		{"sub-second remainder", "1h", "", 500 * time.Millisecond, 0, ErrExchangeExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fedConfig(t, ti.issuer(), rule(tc.ruleTTL))
			a, _ := cfg.Agent("ci-bot")
			d, err := time.ParseDuration(tc.maxTTL)
			if err != nil {
				t.Fatal(err)
			}
			a.MaxTTL = d
			e := newFed(t, cfg, now)
			c := githubClaims(ti.issuer(), now)
			c["exp"] = float64(now.Add(tc.oidcLeft).UnixMilli()) / 1000
			tok, claims, err := e.fed.Exchange(ctx, ti.sign(t, c), "ci-bot", "")
			if tc.wantError != nil {
				if !errors.Is(err, tc.wantError) {
					t.Fatalf("got %v, want %v", err, tc.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := claims.Expiry().Sub(now); got != tc.wantTTL {
				t.Errorf("TTL %s, want %s", got, tc.wantTTL)
			}
			if claims.Expiry().After(now.Add(tc.oidcLeft)) {
				t.Error("the weir token outlives the OIDC token")
			}
			if _, err := e.auth.Verify(ctx, tok); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Several rules: the first that admits the token decides; a refusal names
// how far the closest rule got.
func TestExchangeRuleChoice(t *testing.T) {
	ctx := context.Background()
	ti := startIssuer(t)
	now := time.Now()
	cfg := fedConfig(t, ti.issuer(), `    federation:
      - issuer: ISSUER
        audience: other-audience
        subject: "repo:acme/shop:**"
      - issuer: ISSUER
        audience: weir
        subject: "repo:acme/shop:environment:prod"
      - issuer: ISSUER
        audience: weir
        subject: "repo:acme/*:ref:refs/heads/main"
        when: 'claims.ref_type == "branch" && claims.run_attempt == "2"'
        provider: github-actions
`)
	e := newFed(t, cfg, now)
	_, c, err := e.fed.Exchange(ctx, ti.sign(t, githubClaims(ti.issuer(), now)), "ci-bot", "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Context["federation_rule"] != "2" || c.Context["repository"] != "acme/shop" {
		t.Fatalf("context %v", c.Context)
	}
	other := githubClaims(ti.issuer(), now)
	other["sub"] = "repo:acme/shop:ref:refs/heads/dev"
	_, _, err = e.fed.Exchange(ctx, ti.sign(t, other), "ci-bot", "")
	var xe *ExchangeError
	if !errors.As(err, &xe) || xe.Reason != ErrExchangeSubject || xe.Rule != 1 || xe.Subject != "repo:acme/shop:ref:refs/heads/dev" || xe.Issuer != ti.issuer() {
		t.Fatalf("got %+v", err)
	}
	cond := githubClaims(ti.issuer(), now)
	cond["run_attempt"] = "1"
	if _, _, err := e.fed.Exchange(ctx, ti.sign(t, cond), "ci-bot", ""); !errors.As(err, &xe) || xe.Reason != ErrExchangeCondition || xe.Rule != 2 {
		t.Fatalf("got %+v", err)
	}
}

func TestNewFederatorLocatesBadConditions(t *testing.T) {
	a, _ := newAuthority(t)
	cfg := fedConfig(t, "https://token.actions.githubusercontent.com", `    federation:
      - issuer: ISSUER
        audience: weir
        subject: "repo:acme/shop:**"
      - issuer: ISSUER
        audience: weir
        subject: "repo:acme/shop:**"
        when: 'claims.repository_owner =='
      - issuer: ISSUER
        audience: weir
        subject: "repo:acme/shop:**"
        when: 'claims.repository_owner'
`)
	_, err := NewFederator(cfg, a, FederatorOptions{})
	if err == nil {
		t.Fatal("bad conditions compiled")
	}
	for _, want := range []string{"weir.yaml:25: agents[1].federation[1].when: ERROR: <input>:1:27: Syntax error", "weir.yaml:29: agents[1].federation[2].when: condition must be true/false"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestSubjectPattern(t *testing.T) {
	tests := []struct {
		pattern, subject string
		want             bool
	}{
		{"repo:acme/shop:ref:refs/heads/main", "repo:acme/shop:ref:refs/heads/main", true},
		{"repo:acme/shop:ref:refs/heads/main", "repo:acme/shop:ref:refs/heads/main2", false},
		{"repo:acme/shop:ref:refs/heads/main", "Repo:acme/shop:ref:refs/heads/main", false},
		{"repo:acme/shop:ref:refs/heads/*", "repo:acme/shop:ref:refs/heads/feature/x", true},
		{"repo:acme/shop:ref:refs/heads/*", "repo:acme/shop:ref:refs/heads/", true},
		{"repo:acme/shop:ref:refs/heads/*", "repo:acme/shop:ref:refs/heads/a:b", false},
		{"repo:acme/*:ref:refs/heads/main", "repo:acme/shop:ref:refs/heads/main", true},
		{"repo:acme/*:ref:refs/heads/main", "repo:acme/shop:environment:x:ref:refs/heads/main", false},
		{"repo:acme/*", "repo:acme/shop:ref:refs/heads/main", false},
		{"repo:acme/**", "repo:acme/shop:ref:refs/heads/main", true},
		{"repo:acme/shop:**", "repo:acme/shop:pull_request", true},
		{"repo:acme/shop:**", "repo:acme/shopping:pull_request", false},
		{"repo:acme/shop*:**", "repo:acme/shopping:pull_request", true},
		{"sc://acme/shop/*", "sc://acme/shop/prod-connection", true},
		{"sc://acme/shop/*", "sc://acme/shop/a/b", true},
		{"sc://acme/shop/?", "sc://acme/shop/a", true},
		{"sc://acme/shop/?", "sc://acme/shop/ab", false},
		{"a?c", "a:c", false},
		{"a**b**c", "a:x:b:y:c", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"日本*", "日本語", true},
		{"x*", strings.Repeat("x", maxSubjectLen+1), false},
	}
	for _, tc := range tests {
		p, err := compileSubject(tc.pattern)
		if err != nil {
			t.Fatalf("%q: %v", tc.pattern, err)
		}
		if got := p.match(tc.subject); got != tc.want {
			t.Errorf("%q matching %q = %v, want %v", tc.pattern, capString(tc.subject, 40), got, tc.want)
		}
	}
	for _, bad := range []string{"", "*", "**", "?*", "a***b", "a\nb"} {
		if _, err := compileSubject(bad); err == nil {
			t.Errorf("pattern %q accepted", bad)
		}
	}
	// No pathological backtracking.
	p, _ := compileSubject(strings.Repeat("a*", 100) + "b")
	start := time.Now()
	if p.match(strings.Repeat("a", maxSubjectLen)) {
		t.Error("matched")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("match took %s", d)
	}
}

func TestMapClaims(t *testing.T) {
	tests := []struct {
		name, provider, issuer, subject string
		claims                          map[string]any
		want                            map[string]string
	}{
		{
			"azure devops service connection", config.ProviderAzureDevOps, "https://vstoken.dev.azure.com/0f0e", "sc://acme/shop/prod-deploy",
			map[string]any{"org_id": "0f0e", "prj_id": "p-1", "def_id": float64(17), "rpo_id": "r-1", "rpo_uri": "https://dev.azure.com/acme/shop/_git/shop", "rpo_ver": "abc", "rpo_ref": "refs/heads/main", "run_id": float64(4242)},
			map[string]string{"organization": "acme", "project": "shop", "service_connection": "prod-deploy", "organization_id": "0f0e", "project_id": "p-1",
				"pipeline_id": "17", "repository_id": "r-1", "repository_uri": "https://dev.azure.com/acme/shop/_git/shop", "sha": "abc", "ref": "refs/heads/main", "run_id": "4242"},
		},
		{
			"azure devops pipeline", config.ProviderAzureDevOps, "https://vstoken.dev.azure.com/0f0e", "p://acme/shop/nightly",
			map[string]any{},
			map[string]string{"organization": "acme", "project": "shop", "pipeline": "nightly"},
		},
		{
			"azure devops odd subject", config.ProviderAzureDevOps, "https://vstoken.dev.azure.com/0f0e", "sc://acme/shop",
			map[string]any{}, map[string]string{},
		},
		{
			"entra v1 managed identity", config.ProviderEntra, "https://sts.windows.net/t-1/", "oid-1",
			map[string]any{"tid": "t-1", "oid": "oid-1", "appid": "app-1", "azp": "ignored", "xms_mirid": "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ci"},
			map[string]string{"tenant_id": "t-1", "object_id": "oid-1", "app_id": "app-1", "managed_identity": "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ci"},
		},
		{
			"entra v2 azp", config.ProviderEntra, "https://login.microsoftonline.com/t-1/v2.0", "oid-1",
			map[string]any{"tid": "t-1", "oid": "oid-1", "azp": "app-2", "groups": []any{"g"}},
			map[string]string{"tenant_id": "t-1", "object_id": "oid-1", "app_id": "app-2"},
		},
		{
			"github non-string claims", config.ProviderGitHubActions, "https://token.actions.githubusercontent.com", "repo:a/b:ref:refs/heads/main",
			map[string]any{"run_id": float64(12345678901), "run_attempt": float64(1.5), "environment": true, "repository": map[string]any{"x": 1}, "actor": ""},
			map[string]string{"run_id": "12345678901", "run_attempt": "1.5", "environment": "true"},
		},
		{
			"generic maps nothing", config.ProviderGeneric, "https://idp.example", "svc",
			map[string]any{"repository": "acme/shop", "tid": "t"}, map[string]string{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := MapClaims(tc.provider, tc.issuer, tc.subject, 3, tc.claims)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"provider": tc.provider, "issuer": tc.issuer, "subject": tc.subject, "federation_rule": "3"}
			for k, v := range tc.want {
				want[k] = v
			}
			if len(got) != len(want) {
				t.Errorf("got %v\nwant %v", got, want)
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
	// A claim that cannot be carried faithfully refuses the token.
	for _, c := range []map[string]any{
		{"workflow": strings.Repeat("w", maxContextValue+1)},
		{"workflow": "deploy\x1b[31m"},
		{"workflow": "a\nb"},
	} {
		if _, err := MapClaims(config.ProviderGitHubActions, "https://token.actions.githubusercontent.com", "repo:a/b:x", 0, c); err == nil {
			t.Errorf("claims %q accepted", c)
		}
	}
	// The provider's keys cannot be overwritten by same-named claims.
	got, _ := MapClaims(config.ProviderGitHubActions, "https://token.actions.githubusercontent.com", "repo:a/b:x", 0, map[string]any{"issuer": "x", "provider": "y", "subject": "z"})
	if got["issuer"] != "https://token.actions.githubusercontent.com" || got["provider"] != "github-actions" || got["subject"] != "repo:a/b:x" {
		t.Errorf("context %v", got)
	}
}
