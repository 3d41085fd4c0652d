// Package identity issues and verifies weir tokens.
//
// A weir token is a compact JWS (JWT) signed with an Ed25519 key that weir
// keeps in its store; the header's kid names the key so keys can rotate. The
// token names the agent, the targets it may reach, its expiry and the
// execution context it was issued for. Verification checks the signature,
// the algorithm (only EdDSA: "alg":"none" and HMAC confusion are refused
// before any key is touched), expiry, and that the token is known to the
// store and not revoked, so a token minted with a stolen-but-rotated key or
// revoked by an admin stops working at the next connection.
package identity

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/weir-gw/weir/internal/store"
)

// Audience is the aud claim of every weir token.
const Audience = "weir"

// Claims are a weir token's payload.
type Claims struct {
	ID        string            `json:"jti"`
	Agent     string            `json:"sub"`
	Audience  string            `json:"aud"`
	Targets   []string          `json:"targets"`
	Context   map[string]string `json:"ctx,omitempty"`
	IssuedBy  string            `json:"issued_by"`
	IssuedAt  int64             `json:"iat"`
	NotBefore int64             `json:"nbf"`
	ExpiresAt int64             `json:"exp"`
}

// Expiry returns the expiry as a time.
func (c *Claims) Expiry() time.Time { return time.Unix(c.ExpiresAt, 0) }

// AllowsTarget reports whether the token was issued for target.
func (c *Claims) AllowsTarget(target string) bool { return slices.Contains(c.Targets, target) }

// Verification failures. Their text is safe to show the client.
var (
	ErrMalformed = errors.New("weir token is malformed")
	ErrSignature = errors.New("weir token signature is invalid")
	ErrExpired   = errors.New("weir token has expired")
	ErrNotYet    = errors.New("weir token is not valid yet")
	ErrRevoked   = errors.New("weir token has been revoked")
	ErrUnknown   = errors.New("weir token was not issued by this weir")
)

// Authority holds the signing keys.
type Authority struct {
	st  store.Store
	now func() time.Time

	mu     sync.RWMutex
	keys   map[string]ed25519.PrivateKey
	active string
}

// NewAuthority loads the signing keys from st, creating the first one when
// the store has none.
func NewAuthority(ctx context.Context, st store.Store) (*Authority, error) {
	a := &Authority{st: st, now: time.Now, keys: map[string]ed25519.PrivateKey{}}
	if err := a.reload(ctx); err != nil {
		return nil, err
	}
	if a.active == "" {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		id := randomID(8)
		if err := st.AddSigningKey(ctx, store.SigningKey{ID: id, PrivateKey: priv.Seed(), CreatedAt: a.now()}); err != nil {
			// Another process (CLI and server starting together) may have
			// created one first; use whatever the store holds now.
			if rerr := a.reload(ctx); rerr != nil || a.active == "" {
				return nil, fmt.Errorf("creating signing key: %w", err)
			}
			return a, nil
		}
		if err := a.reload(ctx); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Reload re-reads the signing keys, so a key added or retired by another
// process (weir key rotate|retire) takes effect without a restart.
func (a *Authority) Reload(ctx context.Context) error { return a.reload(ctx) }

// KeyInfo describes a signing key.
type KeyInfo struct {
	ID        string
	CreatedAt time.Time
	Active    bool
}

// Keys lists the signing keys, newest (active) first.
func (a *Authority) Keys(ctx context.Context) ([]KeyInfo, error) {
	keys, err := a.st.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]KeyInfo, len(keys))
	for i, k := range keys {
		out[i] = KeyInfo{ID: k.ID, CreatedAt: k.CreatedAt, Active: i == 0}
	}
	return out, nil
}

// Rotate adds a new signing key, which signs from now on. Older keys keep
// verifying the tokens they signed until they are retired, so a rotation
// needs no downtime.
func (a *Authority) Rotate(ctx context.Context) (string, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	id := randomID(8)
	// Strictly newer than every existing key, whatever the clock resolution.
	created := a.now()
	if keys, err := a.st.SigningKeys(ctx); err == nil && len(keys) > 0 && !created.After(keys[0].CreatedAt) {
		created = keys[0].CreatedAt.Add(time.Nanosecond)
	}
	if err := a.st.AddSigningKey(ctx, store.SigningKey{ID: id, PrivateKey: priv.Seed(), CreatedAt: created}); err != nil {
		return "", err
	}
	return id, a.reload(ctx)
}

// Retire removes a key that is no longer the active one; tokens and
// checkpoints it signed no longer verify (export weir audit pubkey first
// to keep verifying old audit exports).
func (a *Authority) Retire(ctx context.Context, id string) error {
	keys, err := a.st.SigningKeys(ctx)
	if err != nil {
		return err
	}
	if len(keys) > 0 && keys[0].ID == id {
		return fmt.Errorf("key %s is the active signing key; rotate first", id)
	}
	if err := a.st.DeleteSigningKey(ctx, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no signing key %q", id)
		}
		return err
	}
	return a.reload(ctx)
}

// SetClock replaces the clock (tests).
func (a *Authority) SetClock(now func() time.Time) { a.now = now }

func (a *Authority) reload(ctx context.Context) error {
	keys, err := a.st.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("loading signing keys: %w", err)
	}
	m := make(map[string]ed25519.PrivateKey, len(keys))
	active := ""
	for _, k := range keys {
		if len(k.PrivateKey) != ed25519.SeedSize {
			return fmt.Errorf("signing key %s in store is corrupt", k.ID)
		}
		m[k.ID] = ed25519.NewKeyFromSeed(k.PrivateKey)
		if active == "" {
			active = k.ID // newest first
		}
	}
	a.mu.Lock()
	a.keys, a.active = m, active
	a.mu.Unlock()
	return nil
}

// IssueRequest describes a token to issue.
type IssueRequest struct {
	Agent    string
	Targets  []string
	TTL      time.Duration
	Context  map[string]string
	IssuedBy string
}

// Issue signs a token and records it in the store.
func (a *Authority) Issue(ctx context.Context, req IssueRequest) (string, Claims, error) {
	if req.TTL <= 0 {
		return "", Claims{}, errors.New("token TTL must be positive")
	}
	now := a.now()
	c := Claims{
		ID:        "tok_" + randomID(12),
		Agent:     req.Agent,
		Audience:  Audience,
		Targets:   req.Targets,
		Context:   req.Context,
		IssuedBy:  req.IssuedBy,
		IssuedAt:  now.Unix(),
		NotBefore: now.Add(-30 * time.Second).Unix(), // tolerate small clock skew between replicas
		ExpiresAt: now.Add(req.TTL).Unix(),
	}
	tok, err := a.sign(c)
	if err != nil {
		return "", Claims{}, err
	}
	rec := store.Token{ID: c.ID, Agent: c.Agent, Targets: c.Targets, Context: c.Context, Issuer: c.IssuedBy, IssuedAt: now, ExpiresAt: c.Expiry()}
	if err := a.st.InsertToken(ctx, rec); err != nil {
		return "", Claims{}, fmt.Errorf("recording token: %w", err)
	}
	return tok, c, nil
}

type header struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	Kid string `json:"kid"`
}

var b64 = base64.RawURLEncoding

func (a *Authority) sign(c Claims) (string, error) { return a.signPayload(c) }

// maxTokenLen bounds what is decoded at all.
const maxTokenLen = 8192

// Verify checks a token completely: form, algorithm, signature, time
// bounds, and the store's record (known, not revoked).
func (a *Authority) Verify(ctx context.Context, token string) (Claims, error) {
	c, err := a.VerifySignature(token)
	if err != nil {
		return c, err
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
	if rec.Agent != c.Agent {
		return c, ErrUnknown
	}
	return c, nil
}

// Lookup returns the claims of the live agent token with this id, read
// from the store. It is for a front end that has already proved the client
// holds a key derived from the token id (Blob SharedKey: the derived account
// key signs each request), so the token itself never has to travel. The
// errors are Verify's.
func (a *Authority) Lookup(ctx context.Context, id string) (Claims, error) {
	rec, err := a.st.Token(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Claims{}, ErrUnknown
	}
	if err != nil {
		return Claims{}, fmt.Errorf("checking token: %w", err)
	}
	if strings.HasPrefix(rec.Agent, AdminAgentPrefix) {
		return Claims{}, ErrUnknown // an admin token never reaches a resource
	}
	c := Claims{ID: rec.ID, Agent: rec.Agent, Audience: Audience, Targets: rec.Targets, Context: rec.Context, IssuedBy: rec.Issuer,
		IssuedAt: rec.IssuedAt.Unix(), NotBefore: rec.IssuedAt.Unix(), ExpiresAt: rec.ExpiresAt.Unix()}
	if !rec.RevokedAt.IsZero() {
		return c, ErrRevoked
	}
	if !a.now().Before(rec.ExpiresAt) {
		return c, ErrExpired
	}
	return c, nil
}

// signedPayload checks a compact JWS's form, algorithm (EdDSA only: "none"
// and HMAC confusion are refused before any key is touched), key id and
// signature, and returns the payload. Agent and admin tokens share it.
func (a *Authority) signedPayload(token string) ([]byte, error) {
	if len(token) == 0 || len(token) > maxTokenLen {
		return nil, ErrMalformed
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, ErrMalformed
	}
	hb, err1 := b64.DecodeString(parts[0])
	pb, err2 := b64.DecodeString(parts[1])
	sig, err3 := b64.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, ErrMalformed
	}
	var h header
	if err := strictUnmarshal(hb, &h); err != nil || h.Alg != "EdDSA" {
		return nil, ErrMalformed
	}
	a.mu.RLock()
	key := a.keys[h.Kid]
	a.mu.RUnlock()
	if key == nil {
		return nil, ErrSignature
	}
	if !ed25519.Verify(key.Public().(ed25519.PublicKey), []byte(parts[0]+"."+parts[1]), sig) {
		return nil, ErrSignature
	}
	return pb, nil
}

// VerifySignature checks form, algorithm, signature and time bounds only.
func (a *Authority) VerifySignature(token string) (Claims, error) {
	var c Claims
	pb, err := a.signedPayload(token)
	if err != nil {
		return c, err
	}
	if err := strictUnmarshal(pb, &c); err != nil || c.ID == "" || c.Agent == "" || c.Audience != Audience {
		return Claims{}, ErrMalformed
	}
	now := a.now().Unix()
	if now >= c.ExpiresAt {
		return c, ErrExpired
	}
	if now < c.NotBefore {
		return c, ErrNotYet
	}
	return c, nil
}

// strictUnmarshal refuses unknown fields and duplicate-looking trickery by
// decoding into a fixed struct with DisallowUnknownFields.
func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

// Revoke marks a token revoked.
func (a *Authority) Revoke(ctx context.Context, id, by string) error {
	return a.st.RevokeToken(ctx, id, by, a.now())
}

// TokenID extracts the jti of a token without verifying it, for audit
// records of refused connections. Never use it for a decision.
func TokenID(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || len(parts[1]) > maxTokenLen {
		return ""
	}
	pb, err := b64.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		ID string `json:"jti"`
	}
	if json.Unmarshal(pb, &c) != nil || len(c.ID) > 64 {
		return ""
	}
	return c.ID
}

func randomID(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}

// RandomID returns n random bytes, hex-encoded (session ids etc.).
func RandomID(n int) string { return randomID(n) }

// Sign signs msg with the active key (audit checkpoints).
func (a *Authority) Sign(msg []byte) (string, []byte, error) {
	kid, key, err := a.activeKey()
	if err != nil {
		return "", nil, err
	}
	return kid, ed25519.Sign(key, msg), nil
}

// activeKey is the newest key, which signs.
func (a *Authority) activeKey() (string, ed25519.PrivateKey, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	key := a.keys[a.active]
	if key == nil {
		return "", nil, errors.New("no signing key")
	}
	return a.active, key, nil
}

// PublicKeys returns every signing key's public half by key id.
func (a *Authority) PublicKeys() map[string]ed25519.PublicKey {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make(map[string]ed25519.PublicKey, len(a.keys))
	for id, k := range a.keys {
		out[id] = k.Public().(ed25519.PublicKey)
	}
	return out
}
