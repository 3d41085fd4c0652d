// Package httpapi is weir's JSON API on the listen.http address: the token
// exchange for federated CI jobs and the endpoints people use with admin
// tokens.
//
// Every response carries X-Content-Type-Options: nosniff and
// Cache-Control: no-store (responses hold tokens). Errors are JSON
// {"error": "<reason safe to show>"}. Request bodies are JSON only (which
// also keeps cross-site HTML forms out) and at most 64 KiB. No presented or
// issued token is ever logged or audited; only token ids are.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/weir-gw/weir/internal/approval"
	"github.com/weir-gw/weir/internal/audit"
	"github.com/weir-gw/weir/internal/identity"
)

// TypeTokenExchange is the audit event type of every exchange, accepted or refused.
const TypeTokenExchange = "token.exchange"

// maxBody caps a request body.
const maxBody = 64 << 10

// Exchanger exchanges a federated OIDC token for a weir token;
// *identity.Federator is one.
type Exchanger interface {
	Exchange(ctx context.Context, rawOIDC, agentName, clientAddr string) (string, identity.Claims, error)
}

// Options wires the API to the rest of weir.
type Options struct {
	// Federator serves POST /v1/token/exchange; nil answers it with 404.
	Federator Exchanger
	// Authority verifies admin tokens (and revokes a token whose issuance
	// could not be audited). Required.
	Authority *identity.Authority
	// Audit appends an event durably, e.g. (*audit.Writer).Append. Required:
	// an exchange that cannot be audited is refused.
	Audit func(ctx context.Context, ev audit.Event) error
	// Approvals serves /v1/approvals (list, show, approve, deny); nil
	// leaves those routes out.
	Approvals *approval.Service
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Mounts are other front ends on the same listener (Blob, MCP, the
	// managed-identity endpoint), by ServeMux pattern ("/blob/", "/mcp").
	// Their handlers do their own authentication; the API's security
	// headers are added to their responses as well.
	Mounts map[string]http.Handler
}

type server struct {
	fed   Exchanger
	appr  *approval.Service
	auth  *identity.Authority
	audit func(ctx context.Context, ev audit.Event) error
	log   *slog.Logger
}

// New returns the API handler. Mount it at the root of the listen.http server.
func New(opts Options) http.Handler {
	s := &server{fed: opts.Federator, appr: opts.Approvals, auth: opts.Authority, audit: opts.Audit, log: opts.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.audit == nil {
		s.audit = func(context.Context, audit.Event) error { return errors.New("no audit log configured") }
	}
	mux := http.NewServeMux()
	if s.fed != nil {
		route(mux, http.MethodPost, "/v1/token/exchange", http.HandlerFunc(s.exchange))
	}
	if s.appr != nil {
		s.approvalRoutes(mux)
	}
	// Subtree mounts ("/blob/") get their requests before the ServeMux,
	// which would answer a path with dot segments or "//" with a redirect
	// to the cleaned path: such a front end canonicalizes (and refuses)
	// paths itself, once, on what the client sent.
	var subtrees []mount
	for pattern, h := range opts.Mounts {
		if strings.HasSuffix(pattern, "/") && !strings.Contains(pattern, " ") {
			subtrees = append(subtrees, mount{prefix: pattern, h: h})
			continue
		}
		mux.Handle(pattern, h)
	}
	route(mux, http.MethodGet, "/v1/whoami", s.requireRole(identity.RoleApprover, identity.RoleAdmin, identity.RoleAuditor)(http.HandlerFunc(s.whoami)))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint")
	})
	if len(subtrees) == 0 {
		return securityHeaders(mux)
	}
	return securityHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, m := range subtrees {
			if strings.HasPrefix(r.URL.Path, m.prefix) {
				m.h.ServeHTTP(w, r)
				return
			}
		}
		mux.ServeHTTP(w, r)
	}))
}

type mount struct {
	prefix string
	h      http.Handler
}

// route registers h for method and path, and a JSON 405 for other methods.
func route(mux *http.ServeMux, method, path string, h http.Handler) {
	mux.Handle(method+" "+path, h)
	mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", method)
		writeError(w, http.StatusMethodNotAllowed, "use "+method+" for "+path)
	})
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		h.Set("Pragma", "no-cache")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// ExchangeRequest is the body of POST /v1/token/exchange.
type ExchangeRequest struct {
	Token string `json:"token"`
	Agent string `json:"agent"`
}

// ExchangeResponse is its answer.
type ExchangeResponse struct {
	Token     string `json:"token"`
	ExpiresAt string `json:"expires_at"`
	TokenID   string `json:"token_id"`
}

// errBadRequest is a request weir cannot read; its text is public.
type errBadRequest struct {
	status int
	msg    string
}

func (e *errBadRequest) Error() string { return e.msg }

// checkJSON refuses a request whose body is not declared as JSON.
func checkJSON(r *http.Request) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return &errBadRequest{http.StatusUnsupportedMediaType, "the request body must be JSON (Content-Type: application/json)"}
	}
	return nil
}

func decodeExchangeBody(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &errBadRequest{http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is larger than %d bytes", maxBody)}
		}
		return &errBadRequest{http.StatusBadRequest, "the request body is not a JSON object of the expected form: " + publicJSONError(err)}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &errBadRequest{http.StatusBadRequest, "the request body has data after the JSON object"}
	}
	return nil
}

// publicJSONError describes a decoding error without echoing the input.
func publicJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q must be a %s", typ.Field, typ.Type)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end of input"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	return "invalid JSON"
}

// parseExchangeRequest decodes and checks an exchange body.
func parseExchangeRequest(body io.Reader) (ExchangeRequest, error) {
	var req ExchangeRequest
	if err := decodeExchangeBody(body, &req); err != nil {
		return req, err
	}
	if req.Token == "" || req.Agent == "" {
		return req, &errBadRequest{http.StatusBadRequest, `"token" (the OIDC token) and "agent" (the weir agent's name) are both required`}
	}
	return req, nil
}

// exchangeStatus maps a refusal to its HTTP status: 400 for a token that is
// not a token, 401 when the token does not authenticate (signature,
// issuer, audience, time), 403 when it does but is not allowed (agent,
// subject, condition), 503 when the issuer cannot be reached.
func exchangeStatus(err error) int {
	switch {
	case errors.Is(err, identity.ErrExchangeMalformed), errors.Is(err, identity.ErrExchangeClaims):
		return http.StatusBadRequest
	case errors.Is(err, identity.ErrExchangeSignature), errors.Is(err, identity.ErrExchangeIssuer),
		errors.Is(err, identity.ErrExchangeAudience), errors.Is(err, identity.ErrExchangeExpired),
		errors.Is(err, identity.ErrExchangeNotYetValid):
		return http.StatusUnauthorized
	case errors.Is(err, identity.ErrExchangeUnknownAgent), errors.Is(err, identity.ErrExchangeNoRule),
		errors.Is(err, identity.ErrExchangeSubject), errors.Is(err, identity.ErrExchangeCondition):
		return http.StatusForbidden
	case errors.Is(err, identity.ErrExchangeUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func (s *server) exchange(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	client := r.RemoteAddr
	data := map[string]any{"client_addr": client}
	refuse := func(status int, code, public string, agent string) {
		data["result"], data["reason"], data["reason_code"] = "refused", public, code
		if err := s.audit(ctx, audit.Event{Type: TypeTokenExchange, Agent: agent, Data: data}); err != nil {
			s.log.Error("auditing refused token exchange", "err", err)
		}
		writeError(w, status, public)
	}

	var req ExchangeRequest
	err := checkJSON(r)
	if err == nil {
		req, err = parseExchangeRequest(http.MaxBytesReader(w, r.Body, maxBody))
	}
	if err != nil {
		var br *errBadRequest
		errors.As(err, &br)
		refuse(br.status, "bad_request", br.msg, "")
		return
	}
	// The agent name is the client's; record it as asked, bounded, and as
	// the event's agent only once it is known to be configured.
	data["agent_requested"] = capString(req.Agent, 64)

	tok, claims, err := s.fed.Exchange(ctx, req.Token, req.Agent, client)
	if err != nil {
		var xe *identity.ExchangeError
		code, agent := "internal", req.Agent
		public := identity.ErrExchangeInternal.Error()
		if errors.As(err, &xe) {
			code, public = xe.Reason.Code(), xe.Error()
			if xe.Issuer != "" {
				data["issuer"] = xe.Issuer
			} else if xe.ClaimedIssuer != "" {
				data["claimed_issuer"] = xe.ClaimedIssuer
			}
			if xe.Subject != "" {
				data["subject"] = xe.Subject
			}
			if xe.Rule >= 0 {
				data["federation_rule"] = xe.Rule
			}
			if xe.Detail != "" {
				data["detail"] = xe.Detail
			}
		} else {
			s.log.Error("token exchange failed", "err", err)
		}
		if errors.Is(err, identity.ErrExchangeUnknownAgent) {
			agent = ""
		}
		refuse(exchangeStatus(err), code, public, agent)
		return
	}
	data["result"] = "accepted"
	data["token_id"] = claims.ID
	data["issuer"] = claims.Context["issuer"]
	data["subject"] = claims.Context["subject"]
	data["federation_rule"] = claims.Context["federation_rule"]
	data["targets"] = claims.Targets
	data["context"] = claims.Context
	data["expires"] = claims.Expiry().UTC()
	if err := s.audit(ctx, audit.Event{Type: TypeTokenExchange, Agent: claims.Agent, Data: data}); err != nil {
		// Nothing leaves weir unaudited: the token is revoked and not handed out.
		s.log.Error("auditing token exchange; refusing it", "err", err, "token_id", claims.ID)
		if rerr := s.auth.Revoke(context.WithoutCancel(ctx), claims.ID, "weir:audit-failure"); rerr != nil {
			s.log.Error("revoking unaudited token", "err", rerr, "token_id", claims.ID)
		}
		writeError(w, http.StatusServiceUnavailable, "weir cannot record this exchange (audit store unavailable); refusing")
		return
	}
	writeJSON(w, http.StatusOK, ExchangeResponse{Token: tok, ExpiresAt: claims.Expiry().UTC().Format(time.RFC3339), TokenID: claims.ID})
}

func capString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

type adminKey struct{}

// AdminFrom returns the verified admin a request was authorized for (set
// by requireRole).
func AdminFrom(ctx context.Context) (identity.AdminClaims, bool) {
	c, ok := ctx.Value(adminKey{}).(identity.AdminClaims)
	return c, ok
}

// requireRole admits requests bearing a valid admin token (Authorization:
// Bearer …) whose role is one of roles: 401 without a valid admin token
// (missing, malformed, expired, revoked, or an agent's token), 403 for a
// role not listed. Every admin endpoint is wrapped in it; the handler gets
// the admin from AdminFrom.
func (s *server) requireRole(roles ...identity.Role) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok, ok := bearer(r)
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="weir"`)
				writeError(w, http.StatusUnauthorized, "an admin token is required (Authorization: Bearer <token from weir admin token issue>)")
				return
			}
			c, err := s.auth.VerifyAdmin(r.Context(), tok)
			if err != nil {
				public := "the admin token is not valid"
				switch {
				case errors.Is(err, identity.ErrNotAdminToken), errors.Is(err, identity.ErrExpired), errors.Is(err, identity.ErrRevoked),
					errors.Is(err, identity.ErrNotYet), errors.Is(err, identity.ErrSignature), errors.Is(err, identity.ErrMalformed),
					errors.Is(err, identity.ErrUnknown):
					public = "the admin token is not valid: " + err.Error()
				default:
					s.log.Error("verifying admin token", "err", err)
					writeError(w, http.StatusServiceUnavailable, "weir could not verify the token right now")
					return
				}
				s.log.Info("admin request refused", "path", r.URL.Path, "client_addr", r.RemoteAddr, "token_id", identity.TokenID(tok), "reason", err.Error())
				s.auditRefusedAdmin(r, map[string]any{"token_id": identity.TokenID(tok), "reason": err.Error()})
				w.Header().Set("WWW-Authenticate", `Bearer realm="weir", error="invalid_token"`)
				writeError(w, http.StatusUnauthorized, public)
				return
			}
			if !slices.Contains(roles, c.Role) {
				s.log.Info("admin request refused", "path", r.URL.Path, "client_addr", r.RemoteAddr, "admin", c.Name, "role", c.Role)
				s.auditRefusedAdmin(r, map[string]any{"token_id": c.ID, "admin": c.Name, "role": string(c.Role), "reason": "role not allowed"})
				writeError(w, http.StatusForbidden, fmt.Sprintf("role %s may not do this (needs %s)", c.Role, joinRoles(roles)))
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), adminKey{}, c)))
		})
	}
}

// TypeAdminRefused records a refused admin request.
const TypeAdminRefused = "admin.refused"

func (s *server) auditRefusedAdmin(r *http.Request, data map[string]any) {
	data["path"], data["method"], data["client_addr"] = r.URL.Path, r.Method, r.RemoteAddr
	if err := s.audit(r.Context(), audit.Event{Type: TypeAdminRefused, Data: data}); err != nil {
		s.log.Error("auditing refused admin request", "err", err)
	}
}

func joinRoles(roles []identity.Role) string {
	s := make([]string, len(roles))
	for i, r := range roles {
		s[i] = string(r)
	}
	return strings.Join(s, " or ")
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// WhoamiResponse is the answer of GET /v1/whoami.
type WhoamiResponse struct {
	Name      string `json:"name"`
	Role      string `json:"role"`
	TokenID   string `json:"token_id"`
	ExpiresAt string `json:"expires_at"`
}

func (s *server) whoami(w http.ResponseWriter, r *http.Request) {
	c, _ := AdminFrom(r.Context())
	writeJSON(w, http.StatusOK, WhoamiResponse{Name: c.Name, Role: string(c.Role), TokenID: c.ID, ExpiresAt: c.Expiry().UTC().Format(time.RFC3339)})
}
