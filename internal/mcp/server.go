// Package mcp is weir's MCP server: the front end that coding agents
// (Claude Code, Copilot, Cursor, VS Code) reach with the Model Context
// Protocol, over streamable HTTP on weir's HTTP listener (and over stdio
// through the `weir mcp` bridge, which only relays messages to it).
//
// An MCP gateway that filters by tool name cannot see the SQL inside a
// tool call; this one is a front end like psql. Its design, in the order a
// request meets it:
//
//   - every HTTP request carries the agent's weir token as a bearer token;
//     an invalid, expired or revoked token gets 401 with a WWW-Authenticate
//     header pointing at the protected resource metadata (RFC 9728), and a
//     session stays bound to the token it started with;
//   - an MCP session opens a gateway session (protocol "mcp", bound to no
//     target) whose claimed context is the client's name and version and
//     the MCP session id; every tool call is a note or a command there, so
//     `weir replay` shows what the agent did; the session ends with the MCP
//     session, or ends the MCP session when the token is revoked or expires;
//   - the query tool never decides anything: it speaks the PostgreSQL
//     protocol, over an in-process pipe, to weir's own PostgreSQL front end,
//     so classification, policy, approval, audit, masking and recording are
//     exactly psql's (one pipe per MCP session and target);
//   - request_approval opens an approval request for exactly the command
//     the agent will send (gateway.Session.RequestApproval), bound like a
//     held command's grant, so the approved query runs once, unchanged;
//   - a refusal comes back as a tool error the model can act on: the rule,
//     the reason and what to do next (approval id and how to follow it).
//
// Other front ends' tools (Blob, and azure_request for ARM, Key Vault and
// Functions) register with AddTool and get the same agent session.
package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/weir-gw/weir/internal/approval"
	"github.com/weir-gw/weir/internal/gateway"
	"github.com/weir-gw/weir/internal/identity"
	"github.com/weir-gw/weir/internal/pgsql"
	"github.com/weir-gw/weir/internal/proxy/postgres"
)

// Paths on weir's HTTP listener.
const (
	// Path is the streamable-HTTP MCP endpoint.
	Path = "/mcp"
	// MetadataPath is the OAuth protected resource metadata (RFC 9728);
	// MetadataPath+Path is its form for the /mcp resource.
	MetadataPath = "/.well-known/oauth-protected-resource"
)

// Protocol is the session protocol name MCP sessions are audited under.
const Protocol = "mcp"

// Options configure a Server.
type Options struct {
	Gateway *gateway.Gateway
	// Auth verifies the bearer tokens.
	Auth *identity.Authority
	// Postgres is weir's PostgreSQL front end; the query tool speaks to it
	// in-process. Nil leaves PostgreSQL targets without a query tool.
	Postgres *postgres.Server
	// Approvals reads approval requests for approval_status; nil when
	// approvals are off.
	Approvals *approval.Service
	// Blob is weir's Blob front end (the handler mounted at /blob/); the
	// blob tools send it HTTP requests in-process, with the agent's token,
	// so it classifies, decides, audits and masks them as any client's.
	// Nil leaves azure-blob targets without tools.
	Blob http.Handler
	// Azure is weir's Azure HTTPS proxy (listen.azure_proxy); the
	// azure_request tool is its client, as az is, with the agent's token.
	// Nil leaves azure-arm, azure-keyvault and azure-functions targets
	// without tools.
	Azure  *AzureProxy
	Logger *slog.Logger
	// Version is weir's version, announced to clients.
	Version string
	// SessionTimeout closes MCP sessions idle this long (default 30m).
	SessionTimeout time.Duration
}

// Server is the MCP front end.
type Server struct {
	opts       Options
	log        *slog.Logger
	mcp        *mcp.Server
	classifier *pgsql.Classifier
	http       *mcp.StreamableHTTPHandler

	mu       sync.Mutex
	sessions map[*mcp.ServerSession]*AgentSession
	closed   bool
}

// New builds the server with weir's tools registered.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	if opts.SessionTimeout <= 0 {
		opts.SessionTimeout = 30 * time.Minute
	}
	s := &Server{opts: opts, log: opts.Logger, classifier: pgsql.NewClassifier(1024), sessions: map[*mcp.ServerSession]*AgentSession{}}
	// The SDK logs every session at info; weir's own audit log has them.
	sdkLog := slog.New(warnOnly{opts.Logger.Handler()})
	s.mcp = mcp.NewServer(&mcp.Implementation{Name: "weir", Title: "weir gateway", Version: opts.Version}, &mcp.ServerOptions{
		Instructions: instructions,
		Logger:       sdkLog,
		// Sessions are what binds a client to its token, its pipes and its
		// audit session: the legacy (initialize) handshake keeps them.
		SupportedProtocolVersions: []string{"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"},
		Capabilities:              &mcp.ServerCapabilities{Tools: &mcp.ToolCapabilities{}},
	})
	s.http = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s.mcp }, &mcp.StreamableHTTPOptions{
		Logger: sdkLog, SessionTimeout: opts.SessionTimeout,
	})
	registerTargets(s)
	registerQuery(s)
	registerApprovals(s)
	if opts.Blob != nil {
		registerBlob(s)
	}
	if opts.Azure != nil {
		registerAzure(s)
	}
	s.mcp.AddReceivingMiddleware(s.offerByKind)
	return s
}

const instructions = `weir is the gateway between you and the organisation's databases and Azure resources. You never hold their credentials; every tool call is decided by weir's policy, recorded in an audit log, and what comes back is masked (emails, card numbers, secrets appear as masks: that is expected, do not try to unmask them).
Start with list_targets: it names your targets and says what the policy allows, sends for human approval, and denies there. Stay inside it. When a call is refused, read the rule and the next step in the error instead of retrying: a denied statement will be denied again; a statement that needs approval can be submitted with request_approval (with a justification), followed with approval_status, then run unchanged with query. Blob and Azure calls (blob_*, azure_request) open their approval request themselves when refused: follow the id with approval_status, then repeat the same call unchanged.`

// Handler serves MCP over streamable HTTP, requiring the agent's weir
// token as a bearer token on every request.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The metadata URL is built from the request so it is right
		// whatever address and port the listener got.
		mw := auth.RequireBearerToken(s.verify, &auth.RequireBearerTokenOptions{ResourceMetadataURL: baseURL(r) + MetadataPath + Path})
		mw(s.http).ServeHTTP(w, r)
	})
}

// MetadataHandler serves the protected resource metadata (RFC 9728): how
// an MCP client authenticates to weir. weir is not an OAuth authorization
// server; tokens come from `weir token issue` or the token exchange.
func (s *Server) MetadataHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		base := baseURL(r)
		meta := map[string]any{
			"resource":                 base + Path,
			"resource_name":            "weir MCP gateway",
			"bearer_methods_supported": []string{"header"},
			// Extension members (RFC 9728 §2 allows them): where a weir
			// token comes from, since there is no authorization server.
			"weir_token_issue":          "weir token issue --agent NAME (prints a weir token; send it as Authorization: Bearer TOKEN)",
			"weir_token_exchange":       base + "/v1/token/exchange",
			"weir_token_exchange_usage": "POST an OIDC token of a federated CI job to exchange it for a weir token",
		}
		// Public metadata, read by browser-based clients too.
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			http.Error(w, "use GET", http.StatusMethodNotAllowed)
			return
		}
		writeJSON(w, meta)
	})
}

// warnOnly passes on warnings and errors only.
type warnOnly struct{ slog.Handler }

func (w warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && w.Handler.Enabled(ctx, l)
}

func (w warnOnly) WithAttrs(as []slog.Attr) slog.Handler { return warnOnly{w.Handler.WithAttrs(as)} }
func (w warnOnly) WithGroup(name string) slog.Handler    { return warnOnly{w.Handler.WithGroup(name)} }

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func baseURL(r *http.Request) string {
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	return scheme + "://" + r.Host
}

// verify checks a bearer token. A token that is presented but refused is
// audited (as the PostgreSQL front end audits refused logins).
func (s *Server) verify(ctx context.Context, token string, r *http.Request) (*auth.TokenInfo, error) {
	claims, err := s.opts.Auth.Verify(ctx, token)
	if err == nil {
		if _, ok := s.opts.Gateway.Config().Agent(claims.Agent); !ok {
			err = fmt.Errorf("agent %q is not configured in this weir", claims.Agent)
		}
	}
	if err != nil {
		// The gateway audits the refusal; its public reason is what the
		// client is told.
		_, aerr := s.opts.Gateway.AuthenticateAgent(ctx, gateway.AuthRequest{Protocol: Protocol, Token: token, ClientAddr: r.RemoteAddr})
		var ae *gateway.AuthError
		if errors.As(aerr, &ae) {
			return nil, fmt.Errorf("%w: %s", auth.ErrInvalidToken, ae.Public)
		}
		return nil, fmt.Errorf("%w: %s", auth.ErrInvalidToken, "the weir token was refused")
	}
	return &auth.TokenInfo{Expiration: claims.Expiry(), UserID: claims.ID, Extra: map[string]any{"token": token, "addr": r.RemoteAddr, "claims": claims}}, nil
}

// Close ends every MCP session (and their gateway sessions and pipes).
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	var all []*AgentSession
	for _, a := range s.sessions {
		all = append(all, a)
	}
	s.mu.Unlock()
	for _, a := range all {
		a.ss.Close()
		a.close("weir is shutting down")
	}
}

// Sessions returns the number of live agent sessions.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// AgentSession is one MCP session of one agent: its token, its gateway
// session (for notes and agent-requested approvals) and its connections to
// targets.
type AgentSession struct {
	srv   *Server
	ss    *mcp.ServerSession
	ready chan struct{}
	err   error

	// Claims are the verified token's.
	Claims identity.Claims
	// Control is the gateway session tool calls are recorded in.
	Control *gateway.Session
	token   string
	addr    string
	claimed map[string]string

	mu     sync.Mutex
	pipes  map[string]*pgPipe
	closed bool
	once   sync.Once
}

// Token is the agent's weir token, for a tool that authenticates to
// another of weir's own front ends in-process (as query does).
func (a *AgentSession) Token() string { return a.token }

// ClientAddr is the MCP client's address.
func (a *AgentSession) ClientAddr() string { return a.addr }

// Claimed is the client's claimed context (MCP client name and version,
// MCP session id).
func (a *AgentSession) Claimed() map[string]string { return a.claimed }

// Note records a tool call in the agent's gateway session.
func (a *AgentSession) Note(tool string, data map[string]any) {
	if data == nil {
		data = map[string]any{}
	}
	data["tool"] = tool
	a.Control.Note("mcp.tool_call", data)
}

// session finds or opens the agent session of the request's MCP session.
func (s *Server) session(ctx context.Context, req *mcp.CallToolRequest) (*AgentSession, error) {
	ti := req.Extra.TokenInfo
	if ti == nil || req.Session == nil {
		return nil, errors.New("weir: this request carries no weir token")
	}
	token, _ := ti.Extra["token"].(string)
	addr, _ := ti.Extra["addr"].(string)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("weir is shutting down")
	}
	a := s.sessions[req.Session]
	if a == nil {
		a = &AgentSession{srv: s, ss: req.Session, ready: make(chan struct{}), token: token, addr: addr, pipes: map[string]*pgPipe{}}
		s.sessions[req.Session] = a
		s.mu.Unlock()
		s.open(ctx, a)
	} else {
		s.mu.Unlock()
	}
	select {
	case <-a.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if a.err != nil {
		return nil, a.err
	}
	if a.Claims.ID != ti.UserID {
		return nil, errors.New("weir: this MCP session belongs to another token; start a new session")
	}
	return a, nil
}

func (s *Server) open(ctx context.Context, a *AgentSession) {
	defer close(a.ready)
	a.claimed = map[string]string{"mcp_session_id": a.ss.ID()}
	if ip := a.ss.InitializeParams(); ip != nil && ip.ClientInfo != nil {
		a.claimed["mcp_client_name"] = ip.ClientInfo.Name
		a.claimed["mcp_client_version"] = ip.ClientInfo.Version
	}
	sess, err := s.opts.Gateway.AuthenticateAgent(context.WithoutCancel(ctx), gateway.AuthRequest{Protocol: Protocol, Token: a.token, ClientAddr: a.addr, Claimed: a.claimed})
	if err != nil {
		var ae *gateway.AuthError
		if errors.As(err, &ae) {
			a.err = errors.New("weir: " + ae.Public)
		} else {
			a.err = errors.New("weir could not open a session")
		}
		s.mu.Lock()
		delete(s.sessions, a.ss)
		s.mu.Unlock()
		return
	}
	a.Control, a.Claims = sess, sess.Claims
	ended := make(chan struct{})
	go func() { a.ss.Wait(); close(ended) }()
	go func() {
		reason := "mcp session closed"
		select {
		case <-ended:
		case <-sess.Done():
			// Token revoked or expired: the MCP session ends with it, so
			// the client has to come back with a valid token.
			reason = sess.Reason()
			a.ss.Close()
		}
		a.close(reason)
	}()
}

func (a *AgentSession) close(reason string) {
	a.once.Do(func() {
		a.mu.Lock()
		a.closed = true
		pipes := a.pipes
		a.pipes = map[string]*pgPipe{}
		a.mu.Unlock()
		for _, p := range pipes {
			p.close()
		}
		if a.Control != nil {
			a.Control.End(reason)
		}
		a.srv.mu.Lock()
		if a.srv.sessions[a.ss] == a {
			delete(a.srv.sessions, a.ss)
		}
		a.srv.mu.Unlock()
	})
}

// ToolFunc handles one tool call for an agent session. It returns the
// result (Content, IsError) and the structured content (nil for none).
type ToolFunc[In any] func(ctx context.Context, a *AgentSession, in In) (*mcp.CallToolResult, any)

// AddTool registers a tool. Every call is bound to the caller's agent
// session first (refused without one), so a tool never runs for an
// unauthenticated or ended session. The tool itself must take anything
// that reaches a resource through the gateway (Decide) and record the call
// (a Note, or commands in the target's session).
func AddTool[In any](s *Server, t *mcp.Tool, h ToolFunc[In]) {
	mcp.AddTool(s.mcp, t, func(ctx context.Context, req *mcp.CallToolRequest, in In) (*mcp.CallToolResult, any, error) {
		a, err := s.session(ctx, req)
		if err != nil {
			return toolError(err.Error()), nil, nil
		}
		res, out := h(ctx, a, in)
		return res, out, nil
	})
}

func toolError(msg string) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: msg}}}
}

func textResult(text string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: strings.TrimRight(text, "\n")}}}
}
