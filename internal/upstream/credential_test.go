package upstream

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// countingCredential stands in for Entra ID, which cannot run here; it
// returns tokens shaped like azidentity's.
type countingCredential struct {
	calls  int
	expiry time.Time
	fail   bool
	scopes []string
}

func (c *countingCredential) GetToken(_ context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.calls++
	c.scopes = opts.Scopes
	if c.fail {
		return azcore.AccessToken{}, errors.New("AADSTS7000215: invalid client secret")
	}
	return azcore.AccessToken{Token: "eyJ0eXAi.token" + string(rune('0'+c.calls)), ExpiresOn: c.expiry}, nil
}

func TestEntraTokenCachesUntilNearExpiry(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	cc := &countingCredential{expiry: now.Add(time.Hour)}
	e := NewEntraToken(cc, "https://ossrdbms-aad.database.windows.net/.default")
	e.now = func() time.Time { return now }
	p1, err := e.Password(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := e.Password(context.Background())
	if p1 != p2 || cc.calls != 1 {
		t.Fatalf("token not cached: %q %q calls=%d", p1, p2, cc.calls)
	}
	if cc.scopes[0] != "https://ossrdbms-aad.database.windows.net/.default" {
		t.Fatalf("scope %v", cc.scopes)
	}
	now = now.Add(56 * time.Minute) // within five minutes of expiry
	cc.expiry = now.Add(time.Hour)
	p3, _ := e.Password(context.Background())
	if p3 == p1 || cc.calls != 2 {
		t.Fatalf("token not refreshed near expiry: calls=%d", cc.calls)
	}
}

func TestEntraTokenError(t *testing.T) {
	e := NewEntraToken(&countingCredential{fail: true}, "s")
	if _, err := e.Password(context.Background()); err == nil || !strings.Contains(err.Error(), "getting Entra token") {
		t.Fatalf("got %v", err)
	}
}

func TestEnvPassword(t *testing.T) {
	t.Setenv("WEIR_TEST_PW", "s3cret")
	if p, err := EnvPassword("WEIR_TEST_PW").Password(context.Background()); err != nil || p != "s3cret" {
		t.Fatal(p, err)
	}
	_, err := EnvPassword("WEIR_TEST_MISSING").Password(context.Background())
	if err == nil || !strings.Contains(err.Error(), "WEIR_TEST_MISSING") {
		t.Fatalf("got %v", err)
	}
}
