package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/identity"
	"github.com/weir-gw/weir/internal/proxy/blob"
)

// The Blob front end serves every azure-blob target under /blob/<target>
// on the listen.http server; `weir token issue --format connection-string`
// prints what an agent's az or SDK needs to reach it.
func init() {
	frontEnds = append(frontEnds, startBlob)
	tokenFormats["connection-string"] = connectionStringFormat
}

func startBlob(ctx context.Context, env *serveEnv) (func(), error) {
	has := false
	for _, t := range env.cfg.Targets {
		has = has || t.Kind == config.KindAzureBlob
	}
	if !has {
		return nil, nil
	}
	if env.cfg.Listen.HTTP == "" {
		return nil, errors.New("azure-blob targets are served on listen.http, which is not set")
	}
	secret, err := blob.LoadSecret(env.cfg.DataDir)
	if err != nil {
		return nil, err
	}
	h, err := blob.New(blob.Options{Gateway: env.gw, Secret: secret, Log: env.log})
	if err != nil {
		return nil, err
	}
	env.mounts[blob.Prefix] = h
	return h.Close, nil
}

func connectionStringFormat(cfg *config.Config, target, token string, claims identity.Claims) (string, error) {
	if target == "" {
		var blobs []string
		for _, t := range claims.Targets {
			if tc, ok := cfg.Target(t); ok && tc.Kind == config.KindAzureBlob {
				blobs = append(blobs, t)
			}
		}
		if len(blobs) != 1 {
			return "", fmt.Errorf("--format connection-string needs --target naming one azure-blob target (this token's: %s)", strings.Join(blobs, ", "))
		}
		target = blobs[0]
	}
	t, ok := cfg.Target(target)
	if !ok || t.Kind != config.KindAzureBlob {
		return "", fmt.Errorf("--target %q is not an azure-blob target", target)
	}
	base, err := httpBaseURL(cfg)
	if err != nil {
		return "", err
	}
	secret, err := blob.LoadSecret(cfg.DataDir)
	if err != nil {
		return "", err
	}
	return blob.ConnectionString(base+blob.Prefix+target, claims.ID, secret), nil
}
