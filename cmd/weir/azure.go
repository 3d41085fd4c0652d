package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/proxy/azure"
	"github.com/weir-gw/weir/internal/tlsutil"
)

func init() {
	frontEnds = append(frontEnds, startAzure)
	extraCommands = append(extraCommands, envCmd, caCmd)
}

func hasAzureTargets(cfg *config.Config) bool {
	for _, t := range cfg.Targets {
		switch t.Kind {
		case config.KindAzureARM, config.KindAzureKeyVault, config.KindAzureFunctions:
			return true
		}
	}
	return false
}

// startAzure mounts the managed-identity endpoint on the HTTP listener and
// starts the HTTPS proxy on listen.azure_proxy.
func startAzure(ctx context.Context, env *serveEnv) (func(), error) {
	cfg := env.cfg
	if !hasAzureTargets(cfg) {
		return nil, nil
	}
	tokens := &azure.Tokens{Auth: env.auth, Cfg: cfg, Audit: env.audit.Append, Log: env.log}
	h := tokens.Handler()
	env.mounts["/msi/token"] = h
	env.mounts["/msi/token/{$}"] = h
	env.mounts["/metadata/identity/oauth2/token"] = h
	if cfg.Listen.AzureProxy == "" {
		env.log.Warn("azure targets are configured but listen.azure_proxy is empty: the HTTPS proxy is off")
		return nil, nil
	}
	ca, err := azure.LoadCA(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	tr, err := azure.UpstreamTransport(&cfg.Azure)
	if err != nil {
		return nil, err
	}
	cred, err := azure.Credential(&cfg.Azure, tr)
	if err != nil {
		return nil, fmt.Errorf("azure.credential: %w", err)
	}
	px, err := azure.New(azure.Options{Gateway: env.gw, Tokens: tokens, CA: ca, Audit: env.audit.Append, Log: env.log, Credential: cred, Transport: tr})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen.AzureProxy)
	if err != nil {
		return nil, fmt.Errorf("listen.azure_proxy: %w", err)
	}
	go func() {
		if err := px.Serve(ln); err != nil {
			env.errc <- fmt.Errorf("azure proxy: %w", err)
		}
	}()
	env.log.Info("azure proxy is serving", "addr", ln.Addr().String())
	return px.Close, nil
}

// caBundle writes the PEM file agents' clients trust: weir's proxy CA and,
// when weir generated its own HTTP certificate, that certificate (the
// managed-identity endpoint is on the HTTP listener).
func caBundle(cfg *config.Config) (string, []byte, error) {
	ca, err := azure.LoadCA(cfg.DataDir)
	if err != nil {
		return "", nil, err
	}
	var b bytes.Buffer
	b.Write(ca.PEM())
	if cfg.Listen.HTTP != "" {
		certFile := cfg.TLS.CertFile
		if certFile == "" {
			if _, err := tlsutil.ServerConfig("", "", cfg.DataDir); err != nil {
				return "", nil, err
			}
			certFile = filepath.Join(cfg.DataDir, "tls", "server.crt")
		}
		pem, err := os.ReadFile(certFile)
		if err != nil {
			return "", nil, err
		}
		b.Write(pem)
	}
	certPath, _ := azure.CAPaths(cfg.DataDir)
	path := filepath.Join(filepath.Dir(certPath), "bundle.pem")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return "", nil, err
	}
	return path, b.Bytes(), nil
}

func caCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "ca", Short: "weir's own CA for the Azure HTTPS proxy"}
	var bundle bool
	export := &cobra.Command{
		Use:   "export [--bundle]",
		Short: "Print weir's CA certificate (PEM); --bundle adds the HTTP listener's own certificate",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			if bundle {
				_, b, err := caBundle(cfg)
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			ca, err := azure.LoadCA(cfg.DataDir)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(ca.PEM())
			return err
		},
	}
	export.Flags().BoolVar(&bundle, "bundle", false, "also print the HTTP listener's certificate (what weir env points clients at)")
	cmd.AddCommand(export)
	return cmd
}

// agentAddr turns a listen address into one an agent can dial.
func agentAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func envCmd() *cobra.Command {
	var (
		agentName string
		ttl       time.Duration
		httpURL   string
		proxyURL  string
		contexts  []string
	)
	cmd := &cobra.Command{
		Use:   "env --agent NAME [--ttl 1h]",
		Short: "Issue a token and print the environment that points an agent's az and Azure SDKs at weir",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env, err := openEnv(cmd)
			if err != nil {
				return err
			}
			defer env.close()
			cfg := env.cfg
			agent, ok := cfg.Agent(agentName)
			if !ok {
				return fmt.Errorf("agent %q is not in %s (agents: %s)", agentName, cfg.Path, agentNames(cfg))
			}
			azureTargets := 0
			for _, name := range agent.Targets {
				if t, ok := cfg.Target(name); ok && (t.Kind == config.KindAzureARM || t.Kind == config.KindAzureKeyVault || t.Kind == config.KindAzureFunctions) {
					azureTargets++
				}
			}
			if azureTargets == 0 {
				return fmt.Errorf("agent %s has no azure-arm, azure-keyvault or azure-functions target in %s, so there is nothing to point its Azure tools at", agent.Name, cfg.Path)
			}
			if cfg.Listen.HTTP == "" && httpURL == "" {
				return errors.New("listen.http is off, so weir has no managed-identity endpoint; set listen.http")
			}
			if cfg.Listen.AzureProxy == "" && proxyURL == "" {
				return errors.New("listen.azure_proxy is off, so weir has no Azure HTTPS proxy; set listen.azure_proxy")
			}
			bundle, _, err := caBundle(cfg)
			if err != nil {
				return err
			}
			tok, claims, err := issueAgentToken(cmd.Context(), env, agent.Name, ttl, nil, contexts, "weir env")
			if err != nil {
				return err
			}
			if httpURL == "" {
				if httpURL, err = httpBaseURL(cfg); err != nil {
					return err
				}
			}
			if proxyURL == "" {
				proxyURL = "http://" + agentAddr(cfg.Listen.AzureProxy)
			}
			httpURL = strings.TrimSuffix(httpURL, "/")
			noProxy := "localhost,127.0.0.1"
			if u := strings.TrimPrefix(strings.TrimPrefix(httpURL, "https://"), "http://"); u != "" {
				if h, _, err := net.SplitHostPort(u); err == nil && h != "127.0.0.1" && h != "localhost" {
					noProxy += "," + h
				}
			}
			msi := httpURL + "/msi/token"
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "# weir: agent %s, token %s, expires %s\n", agent.Name, claims.ID, claims.Expiry().UTC().Format(time.RFC3339))
			for _, kv := range [][2]string{
				{"IDENTITY_ENDPOINT", msi}, {"IDENTITY_HEADER", tok},
				// az 2.45 sends MSI_SECRET only in its App Service flow, which
				// APPSETTING_WEBSITE_SITE_NAME selects.
				{"MSI_ENDPOINT", msi}, {"MSI_SECRET", tok}, {"APPSETTING_WEBSITE_SITE_NAME", "weir"},
				{"HTTPS_PROXY", proxyURL}, {"https_proxy", proxyURL}, {"NO_PROXY", noProxy}, {"no_proxy", noProxy},
				{"REQUESTS_CA_BUNDLE", bundle}, {"SSL_CERT_FILE", bundle}, {"NODE_EXTRA_CA_CERTS", bundle},
			} {
				fmt.Fprintf(out, "export %s=%s\n", kv[0], shellQuote(kv[1]))
			}
			fmt.Fprintln(out, "# then: az login --identity --allow-no-subscriptions; az group list")
			fmt.Fprintf(cmd.ErrOrStderr(), "issued %s for agent %s, expires %s\n", claims.ID, agent.Name, claims.Expiry().UTC().Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVar(&agentName, "agent", "", "agent name from the config (required)")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "token lifetime (default tokens.default_ttl; at most the agent's max_ttl)")
	cmd.Flags().StringArrayVar(&contexts, "context", nil, "attested execution context key=value (repeatable)")
	cmd.Flags().StringVar(&httpURL, "http-url", "", "URL agents reach weir's HTTP listener at (default from listen.http)")
	cmd.Flags().StringVar(&proxyURL, "proxy-url", "", "URL agents reach the Azure proxy at (default from listen.azure_proxy)")
	cmd.MarkFlagRequired("agent")
	return cmd
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:,=@+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
