package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/identity"
	weirmcp "github.com/weir-gw/weir/internal/mcp"
	"github.com/weir-gw/weir/internal/proxy/azure"
	"github.com/weir-gw/weir/internal/proxy/blob"
)

// The MCP front end: streamable HTTP on listen.http (/mcp, with the RFC 9728
// metadata under /.well-known), and `weir mcp`, the stdio bridge to it.
func init() {
	frontEnds = append(frontEnds, startMCP)
	extraCommands = append(extraCommands, mcpCmd)
	tokenFormats["mcp-json"] = mcpJSONFormat
}

func startMCP(_ context.Context, env *serveEnv) (func(), error) {
	if env.cfg.Listen.HTTP == "" {
		return nil, nil
	}
	// The blob tools are clients of the Blob front end, which blob.go
	// (started before this file's front end) mounted when weir has
	// azure-blob targets.
	az, err := mcpAzureProxy(env)
	if err != nil {
		return nil, err
	}
	srv := weirmcp.New(weirmcp.Options{Gateway: env.gw, Auth: env.auth, Postgres: env.pg, Approvals: env.approvals,
		Blob: env.mounts[blob.Prefix], Azure: az, Logger: env.log.With("frontend", "mcp")})
	env.mounts[weirmcp.Path] = srv.Handler()
	env.mounts[weirmcp.MetadataPath] = srv.MetadataHandler()
	env.mounts[weirmcp.MetadataPath+weirmcp.Path] = srv.MetadataHandler()
	return srv.Close, nil
}

// mcpAzureProxy is how azure_request reaches the Azure HTTPS proxy (started
// by azure.go before this front end): as az does, through
// listen.azure_proxy, trusting weir's CA. Nil when there is no proxy.
func mcpAzureProxy(env *serveEnv) (*weirmcp.AzureProxy, error) {
	cfg := env.cfg
	if cfg.Listen.AzureProxy == "" || !hasAzureTargets(cfg) {
		return nil, nil
	}
	if _, port, err := net.SplitHostPort(cfg.Listen.AzureProxy); err != nil || port == "0" {
		// The port the proxy got is not known here.
		env.log.Warn("listen.azure_proxy has no fixed port, so the MCP tool azure_request is off", "listen.azure_proxy", cfg.Listen.AzureProxy)
		return nil, nil
	}
	ca, err := azure.LoadCA(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca.PEM()) {
		return nil, errors.New("weir's Azure CA certificate is not PEM")
	}
	return &weirmcp.AzureProxy{URL: &neturl.URL{Scheme: "http", Host: agentAddr(cfg.Listen.AzureProxy)}, RootCAs: pool}, nil
}

const (
	tokenEnv = "WEIR_TOKEN"
	urlEnv   = "WEIR_URL"
)

func mcpCmd() *cobra.Command {
	var url, caFile string
	cmd := &cobra.Command{
		Use:   "mcp [--url https://weir:8080/mcp] [--ca weir-ca.pem]",
		Short: "MCP over stdio for a local agent, relayed to weir's MCP endpoint (token from WEIR_TOKEN)",
		Long: `weir mcp speaks MCP on stdin/stdout to a local agent (Claude Code, VS Code, Cursor)
and relays every message to weir's streamable-HTTP endpoint with the weir token in
WEIR_TOKEN as bearer token. It holds no other credential and decides nothing.

weir's URL: --url, else WEIR_URL, else listen.http of --config (plus /mcp).
weir's certificate: --ca, else the one weir generated in the config's data_dir,
else the system roots.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			token := strings.TrimSpace(os.Getenv(tokenEnv))
			if token == "" {
				return errors.New(tokenEnv + " is not set: export the agent's weir token (weir token issue --agent NAME)")
			}
			endpoint, hc, err := mcpEndpoint(cmd, url, caFile)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return weirmcp.Bridge(ctx, weirmcp.BridgeOptions{URL: endpoint, Token: token, HTTPClient: hc})
		},
	}
	cmd.Flags().StringVar(&url, "url", "", "weir's MCP endpoint (default $"+urlEnv+", else listen.http of the config + /mcp)")
	cmd.Flags().StringVar(&caFile, "ca", "", "PEM file with weir's CA certificate (default: the certificate in the config's data_dir)")
	return cmd
}

// mcpEndpoint finds weir's MCP URL and whom to trust for it.
func mcpEndpoint(cmd *cobra.Command, url, caFile string) (string, *http.Client, error) {
	if url == "" {
		url = os.Getenv(urlEnv)
	}
	var tlsCfg *tls.Config
	if url == "" {
		cfg, err := loadConfig(cmd)
		if err != nil {
			return "", nil, fmt.Errorf("no --url or %s, and the config cannot tell: %w", urlEnv, err)
		}
		base, t, err := apiEndpoint(cfg)
		if err != nil {
			return "", nil, err
		}
		url, tlsCfg = base+weirmcp.Path, t
	} else if caFile == "" {
		// With a URL, the config's certificate is still the likeliest
		// trust for weir's own TLS; fall back to the system roots.
		if cfg, err := loadConfig(cmd); err == nil && cfg.TLS.CertFile == "" {
			if _, t, err := apiEndpoint(cfg); err == nil {
				tlsCfg = t
			}
		}
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return "", nil, fmt.Errorf("--ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return "", nil, fmt.Errorf("--ca: %s holds no PEM certificate", caFile)
		}
		tlsCfg = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	u, err := neturl.Parse(url)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", nil, fmt.Errorf("weir's MCP URL %q must be https://HOST:PORT/mcp (or http:// on loopback)", url)
	}
	if u.Scheme == "http" && !loopbackHost(u.Hostname()) {
		// The token would cross the network in clear text.
		return "", nil, fmt.Errorf("weir's MCP URL %q is plain http to a host that is not loopback; use https", url)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // the token goes to weir only
	if tlsCfg != nil {
		tr.TLSClientConfig = tlsCfg
	}
	return url, &http.Client{Transport: tr}, nil
}

func loopbackHost(h string) bool {
	ip := net.ParseIP(h)
	return h == "localhost" || ip != nil && ip.IsLoopback()
}

// mcpJSONFormat prints a ready MCP client config for the token
// (`weir token issue --agent NAME --format mcp-json`): the stdio bridge
// and the HTTP endpoint with the bearer token.
func mcpJSONFormat(cfg *config.Config, _ string, token string, _ identity.Claims) (string, error) {
	cfgPath, err := filepath.Abs(cfg.Path)
	if err != nil {
		cfgPath = cfg.Path
	}
	url := "https://127.0.0.1:8080" + weirmcp.Path
	if cfg.Listen.HTTP != "" {
		if base, _, err := apiEndpoint(cfg); err == nil {
			url = base + weirmcp.Path
		} else if strings.Contains(err.Error(), "reading weir's TLS certificate") {
			url = "https://" + cfg.Listen.HTTP + weirmcp.Path
		}
	}
	return fmt.Sprintf(`{
  "mcpServers": {
    "weir": {
      "command": "weir",
      "args": ["mcp", "--config", %q],
      "env": {"WEIR_TOKEN": %q}
    },
    "weir-http": {
      "type": "http",
      "url": %q,
      "headers": {"Authorization": "Bearer %s"}
    }
  }
}`, cfgPath, token, url, token), nil
}
