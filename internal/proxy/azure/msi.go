package azure

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/weir-gw/weir/internal/audit"
	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/identity"
)

// TypeToken is the audit event of a managed-identity token request.
const TypeToken = "azure.token"

// miTokenTTL caps a managed-identity token's life (it never outlives the
// weir token it wraps).
const miTokenTTL = time.Hour

// Tokens is weir's managed-identity endpoint. The "secret" an agent's
// environment holds (IDENTITY_HEADER, MSI_SECRET) is its weir token, worth
// nothing anywhere but at this weir; the access token returned is a
// weir-signed JWT bound to one resource (audience) that wraps that weir
// token, so the proxy can authenticate the agent's session with it. It is
// a JWT with a tid claim because `az login --identity` reads the tenant
// from the token it gets.
type Tokens struct {
	Auth  *identity.Authority
	Cfg   *config.Config
	Audit func(ctx context.Context, ev audit.Event) error
	Log   *slog.Logger
	Now   func() time.Time
}

type miClaims struct {
	Weir  string `json:"weir"` // always "mi": tells the proxy how to read it
	Aud   string `json:"aud"`
	Iss   string `json:"iss"`
	Sub   string `json:"sub"`
	Oid   string `json:"oid"`
	Tid   string `json:"tid"`
	AppID string `json:"appid"`
	Iat   int64  `json:"iat"`
	Nbf   int64  `json:"nbf"`
	Exp   int64  `json:"exp"`
	// TokenID names the weir token the agent proved it holds at the
	// endpoint; the token itself is not in here, so an access token that
	// reaches a third party (a client going around the proxy) does not
	// carry the agent's weir token with it.
	TokenID  string `json:"weir_token_id"`
	Resource string `json:"weir_resource_kind"`
}

var b64 = base64.RawURLEncoding

// ResourceKind says which target kind a token resource (audience) is for,
// "" when weir serves none.
func ResourceKind(cfg *config.Config, resource string) string {
	r := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(resource), "/.default"))
	r = strings.TrimSuffix(r, "/")
	c := cfg.Azure.CloudInfo()
	for _, a := range c.ARMResources {
		if r == strings.TrimSuffix(a, "/") {
			return config.KindAzureARM
		}
	}
	if r == strings.TrimSuffix(c.VaultResource, "/") {
		return config.KindAzureKeyVault
	}
	return ""
}

func (t *Tokens) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// Handler serves the App Service (GET ?resource=&api-version=, header
// X-IDENTITY-HEADER or secret) and IMDS/Cloud Shell (Metadata: true, form
// or query resource) shapes. Every request is audited.
func (t *Tokens) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			miError(w, http.StatusMethodNotAllowed, "invalid_request", "use GET (App Service style) or POST (Cloud Shell style)")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			miError(w, http.StatusBadRequest, "invalid_request", "malformed request")
			return
		}
		secret := r.Header.Get("X-IDENTITY-HEADER")
		if secret == "" {
			secret = r.Header.Get("secret")
		}
		if secret == "" {
			miError(w, http.StatusUnauthorized, "invalid_request", "weir: send the agent's weir token as X-IDENTITY-HEADER (IDENTITY_HEADER) or secret (MSI_SECRET); `weir env --agent NAME` prints the variables")
			return
		}
		resources := r.Form["resource"]
		if len(resources) != 1 {
			miError(w, http.StatusBadRequest, "invalid_resource", "weir: give exactly one resource")
			return
		}
		resource := resources[0]
		for _, k := range []string{"client_id", "clientid", "object_id", "principal_id", "msi_res_id", "mi_res_id"} {
			if r.Form.Get(k) != "" {
				miError(w, http.StatusBadRequest, "invalid_request", "weir: user-assigned identities are not chosen by the agent; weir holds one identity per agent (leave out "+k+")")
				return
			}
		}
		tok, exp, public, status := t.issue(r.Context(), secret, resource, r.RemoteAddr)
		if tok == "" {
			miError(w, status, "invalid_request", public)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		now := t.now()
		json.NewEncoder(w).Encode(map[string]string{
			"access_token": tok,
			"expires_on":   strconv.FormatInt(exp.Unix(), 10),
			"expires_in":   strconv.FormatInt(int64(exp.Sub(now).Seconds()), 10),
			"not_before":   strconv.FormatInt(now.Unix(), 10),
			"resource":     resource,
			"token_type":   "Bearer",
			"client_id":    "weir",
		})
	})
}

func miError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": msg})
}

// issue verifies the weir token, checks the agent has a target for the
// resource, records the request and mints the access token.
func (t *Tokens) issue(ctx context.Context, weirToken, resource, addr string) (string, time.Time, string, int) {
	claims, err := t.Auth.Verify(ctx, weirToken)
	data := map[string]any{"resource": resource, "client_addr": addr, "token_id": claimsID(claims, weirToken)}
	ev := audit.Event{Type: TypeToken, Agent: claims.Agent, Data: data}
	deny := func(status int, public string) (string, time.Time, string, int) {
		data["granted"] = false
		data["reason"] = public
		if err := t.Audit(ctx, ev); err != nil && t.Log != nil {
			t.Log.Error("auditing refused token request", "err", err)
		}
		return "", time.Time{}, public, status
	}
	if err != nil {
		var public string
		switch {
		case errors.Is(err, identity.ErrExpired), errors.Is(err, identity.ErrRevoked), errors.Is(err, identity.ErrNotYet),
			errors.Is(err, identity.ErrSignature), errors.Is(err, identity.ErrMalformed), errors.Is(err, identity.ErrUnknown):
			public = "weir: " + err.Error()
		default:
			public = "weir could not verify the token right now"
		}
		return deny(http.StatusUnauthorized, public)
	}
	kind := ResourceKind(t.Cfg, resource)
	if kind == "" {
		return deny(http.StatusBadRequest, fmt.Sprintf("weir: weir hands out tokens only for ARM and Key Vault of the %s cloud; %q is neither", t.Cfg.Azure.Cloud, resource))
	}
	agent, ok := t.Cfg.Agent(claims.Agent)
	if !ok {
		return deny(http.StatusForbidden, fmt.Sprintf("weir: agent %q is not configured", claims.Agent))
	}
	covered := false
	for _, name := range agent.Targets {
		if tg, ok := t.Cfg.Target(name); ok && tg.Kind == kind && claims.AllowsTarget(name) {
			covered = true
		}
	}
	if !covered {
		return deny(http.StatusForbidden, fmt.Sprintf("weir: agent %s has no %s target this token is valid for, so weir gives it no token for %s", claims.Agent, kind, resource))
	}
	now := t.now()
	exp := now.Add(miTokenTTL)
	if claims.Expiry().Before(exp) {
		exp = claims.Expiry()
	}
	sum := sha256.Sum256([]byte("weir-agent:" + claims.Agent))
	oid := fmt.Sprintf("%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])
	mc := miClaims{Weir: "mi", Aud: resource, Iss: "https://weir/", Sub: oid, Oid: oid, Tid: t.Cfg.Azure.TenantID, AppID: "weir-" + claims.Agent,
		Iat: now.Unix(), Nbf: now.Unix(), Exp: exp.Unix(), TokenID: claims.ID, Resource: kind}
	tok, err := t.sign(mc)
	if err != nil {
		if t.Log != nil {
			t.Log.Error("signing managed-identity token", "err", err)
		}
		return "", time.Time{}, "weir could not issue a token right now", http.StatusInternalServerError
	}
	data["granted"] = true
	data["kind"] = kind
	data["expires"] = exp.UTC()
	if err := t.Audit(ctx, ev); err != nil {
		return "", time.Time{}, "weir cannot record this token request (audit store unavailable); refusing", http.StatusServiceUnavailable
	}
	return tok, exp, "", 0
}

func claimsID(c identity.Claims, token string) string {
	if c.ID != "" {
		return c.ID
	}
	return identity.TokenID(token)
}

func (t *Tokens) sign(c miClaims) (string, error) {
	p, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	// The kid is only known once signed; the header names the signing key
	// so the proxy picks it among the authority's keys.
	kid, _, err := t.Auth.Sign(nil)
	if err != nil {
		return "", err
	}
	h, _ := json.Marshal(map[string]string{"alg": "EdDSA", "typ": "JWT", "kid": kid})
	signing := b64.EncodeToString(h) + "." + b64.EncodeToString(p)
	kid2, sig, err := t.Auth.Sign([]byte(signing))
	if err != nil {
		return "", err
	}
	if kid2 != kid {
		return "", errors.New("signing key rotated while signing; try again")
	}
	return signing + "." + b64.EncodeToString(sig), nil
}

// ErrNotMI says a bearer token is not a weir managed-identity token (it
// may be a plain weir token).
var ErrNotMI = errors.New("not a weir managed-identity token")

// Unwrap checks a managed-identity token's signature and lifetime and
// returns the id of the weir token it was issued for and the target kind.
// The caller looks the token id up (live, not revoked) through the gateway.
func (t *Tokens) Unwrap(tok string) (tokenID, kind string, err error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || len(tok) > 16<<10 {
		return "", "", ErrNotMI
	}
	hb, err1 := b64.DecodeString(parts[0])
	pb, err2 := b64.DecodeString(parts[1])
	sig, err3 := b64.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return "", "", ErrNotMI
	}
	var h struct {
		Alg, Kid string
	}
	var c miClaims
	if json.Unmarshal(hb, &h) != nil || json.Unmarshal(pb, &c) != nil || c.Weir != "mi" {
		return "", "", ErrNotMI
	}
	if h.Alg != "EdDSA" {
		return "", "", errors.New("weir: the access token's algorithm is not weir's")
	}
	key, ok := t.Auth.PublicKeys()[h.Kid]
	if !ok || !ed25519.Verify(key, []byte(parts[0]+"."+parts[1]), sig) {
		return "", "", errors.New("weir: the access token was not issued by this weir (signature)")
	}
	now := t.now().Unix()
	if now >= c.Exp {
		return "", "", errors.New("weir: the access token has expired; get a new one from the managed-identity endpoint")
	}
	if now < c.Nbf-60 {
		return "", "", errors.New("weir: the access token is not valid yet")
	}
	if c.TokenID == "" {
		return "", "", errors.New("weir: the access token names no weir token")
	}
	return c.TokenID, c.Resource, nil
}
