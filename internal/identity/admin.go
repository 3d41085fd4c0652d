package identity

// Admin identities: tokens for people (approvers, admins, auditors) who
// use weir's CLI and HTTP API. They are signed with the same keys as agent
// tokens but carry a distinct audience, so neither kind is accepted where
// the other is expected:
//
//   - Verify (agent tokens) requires aud "weir" and decodes the payload
//     strictly into agent Claims, so an admin token (aud "weir-admin", a
//     role claim) fails it as malformed;
//   - VerifyAdmin requires aud "weir-admin" and decodes strictly into
//     AdminClaims, so an agent token (aud "weir", targets) fails it.
//
// Admin tokens are recorded in the store's tokens table like agent tokens
// (so `weir token list` shows them and `weir token revoke ID` revokes
// them): the record's Agent is "admin:<name>" — ':' cannot occur in an
// agent's name — and its Context holds {"role": ROLE}.

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/weir-gw/weir/internal/store"
)

// AdminAudience is the aud claim of every admin token.
const AdminAudience = "weir-admin"

// AdminAgentPrefix prefixes an admin token's store record's Agent field.
const AdminAgentPrefix = "admin:"

// Role is what a person may do.
type Role string

// Roles. No role implies another: an endpoint lists every role it admits.
const (
	// RoleApprover decides just-in-time approval requests.
	RoleApprover Role = "approver"
	// RoleAdmin manages tokens, agents and configuration.
	RoleAdmin Role = "admin"
	// RoleAuditor reads the audit log, sessions and replays.
	RoleAuditor Role = "auditor"
)

// Roles lists every role.
var Roles = []Role{RoleApprover, RoleAdmin, RoleAuditor}

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if slices.Contains(Roles, r) {
		return r, nil
	}
	return "", fmt.Errorf("role must be approver, admin or auditor, got %q", s)
}

// MaxAdminTTL bounds an admin token's lifetime.
const MaxAdminTTL = 7 * 24 * time.Hour

// DefaultAdminTTL is an admin token's lifetime when none is asked for.
const DefaultAdminTTL = 8 * time.Hour

var adminNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$`)

// ErrNotAdminToken is returned by VerifyAdmin for a (valid or not) agent token.
var ErrNotAdminToken = errors.New("this is an agent's weir token, not an admin token")

// AdminClaims are an admin token's payload.
type AdminClaims struct {
	ID        string `json:"jti"`
	Name      string `json:"sub"`
	Audience  string `json:"aud"`
	Role      Role   `json:"role"`
	IssuedBy  string `json:"issued_by"`
	IssuedAt  int64  `json:"iat"`
	NotBefore int64  `json:"nbf"`
	ExpiresAt int64  `json:"exp"`
}

// Expiry returns the expiry as a time.
func (c *AdminClaims) Expiry() time.Time { return time.Unix(c.ExpiresAt, 0) }

// IssueAdmin signs an admin token for the person name with role and
// records it in the store.
func (a *Authority) IssueAdmin(ctx context.Context, name string, role Role, ttl time.Duration) (string, AdminClaims, error) {
	return a.IssueAdminBy(ctx, name, role, ttl, "")
}

// IssueAdminBy is IssueAdmin naming who issued the token (e.g. "local:root").
func (a *Authority) IssueAdminBy(ctx context.Context, name string, role Role, ttl time.Duration, issuedBy string) (string, AdminClaims, error) {
	if !adminNamePattern.MatchString(name) {
		return "", AdminClaims{}, fmt.Errorf("admin name %q is not valid: use letters, digits and . _ @ + - (at most 128)", name)
	}
	if _, err := ParseRole(string(role)); err != nil {
		return "", AdminClaims{}, err
	}
	if ttl < time.Second || ttl > MaxAdminTTL {
		return "", AdminClaims{}, fmt.Errorf("admin token TTL must be between 1s and %s, got %s", MaxAdminTTL, ttl)
	}
	now := a.now()
	c := AdminClaims{
		ID:        "adm_" + randomID(12),
		Name:      name,
		Audience:  AdminAudience,
		Role:      role,
		IssuedBy:  issuedBy,
		IssuedAt:  now.Unix(),
		NotBefore: now.Add(-30 * time.Second).Unix(),
		ExpiresAt: now.Add(ttl).Unix(),
	}
	tok, err := a.signPayload(c)
	if err != nil {
		return "", AdminClaims{}, err
	}
	rec := store.Token{
		ID: c.ID, Agent: AdminAgentPrefix + name, Context: map[string]string{"role": string(role)},
		Issuer: issuedBy, IssuedAt: now, ExpiresAt: c.Expiry(),
	}
	if err := a.st.InsertToken(ctx, rec); err != nil {
		return "", AdminClaims{}, fmt.Errorf("recording admin token: %w", err)
	}
	return tok, c, nil
}

// signPayload signs any JSON payload with the active key.
func (a *Authority) signPayload(v any) (string, error) {
	kid, key, err := a.activeKey()
	if err != nil {
		return "", err
	}
	h, _ := json.Marshal(header{Alg: "EdDSA", Typ: "JWT", Kid: kid})
	p, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	signing := b64.EncodeToString(h) + "." + b64.EncodeToString(p)
	return signing + "." + b64.EncodeToString(ed25519.Sign(key, []byte(signing))), nil
}

// VerifyAdmin checks an admin token completely: form, algorithm (EdDSA
// only), signature, audience, role, time bounds, and the store's record
// (known, not revoked, same person and role). Agent tokens are refused with
// ErrNotAdminToken. Errors are the same as Verify's otherwise.
func (a *Authority) VerifyAdmin(ctx context.Context, token string) (AdminClaims, error) {
	var c AdminClaims
	pb, err := a.signedPayload(token)
	if err != nil {
		return c, err
	}
	var aud struct {
		Aud string `json:"aud"`
	}
	if json.Unmarshal(pb, &aud) == nil && aud.Aud == Audience {
		return AdminClaims{}, ErrNotAdminToken
	}
	if err := strictUnmarshal(pb, &c); err != nil || c.ID == "" || c.Name == "" || c.Audience != AdminAudience {
		return AdminClaims{}, ErrMalformed
	}
	if _, err := ParseRole(string(c.Role)); err != nil {
		return AdminClaims{}, ErrMalformed
	}
	now := a.now().Unix()
	if now >= c.ExpiresAt {
		return c, ErrExpired
	}
	if now < c.NotBefore {
		return c, ErrNotYet
	}
	rec, err := a.st.Token(ctx, c.ID)
	if errors.Is(err, store.ErrNotFound) {
		return c, ErrUnknown
	}
	if err != nil {
		return c, fmt.Errorf("checking token: %w", err)
	}
	if !rec.RevokedAt.IsZero() {
		return c, ErrRevoked
	}
	if rec.Agent != AdminAgentPrefix+c.Name || rec.Context["role"] != string(c.Role) {
		return c, ErrUnknown
	}
	return c, nil
}
