package identity

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/weir-gw/weir/internal/store"
)

func TestAdminTokens(t *testing.T) {
	ctx := context.Background()
	a, st := newAuthority(t)
	now := time.Now()
	a.SetClock(func() time.Time { return now })

	tok, c, err := a.IssueAdminBy(ctx, "alice", RoleApprover, 8*time.Hour, "local:root")
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.VerifyAdmin(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if got != c || got.Name != "alice" || got.Role != RoleApprover || got.Audience != AdminAudience || got.IssuedBy != "local:root" || !strings.HasPrefix(got.ID, "adm_") {
		t.Fatalf("claims %+v", got)
	}
	rec, err := st.Token(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Agent != "admin:alice" || rec.Context["role"] != "approver" || rec.Issuer != "local:root" || len(rec.Targets) != 0 {
		t.Fatalf("store record %+v", rec)
	}
	if TokenID(tok) != c.ID {
		t.Fatal("TokenID does not see an admin token's id")
	}

	// Neither kind is accepted where the other is expected.
	if _, err := a.Verify(ctx, tok); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Verify accepted an admin token: %v", err)
	}
	if _, err := a.VerifySignature(tok); err == nil {
		t.Fatal("VerifySignature accepted an admin token")
	}
	agentTok, _, err := a.Issue(ctx, IssueRequest{Agent: "alice", Targets: []string{"orders"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.VerifyAdmin(ctx, agentTok); !errors.Is(err, ErrNotAdminToken) {
		t.Fatalf("VerifyAdmin accepted an agent token: %v", err)
	}

	// A second authority over the same store verifies it too; revocation applies.
	b, err := NewAuthority(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	b.SetClock(func() time.Time { return now })
	if _, err := b.VerifyAdmin(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := a.Revoke(ctx, c.ID, "local:root"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.VerifyAdmin(ctx, tok); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked: %v", err)
	}
}

func TestVerifyAdminRefuses(t *testing.T) {
	ctx := context.Background()
	a, st := newAuthority(t)
	now := time.Now()
	a.SetClock(func() time.Time { return now })
	tok, c, err := a.IssueAdmin(ctx, "bob", RoleAuditor, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	edit := func(old, new string) string {
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), old, new, 1))) + "." + parts[2]
	}
	// Validly signed, but not what the store recorded.
	resigned := func(mod func(*AdminClaims)) string {
		cc := c
		mod(&cc)
		s, err := a.signPayload(cc)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// A store record for the same id under an agent's name.
	agentRec := resigned(func(cc *AdminClaims) { cc.ID = "adm_agent" })
	if err := st.InsertToken(ctx, store.Token{ID: "adm_agent", Agent: "bob", Context: map[string]string{"role": "auditor"}, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"x"}`))

	tests := []struct {
		name  string
		token string
		at    time.Time
		want  error
	}{
		{"role raised in payload", edit(`"role":"auditor"`, `"role":"admin"`), now, ErrSignature},
		{"alg none", noneHeader + "." + parts[1] + ".", now, ErrMalformed},
		{"expired", tok, now.Add(time.Hour), ErrExpired},
		{"not yet valid", tok, now.Add(-time.Hour), ErrNotYet},
		{"unknown role signed", resigned(func(cc *AdminClaims) { cc.Role = "root" }), now, ErrMalformed},
		{"role differs from the record", resigned(func(cc *AdminClaims) { cc.Role = RoleAdmin }), now, ErrUnknown},
		{"name differs from the record", resigned(func(cc *AdminClaims) { cc.Name = "mallory" }), now, ErrUnknown},
		{"never recorded", resigned(func(cc *AdminClaims) { cc.ID = "adm_forged" }), now, ErrUnknown},
		{"record is an agent's", agentRec, now, ErrUnknown},
		{"wrong audience", resigned(func(cc *AdminClaims) { cc.Audience = "other" }), now, ErrMalformed},
		{"empty", "", now, ErrMalformed},
		{"garbage", "a.b.c", now, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a.SetClock(func() time.Time { return tc.at })
			defer a.SetClock(func() time.Time { return now })
			if _, err := a.VerifyAdmin(ctx, tc.token); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestIssueAdminChecks(t *testing.T) {
	ctx := context.Background()
	a, _ := newAuthority(t)
	tests := []struct {
		name string
		role Role
		ttl  time.Duration
	}{
		{"", RoleAdmin, time.Hour},
		{"alice:x", RoleAdmin, time.Hour},
		{"alice bob", RoleAdmin, time.Hour},
		{"alice", "root", time.Hour},
		{"alice", RoleAdmin, 0},
		{"alice", RoleAdmin, MaxAdminTTL + time.Second},
	}
	for _, tc := range tests {
		if _, _, err := a.IssueAdmin(ctx, tc.name, tc.role, tc.ttl); err == nil {
			t.Errorf("IssueAdmin(%q, %q, %s) succeeded", tc.name, tc.role, tc.ttl)
		}
	}
	for _, name := range []string{"alice", "alice.smith@example.com", "Bob_2"} {
		if _, _, err := a.IssueAdmin(ctx, name, RoleAdmin, time.Minute); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
}
