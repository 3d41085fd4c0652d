// Package blob is weir's Azure Blob Storage front end: the Blob REST API,
// served under /blob/<target>/ on weir's HTTP listener, for unchanged
// `az storage` commands and Azure SDKs.
//
// Threat model. The agent holds a connection string whose account key is
// derived from its weir token and is worthless anywhere but here. Every
// request is authenticated (SharedKey signed with that derived key, or a
// weir bearer token), its path canonicalized once, classified into a
// command.Command, decided and audited by the gateway, and only then
// re-serialized from the canonical form and signed upstream with the real
// account key, which never leaves weir. Requests carrying their own
// credential (a SAS, a SharedKey of another account, a foreign bearer) are
// refused. Responses that can carry text are masked in a stream; what weir
// cannot decode (an unknown Content-Encoding) is refused, never passed on
// unscanned.
package blob

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/weir-gw/weir/internal/command"
	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/gateway"
)

// Prefix is where the front end is mounted on weir's HTTP listener; a
// target's Blob endpoint is Prefix + target name.
const Prefix = "/blob/"

// Protocol names Blob sessions and commands.
const Protocol = "blob"

// Options configure the front end.
type Options struct {
	Gateway *gateway.Gateway
	// Secret derives the agents' account keys (see DeriveKey).
	Secret []byte
	Log    *slog.Logger
	// IdleTimeout ends a token's session after this long without a
	// request (default 5 minutes).
	IdleTimeout time.Duration
	// Transport reaches the upstream endpoints (default: a transport
	// that never follows redirects and does not decompress).
	Transport http.RoundTripper
	// MaxDecoded bounds a decompressed response body (default 4 GiB);
	// MaxRatio bounds decompressed/compressed size past the first MiB
	// (default 200).
	MaxDecoded int64
	MaxRatio   int64
	// Now is the clock (tests).
	Now func() time.Time
}

// Handler serves the Blob REST API for every azure-blob target.
type Handler struct {
	gw      *gateway.Gateway
	secret  []byte
	log     *slog.Logger
	idle    time.Duration
	client  *http.Client
	now     func() time.Time
	maxDec  int64
	maxRat  int64
	targets map[string]*upstream
	// pool holds one gateway session per token and target.
	pool *gateway.SessionPool
}

// upstream is one target's real endpoint and credential.
type upstream struct {
	target   *config.Target
	base     *url.URL
	account  string
	key      []byte
	copyFrom map[string]bool
}

// entry is one request's view of its token's session on a target.
type entry struct {
	s   *gateway.Session
	key []byte // the derived account key of the token (batch parts)
}

// New checks every azure-blob target's upstream credential and returns
// the handler. A target whose key is missing stops the start: a Blob
// front end that cannot sign upstream would only fail later.
func New(opts Options) (*Handler, error) {
	if opts.Gateway == nil || len(opts.Secret) < 32 {
		return nil, errors.New("blob: gateway and a 32-byte secret are required")
	}
	h := &Handler{gw: opts.Gateway, secret: opts.Secret, log: opts.Log, idle: opts.IdleTimeout, now: opts.Now,
		maxDec: opts.MaxDecoded, maxRat: opts.MaxRatio, targets: map[string]*upstream{}}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.idle <= 0 {
		h.idle = 5 * time.Minute
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.maxDec <= 0 {
		h.maxDec = 4 << 30
	}
	if h.maxRat <= 0 {
		h.maxRat = 200
	}
	tr := opts.Transport
	if tr == nil {
		tr = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost:   32,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 2 * time.Minute,
			// weir decodes what it must mask itself, bounded; the
			// transport must not decode behind its back.
			DisableCompression: true,
			WriteBufferSize:    256 << 10,
			ReadBufferSize:     256 << 10,
		}
	}
	// A redirect could send the re-signed request to another host.
	h.client = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	cfg := opts.Gateway.Config()
	for i := range cfg.Targets {
		t := &cfg.Targets[i]
		if t.Kind != config.KindAzureBlob {
			continue
		}
		if t.Auth != "shared-key" {
			return nil, fmt.Errorf("target %s: auth %q is not supported by the Blob front end yet; use auth: shared-key", t.Name, t.Auth)
		}
		raw := os.Getenv(t.Blob.AccountKeyEnv)
		if raw == "" {
			return nil, fmt.Errorf("target %s: environment variable %s (account_key_env) is not set", t.Name, t.Blob.AccountKeyEnv)
		}
		key, err := base64.StdEncoding.DecodeString(raw)
		if err != nil || len(key) == 0 {
			return nil, fmt.Errorf("target %s: environment variable %s does not hold a base64 account key", t.Name, t.Blob.AccountKeyEnv)
		}
		u, err := url.Parse(strings.TrimSuffix(t.Endpoint, "/"))
		if err != nil {
			return nil, fmt.Errorf("target %s: endpoint: %w", t.Name, err)
		}
		up := &upstream{target: t, base: u, account: t.Blob.Account, key: key, copyFrom: map[string]bool{t.Blob.Account: true}}
		for _, a := range t.Blob.CopySources {
			up.copyFrom[a] = true
		}
		h.targets[t.Name] = up
	}
	h.pool = opts.Gateway.NewSessionPool(h.idle, h.now)
	return h, nil
}

// Close ends every session and stops the idle reaper.
func (h *Handler) Close() { h.pool.Close() }

// Sessions is the number of live Blob sessions.
func (h *Handler) Sessions() int { return h.pool.Len() }

// ServeHTTP handles one Blob REST request under Prefix.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The raw request target: what the agent signed and what weir
	// canonicalizes. An absolute-form target could name another host.
	raw := r.RequestURI
	if !strings.HasPrefix(raw, Prefix) {
		writeError(w, http.StatusBadRequest, "InvalidUri", "weir accepts only origin-form request targets under "+Prefix+"<target>/")
		return
	}
	rawPath, rawQuery, _ := strings.Cut(raw, "?")
	name, rest, _ := strings.Cut(rawPath[len(Prefix):], "/")
	up, ok := h.targets[name]
	if !ok {
		writeError(w, http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("weir has no azure-blob target %s; the Blob endpoint is %s<target>", quote(name), Prefix))
		return
	}
	rest = "/" + rest
	if rest == "/" {
		rest = ""
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidQueryParameterValue", "the query string is not valid URL encoding")
		return
	}
	if hasSAS(q) {
		h.log.Info("blob: refused request", "target", name, "client_addr", r.RemoteAddr, "method", r.Method, "code", "agent SAS")
		writeError(w, http.StatusForbidden, CodeAuth, "weir does not accept a shared access signature (sig=…) from an agent; remove it and authenticate with the connection string weir issued (weir token issue --format connection-string --target "+name+")")
		return
	}
	stripConnectionNominated(r.Header)
	e, release, status, code, msg := h.authenticate(r, up, rawPath, rawQuery)
	if e == nil {
		// No session to audit it in: the operator finds it in the log.
		h.log.Info("blob: refused request", "target", name, "client_addr", r.RemoteAddr, "method", r.Method, "code", code)
		writeError(w, status, code, msg)
		return
	}
	defer release()
	h.serve(w, r, up, e, rest, q)
}

func hasSAS(q url.Values) bool {
	for k := range q {
		lk := strings.ToLower(k)
		for _, s := range sasParams {
			if lk == s {
				return true
			}
		}
	}
	return false
}

// stripConnectionNominated removes headers the client named as hop-by-hop,
// before anything is read from the headers.
func stripConnectionNominated(hd http.Header) {
	for _, v := range hd.Values("Connection") {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				hd.Del(n)
			}
		}
	}
	for _, n := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Te", "Trailer", "Upgrade"} {
		hd.Del(n)
	}
}

const maxClockSkew = 15 * time.Minute

// authenticate checks the request's signature and finds (or opens) the
// token's session, in use until release is called. On failure it returns a
// nil entry and the error to send.
func (h *Handler) authenticate(r *http.Request, up *upstream, rawPath, rawQuery string) (e *entry, release func(), status int, code, msg string) {
	target := up.target.Name
	howTo := " Use the connection string from `weir token issue --agent AGENT --format connection-string --target " + target + "`."
	auth := r.Header.Values("Authorization")
	if len(auth) != 1 {
		if len(auth) == 0 {
			return nil, nil, http.StatusForbidden, CodeNoAuth, "weir does not allow anonymous Blob requests." + howTo
		}
		return nil, nil, http.StatusBadRequest, "InvalidAuthenticationInfo", "the request has more than one Authorization header"
	}
	scheme, cred, _ := strings.Cut(auth[0], " ")
	var token, tokenID, account, sig string
	switch scheme {
	case "SharedKey":
		var ok bool
		account, sig, ok = strings.Cut(cred, ":")
		if !ok || !isTokenID(account) {
			return nil, nil, http.StatusForbidden, CodeAuth, "this SharedKey is not from a weir connection string (weir refuses the keys of storage accounts: it signs upstream itself)." + howTo
		}
		tokenID = account
	case "Bearer":
		token = strings.TrimSpace(cred)
		if strings.Count(token, ".") != 2 {
			return nil, nil, http.StatusForbidden, CodeAuth, "the bearer token was not issued by weir; weir refuses Entra tokens (it authenticates upstream itself). Send a weir token."
		}
	default:
		return nil, nil, http.StatusForbidden, CodeAuth, fmt.Sprintf("weir accepts SharedKey (from its connection string) or a weir bearer token, not %s.", quote(scheme)) + howTo
	}
	if scheme == "SharedKey" {
		// A signed request is only good for a short while, as at Azure.
		d := r.Header.Get("x-ms-date")
		if d == "" {
			d = r.Header.Get("Date")
		}
		t, err := http.ParseTime(d)
		if err != nil || h.now().Sub(t).Abs() > maxClockSkew {
			return nil, nil, http.StatusForbidden, CodeAuth, "x-ms-date is missing or more than 15 minutes from weir's clock; sign a fresh request"
		}
		// The signature proves the client holds the key derived for this
		// token id, so it is checked before the token is looked up: the
		// token itself never travels.
		if !verifySharedKey(DeriveKey(h.secret, tokenID), sig, r.Method, r.Header, account, rawPath, rawQuery) {
			h.log.Info("blob: SharedKey signature mismatch", "token_id", tokenID, "target", target, "client", r.RemoteAddr)
			return nil, nil, http.StatusForbidden, CodeAuth, "the SharedKey signature does not match the key weir derived for this token; sign with the AccountKey of the same connection string." + howTo
		}
	}
	sess, release, err := h.pool.Acquire(r.Context(), gateway.AuthRequest{Protocol: Protocol, Token: token, TokenID: tokenID, Target: target, ClientAddr: r.RemoteAddr})
	if err != nil {
		var ae *gateway.AuthError
		if errors.As(err, &ae) {
			return nil, nil, http.StatusForbidden, CodeAuth, "weir refused the token: " + ae.Public
		}
		h.log.Error("blob: opening session", "err", err)
		return nil, nil, http.StatusServiceUnavailable, "ServerBusy", "weir could not check the token right now; try again later"
	}
	return &entry{s: sess, key: DeriveKey(h.secret, sess.Claims.ID)}, release, 0, "", ""
}

// isTokenID reports whether s has the form of a weir token id ("tok_" and
// 24 lower-case hex digits), the AccountName of a weir connection string.
func isTokenID(s string) bool {
	if len(s) != 28 || !strings.HasPrefix(s, "tok_") {
		return false
	}
	for _, c := range s[4:] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// refuse audits a refusal the front end found before the policy could see
// the request, then answers it.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, e *entry, cmds []command.Command, status int, code, msg string) {
	v := e.s.Decide(r.Context(), gateway.Request{Commands: cmds, Via: "blob", Refusal: "weir: " + msg})
	writeError(w, status, code, v.Public)
}
