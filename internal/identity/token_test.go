package identity

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/weir-gw/weir/internal/store"
)

func newAuthority(t *testing.T) (*Authority, *store.SQLite) {
	t.Helper()
	st, err := store.OpenSQLite(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	a, err := NewAuthority(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	return a, st
}

func TestIssueVerifyRevoke(t *testing.T) {
	ctx := context.Background()
	a, st := newAuthority(t)
	tok, c, err := a.Issue(ctx, IssueRequest{Agent: "ci-bot", Targets: []string{"orders"}, TTL: 15 * time.Minute, Context: map[string]string{"ticket": "OPS-12"}, IssuedBy: "local:alice"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if got.Agent != "ci-bot" || got.Context["ticket"] != "OPS-12" || got.IssuedBy != "local:alice" || !got.AllowsTarget("orders") || got.AllowsTarget("other") {
		t.Fatalf("claims %+v", got)
	}
	// A second authority over the same store (the server, while the CLI issued) verifies it too.
	b, err := NewAuthority(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify(ctx, tok); err != nil {
		t.Fatalf("other process: %v", err)
	}
	if err := a.Revoke(ctx, c.ID, "local:alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify(ctx, tok); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked token: %v", err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	ctx := context.Background()
	a, _ := newAuthority(t)
	now := time.Now()
	a.SetClock(func() time.Time { return now })
	tok, _, err := a.Issue(ctx, IssueRequest{Agent: "ci-bot", Targets: []string{"orders"}, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forgedPayload := base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"sub":"ci-bot"`, `"sub":"admin"`, 1)))
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"x"}`))
	_, otherKey, _ := ed25519.GenerateKey(nil)
	otherSig := base64.RawURLEncoding.EncodeToString(ed25519.Sign(otherKey, []byte(parts[0]+"."+parts[1])))

	// A validly signed token the store never recorded (minted with the key by someone else).
	unrecorded, err := a.sign(Claims{ID: "tok_unrecorded", Agent: "ci-bot", Audience: Audience, Targets: []string{"orders"}, ExpiresAt: now.Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"empty", "", ErrMalformed},
		{"garbage", "not-a-token", ErrMalformed},
		{"payload changed", parts[0] + "." + forgedPayload + "." + parts[2], ErrSignature},
		{"alg none", noneHeader + "." + parts[1] + ".", ErrMalformed},
		{"signed by another key", parts[0] + "." + parts[1] + "." + otherSig, ErrSignature},
		{"oversized", strings.Repeat("a", 9000), ErrMalformed},
		{"not in store", unrecorded, ErrUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := a.Verify(ctx, tc.token); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	a.SetClock(func() time.Time { return now.Add(2 * time.Minute) })
	if _, err := a.Verify(ctx, tok); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
}

// Rotation without downtime: after a rotate, new tokens use the new key,
// old tokens keep verifying (also in another process after Reload) until
// their key is retired.
func TestKeyRotation(t *testing.T) {
	ctx := context.Background()
	a, st := newAuthority(t)
	server, err := NewAuthority(ctx, st) // the running gateway
	if err != nil {
		t.Fatal(err)
	}
	oldTok, _, _ := a.Issue(ctx, IssueRequest{Agent: "ci-bot", Targets: []string{"orders"}, TTL: time.Hour})
	keys, _ := a.Keys(ctx)
	oldKid := keys[0].ID
	newKid, err := a.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	newTok, _, _ := a.Issue(ctx, IssueRequest{Agent: "ci-bot", Targets: []string{"orders"}, TTL: time.Hour})
	if !strings.Contains(mustHeader(t, newTok), newKid) {
		t.Fatal("new token not signed with the new key")
	}
	if _, err := server.Verify(ctx, newTok); !errors.Is(err, ErrSignature) {
		t.Fatalf("before reload the server should not know the new key: %v", err)
	}
	if err := server.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{oldTok, newTok} {
		if _, err := server.Verify(ctx, tok); err != nil {
			t.Fatalf("during rollover: %v", err)
		}
	}
	if err := a.Retire(ctx, newKid); err == nil {
		t.Fatal("retired the active key")
	}
	if err := a.Retire(ctx, oldKid); err != nil {
		t.Fatal(err)
	}
	server.Reload(ctx)
	if _, err := server.Verify(ctx, oldTok); !errors.Is(err, ErrSignature) {
		t.Fatalf("token of a retired key: %v", err)
	}
	if _, err := server.Verify(ctx, newTok); err != nil {
		t.Fatal(err)
	}
}

func mustHeader(t *testing.T, tok string) string {
	t.Helper()
	h, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// Lookup gives a front end that proved possession of a token's derived key
// the same answers Verify gives for the token itself.
func TestLookup(t *testing.T) {
	ctx := context.Background()
	a, _ := newAuthority(t)
	now := time.Now()
	a.SetClock(func() time.Time { return now })
	_, c, err := a.Issue(ctx, IssueRequest{Agent: "ci-bot", Targets: []string{"lake"}, TTL: 15 * time.Minute, Context: map[string]string{"run_id": "7"}, IssuedBy: "local:alice"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.Lookup(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != c.ID || got.Agent != "ci-bot" || !got.AllowsTarget("lake") || got.Context["run_id"] != "7" || got.IssuedBy != "local:alice" || got.ExpiresAt != c.ExpiresAt {
		t.Fatalf("lookup %+v, issued %+v", got, c)
	}
	if _, err := a.Lookup(ctx, "tok_000000000000000000000000"); !errors.Is(err, ErrUnknown) {
		t.Fatalf("unknown id: %v", err)
	}
	_, adm, err := a.IssueAdmin(ctx, "alice", RoleApprover, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Lookup(ctx, adm.ID); !errors.Is(err, ErrUnknown) {
		t.Fatalf("an admin token's id: %v", err)
	}
	a.SetClock(func() time.Time { return now.Add(16 * time.Minute) })
	if _, err := a.Lookup(ctx, c.ID); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
	a.SetClock(func() time.Time { return now })
	if err := a.Revoke(ctx, c.ID, "local:alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Lookup(ctx, c.ID); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked: %v", err)
	}
}
