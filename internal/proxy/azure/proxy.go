// Package azure is weir's front end for ARM, Key Vault and Functions: an
// HTTPS proxy (CONNECT) that unchanged `az` and Azure SDKs use through
// HTTPS_PROXY, and the managed-identity endpoint their credential chains
// take tokens from (see Tokens).
//
// Threat model. The agent holds only a weir token. It may send anything
// through the proxy; weir must make sure that what is decided is exactly
// what is forwarded, and that nothing else reaches Azure:
//
//   - only hosts of configured targets are intercepted (leaf certificates
//     from weir's own CA); every other CONNECT is refused, never tunnelled;
//   - each request is parsed once (Go's HTTP/1.1 reader, plus a check of
//     the raw head for Content-Length/Transfer-Encoding ambiguity) and
//     re-serialized: canonical path, re-encoded query, filtered headers, the
//     buffered body with its own Content-Length. The upstream host is the
//     target's endpoint, pinned; redirects are never followed;
//   - the request is classified into Commands and decided by the gateway
//     (audited before forwarding) with the agent's session, then forwarded
//     with weir's own Entra token or function key in place of the agent's;
//   - responses are read bounded, decoded (weir asks for identity), masked
//     and checked for links to other hosts before they reach the agent.
package azure

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/weir-gw/weir/internal/audit"
	"github.com/weir-gw/weir/internal/command"
	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/gateway"
	"github.com/weir-gw/weir/internal/mask"
	"github.com/weir-gw/weir/internal/upstream"
)

// TypeConnectRefused is the audit event of a refused CONNECT or a request
// refused before any session exists.
const TypeConnectRefused = "azure.refused"

// Options configure a Proxy.
type Options struct {
	Gateway *gateway.Gateway
	Tokens  *Tokens
	CA      *CA
	// Audit appends an event durably (refusals outside any session).
	Audit func(ctx context.Context, ev audit.Event) error
	Log   *slog.Logger
	// Credential is weir's upstream Entra credential (ARM, Key Vault).
	Credential azcore.TokenCredential
	// Transport reaches the targets' endpoints.
	Transport http.RoundTripper
	// SessionIdle ends a cached session unused for this long (default 5m).
	SessionIdle time.Duration
}

type route struct {
	target   *config.Target
	endpoint *url.URL
	hosts    map[string]bool
}

// Proxy is the HTTPS proxy.
type Proxy struct {
	o      Options
	cfg    *config.Config
	routes map[string]*route // by intercepted host
	client *http.Client
	max    int64

	tokMu  sync.Mutex
	tokens map[string]*upstream.EntraToken // by scope

	// pool holds one gateway session per token (or token id) and target.
	pool *gateway.SessionPool

	mu     sync.Mutex
	lns    []net.Listener
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// New builds the proxy for the config's azure-arm, azure-keyvault and
// azure-functions targets.
func New(o Options) (*Proxy, error) {
	cfg := o.Gateway.Config()
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.SessionIdle == 0 {
		o.SessionIdle = 5 * time.Minute
	}
	p := &Proxy{o: o, cfg: cfg, routes: map[string]*route{}, max: cfg.Azure.MaxBodyBytes, tokens: map[string]*upstream.EntraToken{},
		pool: o.Gateway.NewSessionPool(o.SessionIdle, nil), conns: map[net.Conn]struct{}{}}
	p.client = &http.Client{Transport: o.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for i := range cfg.Targets {
		t := &cfg.Targets[i]
		switch t.Kind {
		case config.KindAzureARM, config.KindAzureKeyVault, config.KindAzureFunctions:
		default:
			continue
		}
		u, err := url.Parse(t.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("target %s: endpoint: %w", t.Name, err)
		}
		r := &route{target: t, endpoint: u, hosts: map[string]bool{strings.ToLower(u.Host): true}}
		for _, h := range t.Azure.Hosts {
			r.hosts[h] = true
			p.routes[h] = r
		}
	}
	return p, nil
}

// Serve accepts proxy connections until Close.
func (p *Proxy) Serve(ln net.Listener) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return net.ErrClosed
	}
	p.lns = append(p.lns, ln)
	p.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			p.mu.Lock()
			closed := p.closed
			p.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return err
		}
		p.mu.Lock()
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer func() {
				p.mu.Lock()
				delete(p.conns, c)
				p.mu.Unlock()
				c.Close()
			}()
			p.handleConn(c)
		}()
	}
}

// Close stops listening, closes connections and ends cached sessions.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	for _, ln := range p.lns {
		ln.Close()
	}
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	p.pool.Close()
}

func (p *Proxy) refuseAudit(host, addr, reason string) {
	p.o.Log.Info("azure proxy refused a request", "host", host, "client_addr", addr, "reason", reason)
	err := p.o.Audit(context.Background(), audit.Event{Type: TypeConnectRefused, Data: map[string]any{"host": host, "client_addr": addr, "reason": reason}})
	if err != nil {
		p.o.Log.Error("auditing refused proxy request", "err", err)
	}
}

func writePlain(w io.Writer, status int, msg string) {
	fmt.Fprintf(w, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", status, http.StatusText(status), len(msg)+1, msg+"\n")
}

func (p *Proxy) handleConn(c net.Conn) {
	addr := c.RemoteAddr().String()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReaderSize(c, 8<<10)
	req, err := http.ReadRequest(br)
	if err != nil {
		writePlain(c, http.StatusBadRequest, "weir: malformed proxy request")
		return
	}
	if req.Method != http.MethodConnect {
		p.refuseAudit(req.Host, addr, "not CONNECT: "+req.Method)
		writePlain(c, http.StatusMethodNotAllowed, "weir: this is an HTTPS proxy for Azure hosts; it only tunnels (CONNECT) to hosts weir intercepts")
		return
	}
	host, port, err := net.SplitHostPort(req.RequestURI)
	host = strings.ToLower(host)
	rt := p.routes[host]
	switch {
	case err != nil || port != "443":
		p.refuseAudit(req.RequestURI, addr, "CONNECT to a port other than 443")
		writePlain(c, http.StatusForbidden, "weir: only port 443 of Azure hosts is reachable through weir")
		return
	case rt == nil:
		p.refuseAudit(host, addr, "host is not a configured target")
		writePlain(c, http.StatusForbidden, fmt.Sprintf("weir: %s is not an Azure target of this weir, so it is not reachable through this proxy (weir never tunnels blindly). Ask the operator to add a target for it, or set NO_PROXY for hosts that must not go through weir.", host))
		return
	}
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	var raw net.Conn = c
	if br.Buffered() > 0 {
		b, _ := br.Peek(br.Buffered())
		raw = &prefixConn{Conn: c, r: io.MultiReader(bytes.NewReader(append([]byte(nil), b...)), c)}
	}
	tc := tls.Server(raw, &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if hello.ServerName != "" && !strings.EqualFold(hello.ServerName, host) {
				return nil, fmt.Errorf("TLS server name %q differs from the CONNECT host %q", hello.ServerName, host)
			}
			return p.o.CA.Leaf(host)
		},
	})
	if err := tc.Handshake(); err != nil {
		p.o.Log.Debug("azure proxy TLS handshake failed", "host", host, "err", err)
		return
	}
	c.SetDeadline(time.Time{})
	p.serveTunnel(tc, c, rt, host, addr)
}

type prefixConn struct {
	net.Conn
	r io.Reader
}

func (p *prefixConn) Read(b []byte) (int, error) { return p.r.Read(b) }

const maxHead = 64 << 10

// checkHead reads ahead to the end of the request head and refuses what
// Go's reader would silently resolve but another server might read
// differently (H11): Content-Length together with Transfer-Encoding, and
// repeated Content-Length.
func checkHead(br *bufio.Reader) error {
	for {
		if n := br.Buffered(); n > 0 {
			b, _ := br.Peek(n)
			if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
				return headAmbiguity(b[:i])
			}
			if bytes.Contains(b, []byte("\n\n")) {
				return errors.New("weir: the request head uses bare LF line endings")
			}
			if n >= maxHead {
				return errors.New("weir: the request head is too large")
			}
		}
		// One more byte than buffered makes the reader fill once with
		// whatever has arrived, without waiting for more.
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			return err
		}
	}
}

func headAmbiguity(head []byte) error {
	cl, te := 0, 0
	for _, line := range bytes.Split(head, []byte("\r\n"))[1:] {
		name, _, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		switch strings.ToLower(string(name)) {
		case "content-length":
			cl++
		case "transfer-encoding":
			te++
		}
	}
	switch {
	case cl > 0 && te > 0:
		return errors.New("weir: the request has both Content-Length and Transfer-Encoding; send one")
	case cl > 1:
		return errors.New("weir: the request repeats Content-Length; send it once")
	case te > 1:
		return errors.New("weir: the request repeats Transfer-Encoding; send it once")
	}
	return nil
}

func (p *Proxy) serveTunnel(tc *tls.Conn, raw net.Conn, rt *route, host, addr string) {
	br := bufio.NewReaderSize(tc, maxHead)
	for {
		raw.SetReadDeadline(time.Now().Add(2 * time.Minute))
		if err := checkHead(br); err != nil {
			if !errors.Is(err, io.EOF) && !isNetClosed(err) && !isTimeout(err) {
				p.refuseAudit(host, addr, err.Error())
				writeError(tc, http.StatusBadRequest, "InvalidRequest", err.Error(), nil, true)
			}
			return
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			msg := "weir: malformed HTTP request: " + err.Error()
			p.refuseAudit(host, addr, msg)
			writeError(tc, http.StatusBadRequest, "InvalidRequest", msg, nil, true)
			return
		}
		// The body must arrive within this too: a client trickling it
		// cannot hold the connection (and its session) forever.
		raw.SetReadDeadline(time.Now().Add(10 * time.Minute))
		keep := p.serveRequest(tc, req, rt, host, addr)
		if !keep || req.Close {
			return
		}
	}
}

func isNetClosed(err error) bool { return errors.Is(err, net.ErrClosed) }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// writeError answers in ARM's error shape, which az and the SDKs print.
func writeError(w io.Writer, status int, code, msg string, hdr http.Header, close bool) {
	b, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": msg}})
	if hdr == nil {
		hdr = http.Header{}
	}
	hdr.Set("Content-Type", "application/json; charset=utf-8")
	hdr.Set("x-ms-weir", "refused")
	resp := &http.Response{StatusCode: status, ProtoMajor: 1, ProtoMinor: 1, Header: hdr, ContentLength: int64(len(b)),
		Body: io.NopCloser(bytes.NewReader(b)), Close: close}
	resp.Write(w)
}

// readBody reads the request body whole, bounded, decoding gzip (H14).
func (p *Proxy) readBody(w io.Writer, req *http.Request) ([]byte, error) {
	if strings.EqualFold(req.Header.Get("Expect"), "100-continue") {
		io.WriteString(w, "HTTP/1.1 100 Continue\r\n\r\n")
	}
	b, err := io.ReadAll(io.LimitReader(req.Body, p.max+1))
	if err != nil {
		return nil, fmt.Errorf("weir: reading the request body: %v", err)
	}
	if int64(len(b)) > p.max {
		return nil, fmt.Errorf("weir: the request body is larger than %d bytes, which weir inspects at most", p.max)
	}
	encs := req.Header.Values("Content-Encoding")
	switch {
	case len(encs) == 0 || (len(encs) == 1 && strings.EqualFold(strings.TrimSpace(encs[0]), "identity")):
		return b, nil
	case len(encs) == 1 && strings.EqualFold(strings.TrimSpace(encs[0]), "gzip"):
		return gunzip(b, p.max)
	}
	return nil, fmt.Errorf("weir: request Content-Encoding %q is not one weir can inspect; send identity or gzip", strings.Join(encs, ", "))
}

// gunzip decodes at most max bytes; a bomb is refused, not truncated.
func gunzip(b []byte, max int64) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, errors.New("weir: the gzip body is malformed")
	}
	out, err := io.ReadAll(io.LimitReader(zr, max+1))
	if err != nil {
		return nil, errors.New("weir: the gzip body is malformed")
	}
	if int64(len(out)) > max {
		return nil, fmt.Errorf("weir: the gzip body decodes to more than %d bytes, which weir inspects at most", max)
	}
	return out, nil
}

var overrideHeaders = []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// agentCredentialHeaders would carry a credential of the agent's own.
var agentCredentialHeaders = []string{"X-Functions-Key", "X-Ms-Authorization-Auxiliary", "Ocp-Apim-Subscription-Key", "Cookie", "Proxy-Authorization"}

// serveRequest handles one request in a tunnel; it reports whether the
// connection may carry another.
func (p *Proxy) serveRequest(w io.Writer, req *http.Request, rt *route, host, addr string) bool {
	start := time.Now()
	ctx := context.Background()
	body, err := p.readBody(w, req)
	if err != nil {
		p.refuseAudit(host, addr, err.Error())
		writeError(w, http.StatusBadRequest, "InvalidRequest", err.Error(), nil, true)
		return false
	}
	kind := rt.target.Kind
	auths := req.Header.Values("Authorization")
	bearer := ""
	if len(auths) == 1 {
		if scheme, tok, ok := strings.Cut(auths[0], " "); ok && strings.EqualFold(scheme, "Bearer") {
			bearer = strings.TrimSpace(tok)
		}
	}
	if bearer == "" {
		hdr := http.Header{}
		cl := p.cfg.Azure.CloudInfo()
		resource := cl.ARMResources[0]
		if kind == config.KindAzureKeyVault {
			resource = cl.VaultResource
		}
		// Key Vault clients learn the token audience from this challenge.
		hdr.Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="%s%s", resource="%s"`, cl.AuthorityHost, p.cfg.Azure.TenantID, resource))
		writeError(w, http.StatusUnauthorized, "AuthenticationFailed", "weir: send the agent's weir token (or a token from weir's managed-identity endpoint) as Authorization: Bearer", hdr, false)
		return true
	}
	tokenID, tokKind, err := p.o.Tokens.Unwrap(bearer)
	weirToken := ""
	switch {
	case errors.Is(err, ErrNotMI):
		weirToken, tokenID = bearer, ""
	case err != nil:
		p.refuseAudit(host, addr, err.Error())
		writeError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", err.Error(), nil, false)
		return true
	case tokKind != kind && !(kind == config.KindAzureFunctions):
		msg := fmt.Sprintf("weir: this access token was issued for %s, not for %s (%s); ask the managed-identity endpoint for the right resource", tokKind, host, kind)
		p.refuseAudit(host, addr, msg)
		writeError(w, http.StatusUnauthorized, "InvalidAuthenticationTokenAudience", msg, nil, false)
		return true
	}
	sess, release, err := p.session(ctx, weirToken, tokenID, rt, addr, req.UserAgent())
	if err != nil {
		var ae *gateway.AuthError
		msg := "weir could not open a session"
		if errors.As(err, &ae) {
			msg = "weir: " + strings.TrimPrefix(ae.Public, "weir: ")
		}
		writeError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", msg, nil, false)
		return true
	}
	defer release()
	protocol := map[string]string{config.KindAzureARM: "arm", config.KindAzureKeyVault: "keyvault", config.KindAzureFunctions: "functions"}[kind]
	refusal := func(status int, code, msg string) bool {
		text := req.Method + " " + req.RequestURI
		if len(text) > 2048 {
			text = text[:2048]
		}
		cmds := []command.Command{{Protocol: protocol, Verb: req.Method, Method: req.Method, Text: text}}
		v := sess.Decide(ctx, gateway.Request{Commands: cmds, Via: "https", Refusal: msg})
		sess.Result(gateway.Result{Seq: v.Seq, Error: strconv.Itoa(status), Duration: time.Since(start)})
		writeError(w, status, code, msg, nil, false)
		return true
	}
	// The request line must be origin-form for this host (H10).
	if !strings.HasPrefix(req.RequestURI, "/") || req.URL.IsAbs() {
		return refusal(http.StatusBadRequest, "InvalidRequest", "weir: send the request target in origin form (/path?query), not as an absolute URL")
	}
	if h, _, err := net.SplitHostPort(req.Host); (err == nil && !strings.EqualFold(h, host)) || (err != nil && !strings.EqualFold(req.Host, host)) {
		return refusal(http.StatusBadRequest, "InvalidRequest", fmt.Sprintf("weir: the Host header %q differs from the tunnel's host %s", req.Host, host))
	}
	for _, h := range overrideHeaders {
		if _, ok := req.Header[h]; ok {
			return refusal(http.StatusBadRequest, "MethodOverrideRefused", fmt.Sprintf("weir: the %s header (a method override) is refused: send the method you mean", h))
		}
	}
	for _, h := range agentCredentialHeaders {
		if _, ok := req.Header[h]; ok {
			return refusal(http.StatusBadRequest, "CredentialNotAllowed", fmt.Sprintf("weir: the %s header is refused: weir presents its own credential upstream", h))
		}
	}
	switch req.Method {
	case "GET", "HEAD", "PUT", "PATCH", "DELETE", "POST", "OPTIONS":
	default:
		return refusal(http.StatusMethodNotAllowed, "MethodNotAllowed", "weir: method "+req.Method+" is not forwarded")
	}
	if req.Method == "OPTIONS" && kind != config.KindAzureFunctions {
		return refusal(http.StatusMethodNotAllowed, "MethodNotAllowed", "weir: OPTIONS is not forwarded to "+kind)
	}
	if len(body) > 0 && kind == config.KindAzureARM && topLevelAPIVersion(body) {
		return refusal(http.StatusBadRequest, "InvalidApiVersion", "weir: api-version belongs in the query only, not in the body")
	}
	cl, err := Classify(&ClassifyOptions{Kind: kind, Host: host, APIVersions: p.cfg.Azure.APIVersions}, req.Method, req.URL.EscapedPath(), req.URL.RawQuery, body)
	if err != nil {
		var rf *Refusal
		if errors.As(err, &rf) {
			return refusal(rf.Status, rf.Code, rf.Msg)
		}
		return refusal(http.StatusBadRequest, "InvalidRequest", "weir: "+err.Error())
	}
	if _, ok := req.Header["X-Weir-Reveal"]; ok && kind != config.KindAzureFunctions {
		cl.MarkReveal()
	}
	v := sess.Decide(ctx, gateway.Request{Commands: cl.Commands, Via: "https", Bound: bodyBound(body)})
	if !v.Allowed() {
		writeError(w, http.StatusForbidden, "AuthorizationFailed", v.Public, nil, false)
		return true
	}
	res := gateway.Result{Seq: v.Seq}
	status, hdr, out, counts, ferr := p.forward(ctx, req, rt, host, cl, body)
	res.Duration = time.Since(start)
	res.Masked = counts
	if ferr != nil {
		res.Error = "upstream"
		sess.Result(res)
		writeError(w, http.StatusBadGateway, "WeirUpstreamRefused", ferr.Error(), nil, false)
		return true
	}
	res.Rows = 1
	if status >= 400 {
		res.Error = strconv.Itoa(status)
	}
	sess.Result(res)
	hdr.Set("Content-Length", strconv.Itoa(len(out)))
	resp := &http.Response{StatusCode: status, ProtoMajor: 1, ProtoMinor: 1, Header: hdr, ContentLength: int64(len(out)), Body: io.NopCloser(bytes.NewReader(out))}
	if req.Method == "HEAD" {
		resp.Body = http.NoBody
	}
	if err := resp.Write(w); err != nil {
		return false
	}
	return true
}

func topLevelAPIVersion(body []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return false
	}
	for k := range m {
		if strings.EqualFold(k, "api-version") {
			return true
		}
	}
	return false
}

// session returns the pooled gateway session for the route's target of a
// weir token, or of the weir token id a managed-identity token was issued
// for, authenticating a new one when needed. It is in use until release.
func (p *Proxy) session(ctx context.Context, token, tokenID string, rt *route, addr, userAgent string) (*gateway.Session, func(), error) {
	protocol := map[string]string{config.KindAzureARM: "arm", config.KindAzureKeyVault: "keyvault", config.KindAzureFunctions: "functions"}[rt.target.Kind]
	// What the client says it is is recorded as claimed context, never
	// trusted by allow rules.
	var claimed map[string]string
	if userAgent != "" {
		if len(userAgent) > 256 {
			userAgent = userAgent[:256]
		}
		claimed = map[string]string{"user_agent": userAgent}
	}
	return p.pool.Acquire(ctx, gateway.AuthRequest{Protocol: protocol, Token: token, TokenID: tokenID, Target: rt.target.Name, ClientAddr: addr, Claimed: claimed})
}

// bodyBound binds an approval to the exact body (a PUT's content), not
// only to the method and path.
type bodyBound []byte

func (b bodyBound) Params() [][]byte {
	if len(b) == 0 {
		return nil
	}
	return [][]byte{b}
}

func (b bodyBound) Preview(context.Context) string { return "" }

// hopHeaders never cross weir (RFC 9110 §7.6.1), nor do the framing and
// credential headers weir sets itself.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
	"Content-Length", "Content-Encoding", "Accept-Encoding", "Authorization", "Host", "Expect", "Cookie", "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
	"X-Weir-Reveal"}

// copyHeaders copies end-to-end headers: the ones the Connection header
// nominates are removed first, before weir adds its own (H12).
func copyHeaders(src http.Header) http.Header {
	dst := src.Clone()
	for _, v := range src.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				dst.Del(name)
			}
		}
	}
	for _, h := range hopHeaders {
		dst.Del(h)
	}
	return dst
}

func (p *Proxy) upstreamToken(ctx context.Context, kind string) (string, error) {
	scope := scopeFor(&p.cfg.Azure, kind)
	p.tokMu.Lock()
	et, ok := p.tokens[scope]
	if !ok {
		et = upstream.NewEntraToken(p.o.Credential, scope)
		p.tokens[scope] = et
	}
	p.tokMu.Unlock()
	return et.Password(ctx)
}

// forward sends the classified request upstream and returns the response
// to give the agent, masked.
func (p *Proxy) forward(ctx context.Context, req *http.Request, rt *route, host string, cl *Classified, body []byte) (int, http.Header, []byte, maskCounts, error) {
	var zero maskCounts
	u := *rt.endpoint
	u.Path, u.RawPath = "", ""
	target := u.String() + cl.Path
	if cl.RawQuery != "" {
		target += "?" + cl.RawQuery
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	up, err := http.NewRequestWithContext(ctx, req.Method, target, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, zero, errors.New("weir: could not build the upstream request")
	}
	up.Header = copyHeaders(req.Header)
	up.ContentLength = int64(len(body))
	if len(body) == 0 {
		up.Body = http.NoBody
	}
	up.Header.Set("Accept-Encoding", "identity")
	switch rt.target.Kind {
	case config.KindAzureFunctions:
		key := os.Getenv(rt.target.Azure.FunctionKeyEnv)
		if key == "" {
			p.o.Log.Error("function key environment variable is not set", "target", rt.target.Name, "env", rt.target.Azure.FunctionKeyEnv)
			return 0, nil, nil, zero, errors.New("weir: the function key for this target is not configured; ask the operator")
		}
		up.Header.Set("x-functions-key", key)
	default:
		tok, err := p.upstreamToken(ctx, rt.target.Kind)
		if err != nil {
			p.o.Log.Error("getting upstream Entra token", "target", rt.target.Name, "err", err)
			return 0, nil, nil, zero, errors.New("weir could not get its own Azure token for this target; ask the operator to check weir's azure.credential")
		}
		up.Header.Set("Authorization", "Bearer "+tok)
	}
	// The credential weir just presented: an upstream that echoes its
	// request (a debugging function trigger) must not hand it on.
	_, cred, _ := strings.Cut(up.Header.Get("Authorization"), " ")
	if rt.target.Kind == config.KindAzureFunctions {
		cred = up.Header.Get("x-functions-key")
	}
	resp, err := p.client.Do(up)
	if err != nil {
		p.o.Log.Warn("upstream request failed", "target", rt.target.Name, "err", err)
		return 0, nil, nil, zero, errors.New("weir could not reach the upstream service")
	}
	defer resp.Body.Close()
	return p.response(resp, rt, host, cl, cred)
}

// redactedCredential replaces weir's own upstream credential in a response.
const redactedCredential = "[REDACTED: weir's upstream credential]"

// scrubber removes cred from text; a credential too short to be told
// apart from ordinary text is not one weir would hold.
func scrubber(cred string) func(string) string {
	if len(cred) < 8 {
		return func(s string) string { return s }
	}
	return func(s string) string { return strings.ReplaceAll(s, cred, redactedCredential) }
}

type maskCounts = mask.Counts

// response reads, decodes, checks and masks an upstream response.
func (p *Proxy) response(resp *http.Response, rt *route, host string, cl *Classified, cred string) (int, http.Header, []byte, maskCounts, error) {
	var counts maskCounts
	scrub := scrubber(cred)
	hdr := copyHeaders(resp.Header)
	hdr.Del("Set-Cookie")
	for _, vs := range hdr {
		for i, v := range vs {
			vs[i] = scrub(v)
		}
	}
	link := func(s string) (string, bool) { return rewriteLink(s, rt, host) }
	for _, h := range []string{"Location", "Azure-Asyncoperation", "Azure-Asyncnotification", "Operation-Location", "Content-Location"} {
		if v := hdr.Get(h); v != "" {
			nv, ok := link(v)
			if !ok {
				if resp.StatusCode >= 300 && resp.StatusCode < 400 {
					return 0, nil, nil, counts, fmt.Errorf("weir: the upstream redirected to another host, which weir does not follow")
				}
				hdr.Del(h)
				continue
			}
			hdr.Set(h, nv)
		}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, p.max+1))
	if err != nil {
		return 0, nil, nil, counts, errors.New("weir: reading the upstream response failed")
	}
	if int64(len(b)) > p.max {
		return 0, nil, nil, counts, fmt.Errorf("weir: the upstream response is larger than %d bytes, which weir inspects at most; narrow the request (filter, top)", p.max)
	}
	encs := resp.Header.Values("Content-Encoding")
	switch {
	case len(encs) == 0 || (len(encs) == 1 && strings.EqualFold(encs[0], "identity")):
	case len(encs) == 1 && strings.EqualFold(encs[0], "gzip"):
		if b, err = gunzip(b, p.max); err != nil {
			return 0, nil, nil, counts, fmt.Errorf("weir: the upstream response could not be decoded: %v", strings.TrimPrefix(err.Error(), "weir: "))
		}
	default:
		return 0, nil, nil, counts, fmt.Errorf("weir: the upstream response is encoded as %q, which weir cannot inspect", strings.Join(encs, ", "))
	}
	if len(b) == 0 {
		return resp.StatusCode, hdr, b, counts, nil
	}
	if len(cred) >= 8 {
		b = bytes.ReplaceAll(b, []byte(cred), []byte(redactedCredential))
	}
	m := p.o.Gateway.Masker()
	ct := strings.ToLower(resp.Header.Get("Content-Type"))
	allSecret := false
	for _, c := range cl.Commands {
		if c.HasRisk(RiskSecretRead) && c.Attrs["action"] == "list" {
			allSecret = true
		}
	}
	if strings.Contains(ct, "json") || (ct == "" && json.Valid(b)) {
		out, c, err := maskJSON(&jsonMasker{m: m, allSecret: allSecret, link: link, reveal: cl.Reveal, scrub: scrub}, b)
		if err != nil {
			if errors.Is(err, ErrForeignLink) {
				return 0, nil, nil, counts, errors.New("weir: the upstream response links to another host (nextLink), which weir refuses")
			}
			return 0, nil, nil, counts, errors.New("weir: the upstream response claims JSON but is not, so weir cannot mask it")
		}
		counts.Add(c)
		return resp.StatusCode, hdr, out, counts, nil
	}
	if m == nil {
		return resp.StatusCode, hdr, b, counts, nil
	}
	if wideText(ct, b) {
		// The detectors read ASCII-compatible bytes; UTF-16/32 text would
		// show them a NUL between characters and pass unscanned.
		return 0, nil, nil, counts, errors.New("weir: the upstream response is UTF-16 or UTF-32 text (or another charset that is not ASCII-compatible), which weir cannot mask")
	}
	out, c := m.MaskBytes(b)
	counts.Add(c)
	return resp.StatusCode, hdr, out, counts, nil
}

// rewriteLink accepts a link to the tunnel's host or to the target's own
// endpoint (rewritten to the host the agent uses); any other host is
// foreign (H10).
func rewriteLink(s string, rt *route, host string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil {
		return "", false
	}
	if !u.IsAbs() {
		return s, u.Host == "" && u.User == nil
	}
	h := strings.ToLower(u.Host)
	if u.Scheme != "https" || u.User != nil {
		return "", false
	}
	if h == host || h == host+":443" {
		return s, true
	}
	if rt.hosts[h] {
		u.Host = host
		return u.String(), true
	}
	return "", false
}

// wideText reports text the masker cannot read byte-wise: a charset that
// is not ASCII-compatible, a UTF-16/32 byte-order mark, or the NULs such
// text without one has between its ASCII characters.
func wideText(ct string, b []byte) bool {
	if _, params, err := mime.ParseMediaType(ct); err == nil {
		switch cs := strings.ToLower(params["charset"]); {
		case cs == "", cs == "utf-8", cs == "utf8", cs == "us-ascii", cs == "ascii", cs == "latin1", cs == "cp1252",
			strings.HasPrefix(cs, "iso-8859-"), strings.HasPrefix(cs, "windows-125"):
		default:
			return true
		}
	}
	mt, _, _ := mime.ParseMediaType(ct)
	if !(ct == "" || strings.HasPrefix(mt, "text/") || strings.Contains(mt, "json") || strings.Contains(mt, "xml")) {
		return false // binary (an image a function returns) keeps its NULs
	}
	if bytes.HasPrefix(b, []byte{0xff, 0xfe}) || bytes.HasPrefix(b, []byte{0xfe, 0xff}) || bytes.HasPrefix(b, []byte{0, 0, 0xfe, 0xff}) {
		return true
	}
	head := b[:min(len(b), 512)]
	return len(head) >= 4 && bytes.Count(head, []byte{0}) >= len(head)/4
}
