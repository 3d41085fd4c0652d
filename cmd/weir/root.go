package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"os/user"
	"runtime/pprof"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weir-gw/weir/internal/approval"
	"github.com/weir-gw/weir/internal/audit"
	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/gateway"
	"github.com/weir-gw/weir/internal/httpapi"
	"github.com/weir-gw/weir/internal/identity"
	"github.com/weir-gw/weir/internal/proxy/postgres"
	"github.com/weir-gw/weir/internal/store"
	"github.com/weir-gw/weir/internal/tlsutil"
)

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "weir",
		Short:         "weir is the enforcement point between AI agents and Azure resources",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("config", "./weir.yaml", "path to weir.yaml")
	root.AddCommand(serveCmd(), tokenCmd(), adminCmd(), keyCmd(), approvalsCmd(), policyCmd(), auditCmd(), sessionsCmd(), replayCmd())
	for _, c := range extraCommands {
		root.AddCommand(c())
	}
	return root
}

// extraCommands are subcommands registered by front ends' files in init()
// (weir mcp, weir env, weir ca).
var extraCommands []func() *cobra.Command

func loadConfig(cmd *cobra.Command) (*config.Config, error) {
	path, _ := cmd.Flags().GetString("config")
	return config.Load(path)
}

func openStore(cfg *config.Config) (store.Store, error) {
	return store.OpenSQLite(cfg.DataDir, cfg.Audit.Fsync)
}

func serveCmd() *cobra.Command {
	var logLevel string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the gateway",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			if path := os.Getenv("WEIR_CPUPROFILE"); path != "" {
				// For benchmarks: profile the whole serve run.
				f, err := os.Create(path)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			return serve(cmd.Context(), cfg, log)
		},
	}
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

func serve(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	st, err := openStore(cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	auth, err := identity.NewAuthority(ctx, st)
	if err != nil {
		return err
	}
	aw, err := audit.NewWriter(ctx, st)
	if err != nil {
		return err
	}
	aw.OnError = func(err error) { log.Error("audit write failed", "err", err) }
	defer aw.Close()
	gw, err := gateway.New(cfg, st, auth, aw, log)
	if err != nil {
		return err
	}
	approvals, notifier, err := approval.FromConfig(cfg, st, aw.Append, log)
	if err != nil {
		return err
	}
	approvals.Start(time.Second)
	defer approvals.Close()
	if notifier != nil {
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			notifier.Close(ctx)
		}()
	}
	gw.SetApprovals(approvals)
	gw.Start(time.Second)
	defer gw.Close()
	stopCheckpoints := startCheckpoints(st, auth, cfg.Audit.CheckpointInterval, cfg.Audit.Retention, log)
	defer stopCheckpoints()

	tlsCfg, err := tlsutil.ServerConfig(cfg.TLS.CertFile, cfg.TLS.KeyFile, cfg.DataDir)
	if err != nil {
		return err
	}
	pg, err := postgres.NewServer(gw, tlsCfg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen.Postgres)
	if err != nil {
		return fmt.Errorf("listen.postgres: %w", err)
	}
	errc := make(chan error, 8)
	go func() { errc <- pg.Serve(ln) }()
	env := &serveEnv{cfg: cfg, gw: gw, auth: auth, audit: aw, approvals: approvals, tls: tlsCfg, pg: pg, log: log, errc: errc, mounts: map[string]http.Handler{}}
	for _, start := range frontEnds {
		stop, err := start(ctx, env)
		if err != nil {
			pg.Close()
			return err
		}
		if stop != nil {
			defer stop()
		}
	}
	httpAddr := "off"
	if cfg.Listen.HTTP != "" {
		stopHTTP, addr, err := serveHTTP(env)
		if err != nil {
			pg.Close()
			return err
		}
		defer stopHTTP()
		httpAddr = addr
	}
	log.Info("weir is serving", "postgres", ln.Addr().String(), "http", httpAddr, "data_dir", cfg.DataDir, "targets", len(cfg.Targets), "rules", len(cfg.Policy.Rules))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case s := <-sig:
		log.Info("shutting down", "signal", s.String())
	case err = <-errc:
	}
	pg.Close()
	return err
}

// serveEnv is what a front end gets when serve starts it.
type serveEnv struct {
	cfg       *config.Config
	gw        *gateway.Gateway
	auth      *identity.Authority
	audit     *audit.Writer
	approvals *approval.Service
	tls       *tls.Config // weir's server certificate (front ends)
	pg        *postgres.Server
	log       *slog.Logger
	errc      chan<- error // a front end's fatal serving error ends serve
	// mounts are handlers for the listen.http server, by ServeMux pattern;
	// front ends add theirs before it starts.
	mounts map[string]http.Handler
}

// frontEnds start, in order, after the PostgreSQL front end and before the
// HTTP listener. Each protocol's file registers its own in init(), so
// serve stays the same as front ends are added.
var frontEnds []func(ctx context.Context, env *serveEnv) (stop func(), err error)

// tokenFormats render an issued token for a client that wants something
// else than the bare token (--format), registered by the front end that
// defines the format. target is the --target given (may be empty).
var tokenFormats = map[string]func(cfg *config.Config, target, token string, claims identity.Claims) (string, error){}

// serveHTTP runs the HTTP API (token exchange, admin endpoints). It speaks
// TLS unless plaintext on loopback is explicitly allowed, as for
// PostgreSQL: the requests carry tokens.
func serveHTTP(env *serveEnv) (func(), string, error) {
	cfg, auth, aw, approvals, tlsCfg, log, errc := env.cfg, env.auth, env.audit, env.approvals, env.tls, env.log, env.errc
	fed, err := identity.NewFederator(cfg, auth, identity.FederatorOptions{Logger: log})
	if err != nil {
		return nil, "", err
	}
	opts := httpapi.Options{Authority: auth, Audit: aw.Append, Logger: log, Approvals: approvals, Mounts: env.mounts}
	if fed.HasRules() {
		opts.Federator = fed
	}
	ln, err := net.Listen("tcp", cfg.Listen.HTTP)
	if err != nil {
		return nil, "", fmt.Errorf("listen.http: %w", err)
	}
	// No overall read timeout: Blob uploads stream for as long as they take;
	// a slow-header client is cut by ReadHeaderTimeout, an idle one by IdleTimeout.
	srv := &http.Server{Handler: httpapi.New(opts), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, TLSConfig: tlsCfg,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	plain := plainHTTP(cfg)
	scheme := "https"
	go func() {
		var err error
		if plain {
			err = srv.Serve(ln)
		} else {
			err = srv.ServeTLS(ln, "", "")
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
		}
	}()
	if plain {
		scheme = "http"
	}
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}
	return stop, scheme + "://" + ln.Addr().String(), nil
}

func tokenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Issue, list and revoke agents' weir tokens"}
	var (
		agentName string
		ttl       time.Duration
		contexts  []string
		targets   []string
		format    string
	)
	issue := &cobra.Command{
		Use:   "issue --agent NAME [--ttl 15m] [--context key=value ...] [--target NAME ...]",
		Short: "Issue a token (printed alone on stdout)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env, err := openEnv(cmd)
			if err != nil {
				return err
			}
			defer env.close()
			cfg := env.cfg
			render, ok := tokenFormats[format]
			if format != "token" && !ok {
				return fmt.Errorf("--format %q: use token%s", format, formatNames())
			}
			tok, claims, err := issueAgentToken(cmd.Context(), env, agentName, ttl, targets, contexts, "")
			if err != nil {
				return err
			}
			out := tok
			if render != nil {
				target := ""
				if len(targets) == 1 {
					target = targets[0]
				}
				if out, err = render(cfg, target, tok, claims); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "issued %s for agent %s, targets %s, expires %s\n", claims.ID, claims.Agent, strings.Join(claims.Targets, ","), claims.Expiry().UTC().Format(time.RFC3339))
			fmt.Fprintln(cmd.OutOrStdout(), out)
			return nil
		},
	}
	issue.Flags().StringVar(&agentName, "agent", "", "agent name from the config (required)")
	issue.Flags().DurationVar(&ttl, "ttl", 0, "lifetime (default tokens.default_ttl, 15m; at most the agent's max_ttl)")
	issue.Flags().StringArrayVar(&contexts, "context", nil, "attested execution context key=value (repeatable)")
	issue.Flags().StringArrayVar(&targets, "target", nil, "restrict the token to these targets (default: all of the agent's)")
	issue.Flags().StringVar(&format, "format", "token", "what to print: token"+formatNames())
	issue.MarkFlagRequired("agent")

	var all bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List live tokens (--all includes expired and revoked)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env, err := openEnv(cmd)
			if err != nil {
				return err
			}
			defer env.close()
			st := env.st
			now := time.Now()
			toks, err := st.ListTokens(cmd.Context(), all, now)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tAGENT\tTARGETS\tEXPIRES\tSTATE\tISSUED BY\tCONTEXT")
			for _, t := range toks {
				state := "live"
				switch {
				case !t.RevokedAt.IsZero():
					state = "revoked"
				case !now.Before(t.ExpiresAt):
					state = "expired"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Agent, strings.Join(t.Targets, ","), t.ExpiresAt.UTC().Format(time.RFC3339), state, t.Issuer, formatContext(t.Context))
			}
			return w.Flush()
		},
	}
	list.Flags().BoolVar(&all, "all", false, "include expired and revoked tokens")

	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token; live sessions using it end within seconds",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := openEnv(cmd)
			if err != nil {
				return err
			}
			defer env.close()
			st := env.st
			ctx := cmd.Context()
			tok, err := st.Token(ctx, args[0])
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no token %q (see weir token list --all)", args[0])
			}
			if err != nil {
				return err
			}
			by := localAdmin()
			if err := st.RevokeToken(ctx, tok.ID, by, time.Now()); err != nil {
				return err
			}
			if err := appendOne(ctx, st, audit.Event{Type: audit.TypeTokenRevoked, Agent: tok.Agent, Data: map[string]any{"token_id": tok.ID, "revoked_by": by}}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked %s (agent %s)\n", tok.ID, tok.Agent)
			return nil
		},
	}
	cmd.AddCommand(issue, list, revoke)
	return cmd
}

// issueAgentToken issues an agent's token from the CLI, checking the flags
// against the config (ttl within max_ttl, targets among the agent's,
// context as key=value), and audits the issuance. Every command that hands
// an agent a token (token issue, env) goes through it; via says which.
func issueAgentToken(ctx context.Context, env *cliEnv, agentName string, ttl time.Duration, targets, contexts []string, via string) (string, identity.Claims, error) {
	cfg := env.cfg
	agent, ok := cfg.Agent(agentName)
	if !ok {
		return "", identity.Claims{}, fmt.Errorf("agent %q is not in %s (agents: %s)", agentName, cfg.Path, agentNames(cfg))
	}
	if ttl == 0 {
		ttl = cfg.Tokens.DefaultTTL
	}
	if ttl > agent.MaxTTL {
		return "", identity.Claims{}, fmt.Errorf("--ttl %s exceeds agent %s's max_ttl of %s", ttl, agent.Name, agent.MaxTTL)
	}
	if ttl < time.Second {
		return "", identity.Claims{}, errors.New("--ttl must be at least 1s")
	}
	scope := agent.Targets
	if len(targets) > 0 {
		for _, t := range targets {
			if !contains(agent.Targets, t) {
				return "", identity.Claims{}, fmt.Errorf("--target %q is not one of agent %s's targets (%s)", t, agent.Name, strings.Join(agent.Targets, ", "))
			}
		}
		scope = targets
	}
	tctx := map[string]string{}
	for _, kv := range contexts {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return "", identity.Claims{}, fmt.Errorf("--context %q: want key=value", kv)
		}
		tctx[k] = v
	}
	issuer := localAdmin()
	tok, claims, err := env.auth.Issue(ctx, identity.IssueRequest{Agent: agent.Name, Targets: scope, TTL: ttl, Context: tctx, IssuedBy: issuer})
	if err != nil {
		return "", identity.Claims{}, err
	}
	data := map[string]any{"token_id": claims.ID, "targets": scope, "context": tctx, "issued_by": issuer, "expires": claims.Expiry().UTC()}
	if via != "" {
		data["via"] = via
	}
	if err := appendOne(ctx, env.st, audit.Event{Type: audit.TypeTokenIssued, Agent: agent.Name, Data: data}); err != nil {
		return "", identity.Claims{}, err
	}
	return tok, claims, nil
}

// appendOne appends one event from this CLI process; the store links it to
// the chain under its write lock, so a running server's appends interleave
// without forking the chain.
func appendOne(ctx context.Context, st store.Store, ev audit.Event) error {
	return audit.AppendOne(ctx, st, ev)
}

func formatContext(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, " ")
}

func formatNames() string {
	names := make([]string, 0, len(tokenFormats))
	for n := range tokenFormats {
		names = append(names, n)
	}
	sort.Strings(names)
	s := ""
	for _, n := range names {
		s += ", " + n
	}
	return s
}

func agentNames(cfg *config.Config) string {
	names := make([]string, len(cfg.Agents))
	for i, a := range cfg.Agents {
		names[i] = a.Name
	}
	if len(names) == 0 {
		return "none configured"
	}
	return strings.Join(names, ", ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// localAdmin names the person acting through the CLI on this machine.
// (Admin identities with their own tokens come with WEIR_ADMIN_TOKEN.)
func localAdmin() string {
	if u, err := user.Current(); err == nil {
		return "local:" + u.Username
	}
	return "local:unknown"
}

// httpBaseURL is how an agent on this machine reaches listen.http: http
// only where serve allows plaintext (loopback, tls.allow_plaintext_loopback).
func httpBaseURL(cfg *config.Config) (string, error) {
	if cfg.Listen.HTTP == "" {
		return "", errors.New("listen.http is not set in the config: weir's HTTP front ends (API, Blob, MCP, managed identity) are served there")
	}
	host, port, err := net.SplitHostPort(cfg.Listen.HTTP)
	if err != nil {
		return "", fmt.Errorf("listen.http: %w", err)
	}
	if port == "0" {
		return "", errors.New("listen.http has port 0; give it a fixed port so connection strings can name it")
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	scheme := "https"
	if plainHTTP(cfg) {
		scheme = "http"
	}
	return scheme + "://" + net.JoinHostPort(host, port), nil
}

// plainHTTP reports whether listen.http speaks plain HTTP: only when
// tls.allow_plaintext_loopback is set and it listens on loopback, as for
// PostgreSQL (its requests carry tokens).
func plainHTTP(cfg *config.Config) bool {
	host, _, _ := net.SplitHostPort(cfg.Listen.HTTP)
	return cfg.TLS.AllowPlaintextLoopback && (host == "localhost" || net.ParseIP(host) != nil && net.ParseIP(host).IsLoopback())
}
