// Package upstream supplies the credentials weir logs in to resources with.
//
// These credentials are the reason weir exists: agents never hold them.
// A Credential never formats its secret into an error or a log line.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/weir-gw/weir/internal/config"
)

// Credential yields the password to present upstream.
type Credential interface {
	Password(ctx context.Context) (string, error)
}

// ForTarget builds the credential a target's config selects.
func ForTarget(t *config.Target) (Credential, error) {
	switch t.Auth {
	case "entra":
		tc, err := entraCredential(&t.Entra)
		if err != nil {
			return nil, fmt.Errorf("target %s: building Entra credential: %w", t.Name, err)
		}
		return NewEntraToken(tc, t.Entra.Scope), nil
	default:
		return EnvPassword(t.PasswordEnv), nil
	}
}

// EnvPassword reads the password from an environment variable at each
// connection, so a rotated secret is picked up without a restart.
type EnvPassword string

func (e EnvPassword) Password(context.Context) (string, error) {
	v, ok := os.LookupEnv(string(e))
	if !ok || v == "" {
		return "", fmt.Errorf("environment variable %s (the upstream password) is not set", string(e))
	}
	return v, nil
}

func entraCredential(e *config.Entra) (azcore.TokenCredential, error) {
	switch {
	case e.ClientSecretEnv != "":
		secret := os.Getenv(e.ClientSecretEnv)
		if secret == "" {
			return nil, fmt.Errorf("environment variable %s (the Entra client secret) is not set", e.ClientSecretEnv)
		}
		return azidentity.NewClientSecretCredential(e.TenantID, e.ClientID, secret, nil)
	case e.ClientID != "":
		return azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID(e.ClientID)})
	default:
		return azidentity.NewDefaultAzureCredential(nil)
	}
}

// EntraToken presents a Microsoft Entra access token as the password, as
// Azure Database for PostgreSQL's Entra authentication expects. Tokens are
// cached and refreshed five minutes before they expire.
type EntraToken struct {
	cred  azcore.TokenCredential
	scope string
	now   func() time.Time

	mu    sync.Mutex
	token azcore.AccessToken
}

// NewEntraToken wraps a token credential for one scope.
func NewEntraToken(cred azcore.TokenCredential, scope string) *EntraToken {
	return &EntraToken{cred: cred, scope: scope, now: time.Now}
}

const refreshBefore = 5 * time.Minute

func (e *EntraToken) Password(ctx context.Context) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.token.Token != "" && e.now().Add(refreshBefore).Before(e.token.ExpiresOn) {
		return e.token.Token, nil
	}
	tok, err := e.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{e.scope}})
	if err != nil {
		// azidentity errors describe the failing flow, never the secret.
		return "", fmt.Errorf("getting Entra token for %s: %w", e.scope, err)
	}
	if tok.Token == "" {
		return "", errors.New("Entra returned an empty token")
	}
	e.token = tok
	return tok.Token, nil
}
