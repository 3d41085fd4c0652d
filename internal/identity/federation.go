package identity

// Federation: a CI job or workload exchanges an OIDC token from an issuer
// it already trusts (GitHub Actions, Azure DevOps, Microsoft Entra) for a
// short-lived weir token, with no stored secret. See docs/identity.md.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"
	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/weir-gw/weir/internal/config"
)

// ExchangeReason is why an exchange was refused. Its text is safe to show
// the client; Code is a stable identifier for audit records and metrics.
type ExchangeReason struct {
	code string
	msg  string
}

func (r *ExchangeReason) Error() string { return r.msg }

// Code is the reason's stable identifier (e.g. "wrong_audience").
func (r *ExchangeReason) Code() string { return r.code }

// Exchange refusals. Test with errors.Is; every error Exchange returns
// wraps exactly one of them.
var (
	ErrExchangeMalformed    = &ExchangeReason{"malformed", "the token is not a well-formed signed JWT"}
	ErrExchangeUnknownAgent = &ExchangeReason{"unknown_agent", "the agent named in the request is not configured in this weir"}
	ErrExchangeNoRule       = &ExchangeReason{"no_federation_rule", "this agent accepts no federated tokens (it has no federation rules)"}
	ErrExchangeIssuer       = &ExchangeReason{"wrong_issuer", "the token's issuer is not one this agent trusts"}
	ErrExchangeAudience     = &ExchangeReason{"wrong_audience", "the token's audience is not one this agent's federation rules accept"}
	ErrExchangeSubject      = &ExchangeReason{"subject_not_allowed", "the token's subject is not allowed for this agent"}
	ErrExchangeCondition    = &ExchangeReason{"condition_false", "the token's claims do not meet the federation rule's condition"}
	ErrExchangeExpired      = &ExchangeReason{"expired", "the token has expired (or expires too soon to issue a weir token)"}
	ErrExchangeNotYetValid  = &ExchangeReason{"not_yet_valid", "the token is not valid yet (check the clocks)"}
	ErrExchangeSignature    = &ExchangeReason{"bad_signature", "the token's signature is not valid (only asymmetric signatures by the issuer's published keys are accepted)"}
	ErrExchangeClaims       = &ExchangeReason{"claims_unusable", "the token's claims are too large or contain control characters"}
	ErrExchangeUnavailable  = &ExchangeReason{"issuer_unavailable", "the token's issuer cannot be reached to verify the token; try again later"}
	ErrExchangeInternal     = &ExchangeReason{"internal", "weir could not issue a token right now"}
)

// ExchangeError is a refused exchange. Error() is the public reason; the
// other fields are for the audit record and the log. None of them ever
// holds the presented token.
type ExchangeError struct {
	Reason *ExchangeReason
	// Issuer is the token's issuer once it is known to be one the agent
	// trusts (before that, ClaimedIssuer holds what the token said, capped).
	Issuer        string
	ClaimedIssuer string
	// Subject is set only once the signature was verified.
	Subject string
	// Rule is the index of the federation rule that came closest to
	// matching, -1 when none was reached.
	Rule int
	// Detail says what exactly failed, for operators (not shown to clients).
	Detail string
}

func (e *ExchangeError) Error() string { return e.Reason.msg }
func (e *ExchangeError) Unwrap() error { return e.Reason }

// maxOIDCTokenLen bounds the OIDC tokens looked at at all.
const maxOIDCTokenLen = 16 << 10

// clockSkew is how far an issuer's clock may be ahead of weir's (iat, nbf).
const clockSkew = time.Minute

// discoveryRetry is how long a failed discovery is remembered before the
// issuer is asked again (a flood of exchanges must not become a flood of
// requests to the issuer).
const discoveryRetry = 5 * time.Second

// Context value limits: a weir token must stay well under maxTokenLen.
const (
	maxContextValue = 256
	maxContextTotal = 4096
)

// asymmetricAlgs are the only signature algorithms accepted on federated
// tokens: "none" and HMAC (whose "key" would be the issuer's public key,
// the classic confusion attack) are refused before any key is touched.
var asymmetricAlgs = []string{
	oidc.RS256, oidc.RS384, oidc.RS512,
	oidc.ES256, oidc.ES384, oidc.ES512,
	oidc.PS256, oidc.PS384, oidc.PS512,
	oidc.EdDSA,
}

// FederatorOptions tune a Federator; the zero value is fine.
type FederatorOptions struct {
	// HTTPClient fetches discovery documents and signing keys (default: a
	// client with a 10s timeout).
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Now is the clock (tests).
	Now func() time.Time
}

// Federator exchanges verified OIDC tokens for weir tokens according to
// the agents' federation rules. It is safe for concurrent use.
type Federator struct {
	auth       *Authority
	agents     map[string]*fedAgent
	defaultTTL time.Duration
	client     *http.Client
	log        *slog.Logger
	now        func() time.Time

	mu      sync.Mutex
	issuers map[string]*issuerState
}

type fedAgent struct {
	name    string
	targets []string
	maxTTL  time.Duration
	rules   []*fedRule
}

type fedRule struct {
	index    int
	issuer   string
	audience string
	subject  *subjectPattern
	when     cel.Program // nil: no condition
	ttl      time.Duration
	provider string
}

// issuerState is one issuer's go-oidc verifier, created on first use. The
// verifier's remote key set caches the issuer's JWKS and refetches it when
// a token names a key id it does not hold (key rotation at the issuer).
type issuerState struct {
	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	err      error
	failedAt time.Time
}

// NewFederator compiles the agents' federation rules. A bad `when`
// condition is reported with the config file and line. No issuer is
// contacted until its first token arrives.
func NewFederator(cfg *config.Config, auth *Authority, opts FederatorOptions) (*Federator, error) {
	if auth == nil {
		return nil, errors.New("federation needs the token authority")
	}
	f := &Federator{
		auth:       auth,
		agents:     map[string]*fedAgent{},
		defaultTTL: cfg.Tokens.DefaultTTL,
		client:     opts.HTTPClient,
		log:        opts.Logger,
		now:        opts.Now,
		issuers:    map[string]*issuerState{},
	}
	if f.defaultTTL <= 0 {
		f.defaultTTL = config.DefaultTokenTTL
	}
	if f.client == nil {
		f.client = &http.Client{Timeout: 10 * time.Second}
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if f.now == nil {
		f.now = time.Now
	}
	env, err := claimsEnv()
	if err != nil {
		return nil, fmt.Errorf("federation condition environment: %w", err)
	}
	var errs []error
	for i, a := range cfg.Agents {
		fa := &fedAgent{name: a.Name, targets: a.Targets, maxTTL: a.MaxTTL}
		for j, r := range a.Federation {
			key := fmt.Sprintf("agents[%d].federation[%d]", i, j)
			loc := func(field, msg string) error {
				return &config.Error{File: cfg.Path, Line: r.Line, Key: key + "." + field, Msg: msg}
			}
			sp, err := compileSubject(r.Subject)
			if err != nil {
				errs = append(errs, loc("subject", err.Error()))
				continue
			}
			provider := r.Provider
			if provider == "" {
				provider = config.DetectProvider(r.Issuer)
			}
			fr := &fedRule{index: j, issuer: r.Issuer, audience: r.Audience, subject: sp, ttl: r.TTL, provider: provider}
			if strings.TrimSpace(r.When) != "" {
				prg, err := compileCondition(env, r.When)
				if err != nil {
					errs = append(errs, loc("when", err.Error()))
					continue
				}
				fr.when = prg
			}
			fa.rules = append(fa.rules, fr)
		}
		f.agents[a.Name] = fa
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return f, nil
}

func claimsEnv() (*cel.Env, error) {
	return cel.NewEnv(
		ext.Strings(),
		cel.Variable("claims", cel.MapType(cel.StringType, cel.DynType)),
	)
}

// conditionCostLimit bounds one condition's evaluation (claims come from
// the token, so their size is bounded too).
const conditionCostLimit = 100000

func compileCondition(env *cel.Env, expr string) (cel.Program, error) {
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, errors.New(strings.ReplaceAll(iss.Err().Error(), "\n", "\n    "))
	}
	if ast.OutputType() != cel.BoolType {
		return nil, fmt.Errorf("condition must be true/false, but it is %s (compare claims explicitly, e.g. claims.email_verified == true)", ast.OutputType())
	}
	return env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.CostLimit(conditionCostLimit))
}

// HasRules reports whether any agent accepts federated tokens.
func (f *Federator) HasRules() bool {
	for _, a := range f.agents {
		if len(a.rules) > 0 {
			return true
		}
	}
	return false
}

// Exchange verifies rawOIDC for agentName and issues a weir token carrying
// the attested context mapped from the verified claims. clientAddr is only
// used in log lines. A refusal is an *ExchangeError wrapping one of the
// ErrExchange… reasons; it never contains the token.
func (f *Federator) Exchange(ctx context.Context, rawOIDC, agentName, clientAddr string) (string, Claims, error) {
	tok, claims, err := f.exchange(ctx, rawOIDC, agentName)
	if err != nil {
		var xe *ExchangeError
		if errors.As(err, &xe) {
			f.log.Info("token exchange refused", "agent", capString(agentName, 64), "client_addr", clientAddr, "reason", xe.Reason.code, "issuer", xe.Issuer, "subject", xe.Subject, "detail", xe.Detail)
		}
		return "", Claims{}, err
	}
	f.log.Info("token exchanged", "agent", agentName, "client_addr", clientAddr, "token_id", claims.ID, "issuer", claims.Context["issuer"], "subject", claims.Context["subject"])
	return tok, claims, nil
}

type stage int

const (
	stageAudience stage = iota
	stageSubject
	stageCondition
)

func (f *Federator) exchange(ctx context.Context, raw, agentName string) (string, Claims, error) {
	fail := func(r *ExchangeReason, detail string) (string, Claims, error) {
		return "", Claims{}, &ExchangeError{Reason: r, Rule: -1, Detail: detail}
	}
	agent, ok := f.agents[agentName]
	if !ok {
		return fail(ErrExchangeUnknownAgent, "")
	}
	if len(agent.rules) == 0 {
		return fail(ErrExchangeNoRule, "")
	}
	if len(raw) == 0 || len(raw) > maxOIDCTokenLen {
		return fail(ErrExchangeMalformed, fmt.Sprintf("token length %d", len(raw)))
	}

	// Look at the header and the (unverified) issuer only to choose which
	// configured issuer verifies the token; nothing else unverified is used.
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return fail(ErrExchangeMalformed, "not a compact JWS")
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	hb, err := b64.DecodeString(parts[0])
	if err != nil || json.Unmarshal(hb, &hdr) != nil {
		return fail(ErrExchangeMalformed, "header does not decode")
	}
	if !slices.Contains(asymmetricAlgs, hdr.Alg) {
		return fail(ErrExchangeSignature, fmt.Sprintf("algorithm %q is not accepted", capString(hdr.Alg, 16)))
	}
	var peek struct {
		Iss string `json:"iss"`
	}
	pb, err := b64.DecodeString(parts[1])
	if err != nil || json.Unmarshal(pb, &peek) != nil {
		return fail(ErrExchangeMalformed, "payload does not decode")
	}
	var candidates []*fedRule
	for _, r := range agent.rules {
		if r.issuer == peek.Iss {
			candidates = append(candidates, r)
		}
	}
	if len(candidates) == 0 {
		return "", Claims{}, &ExchangeError{Reason: ErrExchangeIssuer, ClaimedIssuer: capString(peek.Iss, 256), Rule: -1}
	}
	issuer := peek.Iss
	xerr := func(r *ExchangeReason, subject string, rule int, detail string) (string, Claims, error) {
		return "", Claims{}, &ExchangeError{Reason: r, Issuer: issuer, ClaimedIssuer: issuer, Subject: subject, Rule: rule, Detail: detail}
	}

	verifier, err := f.verifier(ctx, issuer)
	if err != nil {
		return xerr(ErrExchangeUnavailable, "", -1, err.Error())
	}
	sr := &sigResult{}
	idt, err := verifier.Verify(context.WithValue(ctx, sigResultKey{}, sr), raw)
	if err != nil {
		switch {
		case sr.fetchErr != nil:
			return xerr(ErrExchangeUnavailable, "", -1, sr.fetchErr.Error())
		case sr.called && !sr.ok:
			return xerr(ErrExchangeSignature, "", -1, err.Error())
		default:
			// go-jose refused the form before any key was used, or the
			// verified payload is not a JSON object of ID token claims.
			return xerr(ErrExchangeMalformed, "", -1, err.Error())
		}
	}

	// The signature is the issuer's: from here on the claims are attested.
	var all map[string]any
	if err := idt.Claims(&all); err != nil {
		return xerr(ErrExchangeMalformed, "", -1, "claims do not decode")
	}
	subject := idt.Subject
	if subject == "" || len(subject) > maxSubjectLen {
		return xerr(ErrExchangeMalformed, "", -1, "missing or oversized sub claim")
	}
	now := f.now()
	exp, okExp := numericDate(all["exp"])
	if !okExp {
		return xerr(ErrExchangeMalformed, subject, -1, "missing or invalid exp claim")
	}
	if !now.Before(exp) {
		return xerr(ErrExchangeExpired, subject, -1, fmt.Sprintf("expired at %s", exp.UTC().Format(time.RFC3339)))
	}
	if v, present := all["nbf"]; present {
		nbf, ok := numericDate(v)
		if !ok {
			return xerr(ErrExchangeMalformed, subject, -1, "invalid nbf claim")
		}
		if now.Add(clockSkew).Before(nbf) {
			return xerr(ErrExchangeNotYetValid, subject, -1, fmt.Sprintf("not before %s", nbf.UTC().Format(time.RFC3339)))
		}
	}
	if v, present := all["iat"]; present {
		iat, ok := numericDate(v)
		if !ok {
			return xerr(ErrExchangeMalformed, subject, -1, "invalid iat claim")
		}
		if now.Add(clockSkew).Before(iat) {
			return xerr(ErrExchangeNotYetValid, subject, -1, fmt.Sprintf("issued in the future (%s)", iat.UTC().Format(time.RFC3339)))
		}
	}

	// The first rule that admits the token wins; if none does, the refusal
	// names how far the closest one got (audience, then subject, then
	// condition), first rule on ties.
	var chosen *fedRule
	best, bestRule, bestDetail := stage(-1), -1, ""
	for _, r := range candidates {
		st, detail := r.admits(idt.Audience, subject, all)
		if st < 0 {
			chosen = r
			break
		}
		if st > best {
			best, bestRule, bestDetail = st, r.index, detail
		}
	}
	if chosen == nil {
		switch best {
		case stageAudience:
			return xerr(ErrExchangeAudience, subject, bestRule, bestDetail)
		case stageSubject:
			return xerr(ErrExchangeSubject, subject, bestRule, bestDetail)
		default:
			return xerr(ErrExchangeCondition, subject, bestRule, bestDetail)
		}
	}

	ttl := chosen.ttl
	if ttl <= 0 {
		ttl = f.defaultTTL
	}
	ttl = min(ttl, agent.maxTTL)
	if remaining := exp.Sub(now).Truncate(time.Second); remaining < ttl {
		ttl = remaining
	}
	if ttl < time.Second {
		return xerr(ErrExchangeExpired, subject, chosen.index, "expires in less than a second")
	}
	tctx, err := MapClaims(chosen.provider, issuer, subject, chosen.index, all)
	if err != nil {
		return xerr(ErrExchangeClaims, subject, chosen.index, err.Error())
	}
	tok, c, err := f.auth.Issue(ctx, IssueRequest{
		Agent:    agent.name,
		Targets:  slices.Clone(agent.targets),
		TTL:      ttl,
		Context:  tctx,
		IssuedBy: "oidc:" + issuer,
	})
	if err != nil {
		return xerr(ErrExchangeInternal, subject, chosen.index, err.Error())
	}
	return tok, c, nil
}

// admits returns -1 when the rule admits the token, else the stage that
// failed and a detail for operators.
func (r *fedRule) admits(aud []string, subject string, claims map[string]any) (stage, string) {
	if !slices.Contains(aud, r.audience) {
		return stageAudience, fmt.Sprintf("rule %d wants audience %q, token has %q", r.index, r.audience, capList(aud))
	}
	if !r.subject.match(subject) {
		return stageSubject, fmt.Sprintf("rule %d: subject does not match %q", r.index, r.subject.src)
	}
	if r.when != nil {
		out, _, err := r.when.Eval(map[string]any{"claims": claims})
		if err != nil {
			return stageCondition, fmt.Sprintf("rule %d: condition could not be evaluated: %v", r.index, err)
		}
		if out != types.True {
			return stageCondition, fmt.Sprintf("rule %d: condition is false", r.index)
		}
	}
	return -1, ""
}

// verifier returns the issuer's verifier, running OIDC discovery on first use.
func (f *Federator) verifier(ctx context.Context, issuer string) (*oidc.IDTokenVerifier, error) {
	f.mu.Lock()
	st, ok := f.issuers[issuer]
	if !ok {
		st = &issuerState{}
		f.issuers[issuer] = st
	}
	f.mu.Unlock()

	st.mu.Lock()
	defer st.mu.Unlock()
	if st.verifier != nil {
		return st.verifier, nil
	}
	if st.err != nil && f.now().Sub(st.failedAt) < discoveryRetry {
		return nil, st.err
	}
	cctx := oidc.ClientContext(ctx, f.client)
	p, err := oidc.NewProvider(cctx, issuer)
	if err != nil {
		if ctx.Err() == nil {
			st.err, st.failedAt = fmt.Errorf("OIDC discovery for %s: %w", issuer, err), f.now()
			f.log.Warn("OIDC discovery failed", "issuer", issuer, "err", err)
		}
		return nil, fmt.Errorf("OIDC discovery for %s: %w", issuer, err)
	}
	var meta struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := p.Claims(&meta); err != nil || meta.JWKSURI == "" {
		st.err, st.failedAt = fmt.Errorf("OIDC discovery for %s: no jwks_uri", issuer), f.now()
		return nil, st.err
	}
	// A background context: the key set outlives this request and go-oidc
	// only takes configuration (the HTTP client) from it.
	keys := &observedKeySet{ks: oidc.NewRemoteKeySet(oidc.ClientContext(context.Background(), f.client), meta.JWKSURI)}
	st.verifier = oidc.NewVerifier(issuer, keys, &oidc.Config{
		SkipClientIDCheck:    true, // audiences are checked per rule
		SkipExpiryCheck:      true, // times are checked with weir's clock and skew
		SupportedSigningAlgs: asymmetricAlgs,
	})
	st.err = nil
	return st.verifier, nil
}

// observedKeySet wraps go-oidc's remote key set to tell a bad signature
// from an issuer whose keys cannot be fetched.
type observedKeySet struct {
	ks oidc.KeySet
}

type sigResultKey struct{}

type sigResult struct {
	called, ok bool
	fetchErr   error
}

func (o *observedKeySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	payload, err := o.ks.VerifySignature(ctx, jwt)
	if sr, ok := ctx.Value(sigResultKey{}).(*sigResult); ok {
		sr.called, sr.ok = true, err == nil
		// go-oidc wraps a failed JWKS fetch as "fetching keys …".
		if err != nil && strings.Contains(err.Error(), "fetching keys") {
			sr.fetchErr = err
		}
	}
	return payload, err
}

func numericDate(v any) (time.Time, bool) {
	f, ok := v.(float64)
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1<<40 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

func capString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func capList(l []string) string {
	s := strings.Join(l, ",")
	return capString(s, 256)
}

// Claim-to-context mappings: context key ← claim name. See docs/identity.md.
var (
	githubMapping = [][2]string{
		{"repository", "repository"},
		{"repository_id", "repository_id"},
		{"repository_owner", "repository_owner"},
		{"repository_owner_id", "repository_owner_id"},
		{"ref", "ref"},
		{"ref_type", "ref_type"},
		{"sha", "sha"},
		{"workflow", "workflow"},
		{"workflow_ref", "workflow_ref"},
		{"job_workflow_ref", "job_workflow_ref"},
		{"run_id", "run_id"},
		{"run_attempt", "run_attempt"},
		{"actor", "actor"},
		{"actor_id", "actor_id"},
		{"event_name", "event_name"},
		{"environment", "environment"},
	}
	azureDevOpsMapping = [][2]string{
		{"organization_id", "org_id"},
		{"project_id", "prj_id"},
		{"pipeline_id", "def_id"},
		{"repository_id", "rpo_id"},
		{"repository_uri", "rpo_uri"},
		{"sha", "rpo_ver"},
		{"ref", "rpo_ref"},
		{"run_id", "run_id"},
	}
	entraMapping = [][2]string{
		{"tenant_id", "tid"},
		{"object_id", "oid"},
		{"app_id", "appid"},
		{"managed_identity", "xms_mirid"},
	}
)

// MapClaims turns a verified token's claims into a weir token's attested
// context. Every provider's context has provider, issuer, subject and
// federation_rule; the provider's mapping adds the claims it names (a claim
// the token lacks is left out, never defaulted). Non-scalar claims are not
// carried. A value too long or with control characters refuses the token
// rather than being altered.
func MapClaims(provider, issuer, subject string, rule int, claims map[string]any) (map[string]string, error) {
	out := map[string]string{}
	var table [][2]string
	switch provider {
	case config.ProviderGitHubActions:
		table = githubMapping
	case config.ProviderAzureDevOps:
		table = azureDevOpsMapping
		// sc://ORG/PROJECT/SERVICE_CONNECTION (service connection token) or
		// p://ORG/PROJECT/PIPELINE (pipeline token).
		for prefix, last := range map[string]string{"sc://": "service_connection", "p://": "pipeline"} {
			if rest, ok := strings.CutPrefix(subject, prefix); ok {
				if f := strings.Split(rest, "/"); len(f) == 3 && f[0] != "" && f[1] != "" && f[2] != "" {
					out["organization"], out["project"], out[last] = f[0], f[1], f[2]
				}
			}
		}
	case config.ProviderEntra:
		table = entraMapping
		if _, ok := claims["appid"]; !ok {
			if azp, ok := scalar(claims["azp"]); ok {
				out["app_id"] = azp
			}
		}
	}
	for _, kv := range table {
		if v, ok := scalar(claims[kv[1]]); ok {
			out[kv[0]] = v
		}
	}
	out["provider"] = provider
	out["issuer"] = issuer
	out["subject"] = subject
	out["federation_rule"] = strconv.Itoa(rule)
	total := 0
	for k, v := range out {
		if len(v) > maxContextValue && k != "subject" && k != "issuer" {
			return nil, fmt.Errorf("claim for %s is longer than %d bytes", k, maxContextValue)
		}
		if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return nil, fmt.Errorf("claim for %s contains a control character", k)
		}
		total += len(k) + len(v)
	}
	if total > maxContextTotal {
		return nil, fmt.Errorf("mapped claims total %d bytes (limit %d)", total, maxContextTotal)
	}
	return out, nil
}

func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, x != ""
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return strconv.FormatInt(int64(x), 10), true
		}
		return strconv.FormatFloat(x, 'g', -1, 64), true
	}
	return "", false
}
