package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/weir-gw/weir/internal/audit"
	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/identity"
	"github.com/weir-gw/weir/internal/store"
)

type recorder struct {
	mu     sync.Mutex
	events []audit.Event
	fail   error
}

func (r *recorder) append(_ context.Context, ev audit.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.events = append(r.events, ev)
	return nil
}

func (r *recorder) last(t *testing.T) audit.Event {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.events) == 0 {
		t.Fatal("no audit event")
	}
	return r.events[len(r.events)-1]
}

type apiEnv struct {
	m    *mockoidc.MockOIDC
	st   *store.SQLite
	auth *identity.Authority
	rec  *recorder
	srv  *httptest.Server
}

func newAPI(t *testing.T) *apiEnv {
	t.Helper()
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	text := `data_dir: ` + filepath.Join(t.TempDir(), "data") + `
listen:
  postgres: 127.0.0.1:0
  http: 127.0.0.1:0
targets:
  - name: orders
    kind: postgres
    address: 127.0.0.1:5432
    database: orders
    username: weir_agent
    password_env: ORDERS_PG_PASSWORD
agents:
  - name: ci-bot
    targets: [orders]
    max_ttl: 1h
    federation:
      - issuer: ` + m.Issuer() + `
        audience: weir
        subject: "repo:acme/shop:ref:refs/heads/*"
        when: 'claims.repository_owner == "acme"'
        provider: github-actions
        ttl: 15m
`
	cfg, err := config.Parse("weir.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	auth, err := identity.NewAuthority(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	fed, err := identity.NewFederator(cfg, auth, identity.FederatorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	srv := httptest.NewServer(New(Options{Federator: fed, Authority: auth, Audit: rec.append}))
	t.Cleanup(srv.Close)
	return &apiEnv{m: m, st: st, auth: auth, rec: rec, srv: srv}
}

func (e *apiEnv) oidcToken(t *testing.T, mod func(jwt.MapClaims)) string {
	t.Helper()
	now := time.Now()
	c := jwt.MapClaims{
		"iss": e.m.Issuer(), "aud": "weir", "sub": "repo:acme/shop:ref:refs/heads/main",
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"repository": "acme/shop", "repository_owner": "acme", "ref": "refs/heads/main", "run_id": "77", "actor": "octocat",
	}
	if mod != nil {
		mod(c)
	}
	tok, err := e.m.Keypair.SignJWT(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (e *apiEnv) do(t *testing.T, method, path, contentType, body string, hdr map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func exchangeBody(token, agent string) string {
	b, _ := json.Marshal(map[string]string{"token": token, "agent": agent})
	return string(b)
}

func checkHeaders(t *testing.T, r response) {
	t.Helper()
	if r.header.Get("X-Content-Type-Options") != "nosniff" || r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("security headers missing: %v", r.header)
	}
}

func TestExchangeAccepted(t *testing.T) {
	ctx := context.Background()
	e := newAPI(t)
	oidcTok := e.oidcToken(t, nil)
	r := e.do(t, "POST", "/v1/token/exchange", "application/json; charset=utf-8", exchangeBody(oidcTok, "ci-bot"), nil)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	checkHeaders(t, r)
	if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Errorf("content type %q", r.header.Get("Content-Type"))
	}
	tok, _ := r.body["token"].(string)
	c, err := e.auth.Verify(ctx, tok)
	if err != nil {
		t.Fatalf("the returned token does not verify: %v", err)
	}
	if r.body["token_id"] != c.ID || r.body["expires_at"] != c.Expiry().UTC().Format(time.RFC3339) {
		t.Errorf("response %v for claims %+v", r.body, c)
	}
	if c.Context["repository"] != "acme/shop" || c.Context["run_id"] != "77" || c.Context["actor"] != "octocat" || c.Context["issuer"] != e.m.Issuer() {
		t.Errorf("context %v", c.Context)
	}
	ev := e.rec.last(t)
	data, _ := json.Marshal(ev.Data)
	if ev.Type != TypeTokenExchange || ev.Agent != "ci-bot" {
		t.Errorf("event %+v", ev)
	}
	for _, want := range []string{`"result":"accepted"`, `"token_id":"` + c.ID + `"`, `"client_addr":"127.0.0.1:`, `"subject":"repo:acme/shop:ref:refs/heads/main"`, `"repository":"acme/shop"`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("audit data %s lacks %s", data, want)
		}
	}
	for _, secret := range []string{oidcTok, tok, strings.Split(oidcTok, ".")[2], strings.Split(tok, ".")[2]} {
		if strings.Contains(string(data), secret) {
			t.Fatal("a token reached the audit record")
		}
	}
}

func TestExchangeRefusals(t *testing.T) {
	e := newAPI(t)
	form := "token=x&agent=ci-bot"
	tests := []struct {
		name        string
		method      string
		contentType string
		body        string
		status      int
		errContains string
		auditCode   string // "" when no audit event is expected
	}{
		{"wrong audience", "POST", "application/json", exchangeBody(e.oidcToken(t, func(c jwt.MapClaims) { c["aud"] = "x" }), "ci-bot"), 401, identity.ErrExchangeAudience.Error(), "wrong_audience"},
		{"wrong issuer", "POST", "application/json", exchangeBody(e.oidcToken(t, func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }), "ci-bot"), 401, identity.ErrExchangeIssuer.Error(), "wrong_issuer"},
		{"expired", "POST", "application/json", exchangeBody(e.oidcToken(t, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() }), "ci-bot"), 401, identity.ErrExchangeExpired.Error(), "expired"},
		{"subject", "POST", "application/json", exchangeBody(e.oidcToken(t, func(c jwt.MapClaims) { c["sub"] = "repo:evil/shop:ref:refs/heads/main" }), "ci-bot"), 403, identity.ErrExchangeSubject.Error(), "subject_not_allowed"},
		{"condition", "POST", "application/json", exchangeBody(e.oidcToken(t, func(c jwt.MapClaims) { c["repository_owner"] = "evil" }), "ci-bot"), 403, identity.ErrExchangeCondition.Error(), "condition_false"},
		{"unknown agent", "POST", "application/json", exchangeBody(e.oidcToken(t, nil), "nobody"), 403, identity.ErrExchangeUnknownAgent.Error(), "unknown_agent"},
		{"alg none", "POST", "application/json", exchangeBody("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "ci-bot"), 401, identity.ErrExchangeSignature.Error(), "bad_signature"},
		{"malformed token", "POST", "application/json", exchangeBody("not-a-jwt", "ci-bot"), 400, identity.ErrExchangeMalformed.Error(), "malformed"},
		{"form body (curl -d without a content type)", "POST", "application/x-www-form-urlencoded", form, 415, "Content-Type: application/json", "bad_request"},
		{"no content type", "POST", "", exchangeBody("x", "ci-bot"), 415, "must be JSON", "bad_request"},
		{"text/plain", "POST", "text/plain", exchangeBody("x", "ci-bot"), 415, "must be JSON", "bad_request"},
		{"unknown field", "POST", "application/json", `{"token":"x","agent":"ci-bot","targets":["all"]}`, 400, `unknown field "targets"`, "bad_request"},
		{"missing agent", "POST", "application/json", `{"token":"x"}`, 400, "both required", "bad_request"},
		{"not an object", "POST", "application/json", `["x"]`, 400, "not a JSON object", "bad_request"},
		{"wrong type", "POST", "application/json", `{"token":1,"agent":"ci-bot"}`, 400, `field "token" must be a string`, "bad_request"},
		{"trailing data", "POST", "application/json", exchangeBody("x", "ci-bot") + `{}`, 400, "after the JSON object", "bad_request"},
		{"syntax error", "POST", "application/json", `{"token":`, 400, "not a JSON object", "bad_request"},
		{"too large", "POST", "application/json", `{"token":"` + strings.Repeat("a", maxBody) + `","agent":"ci-bot"}`, 413, "larger than", "bad_request"},
		{"GET", "GET", "", "", 405, "", ""},
		{"unknown path", "POST", "application/json", "{}", 404, "no such endpoint", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := "/v1/token/exchange"
			if tc.name == "unknown path" {
				path = "/v1/nope"
			}
			e.rec.mu.Lock()
			before := len(e.rec.events)
			e.rec.mu.Unlock()
			r := e.do(t, tc.method, path, tc.contentType, tc.body, nil)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.raw)
			}
			checkHeaders(t, r)
			if tc.errContains != "" {
				msg, _ := r.body["error"].(string)
				if !strings.Contains(msg, tc.errContains) {
					t.Errorf("error %q lacks %q", msg, tc.errContains)
				}
			}
			e.rec.mu.Lock()
			after := len(e.rec.events)
			e.rec.mu.Unlock()
			if tc.auditCode == "" {
				if after != before {
					t.Errorf("unexpected audit event")
				}
				return
			}
			if after != before+1 {
				t.Fatalf("%d audit events for one refusal", after-before)
			}
			ev := e.rec.last(t)
			d, _ := ev.Data.(map[string]any)
			if ev.Type != TypeTokenExchange || d["result"] != "refused" || d["reason_code"] != tc.auditCode || d["reason"] == "" || !strings.HasPrefix(d["client_addr"].(string), "127.0.0.1:") {
				t.Errorf("audit event %+v", ev)
			}
			if tc.auditCode == "unknown_agent" && ev.Agent != "" {
				t.Errorf("an unknown agent name became the event's agent: %q", ev.Agent)
			}
			data, _ := json.Marshal(ev.Data)
			if len(tc.body) > 40 && strings.Contains(string(data), tc.body[10:40]) && tc.auditCode != "bad_request" {
				t.Errorf("the presented token reached the audit record: %s", data)
			}
		})
	}
}

// An exchange that cannot be audited hands out no token and revokes it.
func TestExchangeAuditFailure(t *testing.T) {
	ctx := context.Background()
	e := newAPI(t)
	e.rec.fail = errors.New("disk full")
	r := e.do(t, "POST", "/v1/token/exchange", "application/json", exchangeBody(e.oidcToken(t, nil), "ci-bot"), nil)
	if r.status != 503 || r.body["token"] != nil {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	toks, err := e.st.ListTokens(ctx, true, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != 1 || toks[0].RevokedAt.IsZero() {
		t.Fatalf("tokens %+v", toks)
	}
}

func TestRequireRole(t *testing.T) {
	ctx := context.Background()
	e := newAPI(t)
	approver, _, err := e.auth.IssueAdmin(ctx, "alice", identity.RoleApprover, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	admin, _, _ := e.auth.IssueAdmin(ctx, "carol", identity.RoleAdmin, time.Hour)
	auditor, _, _ := e.auth.IssueAdmin(ctx, "dave", identity.RoleAuditor, time.Hour)
	revoked, revokedClaims, _ := e.auth.IssueAdmin(ctx, "erin", identity.RoleAdmin, time.Hour)
	if err := e.auth.Revoke(ctx, revokedClaims.ID, "test"); err != nil {
		t.Fatal(err)
	}
	e.auth.SetClock(func() time.Time { return time.Now().Add(-2 * time.Hour) })
	expired, _, _ := e.auth.IssueAdmin(ctx, "frank", identity.RoleAdmin, time.Hour)
	e.auth.SetClock(time.Now)
	agent, _, err := e.auth.Issue(ctx, identity.IssueRequest{Agent: "ci-bot", Targets: []string{"orders"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}

	// An admin-only endpoint built the way later endpoints will be.
	s := &server{auth: e.auth, log: slog.New(slog.DiscardHandler), audit: e.rec.append}
	adminOnly := securityHeaders(s.requireRole(identity.RoleAdmin)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := AdminFrom(r.Context())
		if !ok {
			t.Error("no admin in the request context")
		}
		writeJSON(w, 200, map[string]string{"hello": c.Name})
	})))

	tests := []struct {
		name    string
		handler http.Handler // nil: the API's GET /v1/whoami
		auth    string
		status  int
		who     string
	}{
		{"whoami approver", nil, "Bearer " + approver, 200, "alice"},
		{"whoami admin", nil, "Bearer " + admin, 200, "carol"},
		{"whoami auditor, lower-case scheme", nil, "bearer " + auditor, 200, "dave"},
		{"no header", nil, "", 401, ""},
		{"basic auth", nil, "Basic YWxpY2U6eA==", 401, ""},
		{"empty bearer", nil, "Bearer ", 401, ""},
		{"garbage", nil, "Bearer a.b.c", 401, ""},
		{"agent token", nil, "Bearer " + agent, 401, ""},
		{"revoked admin", nil, "Bearer " + revoked, 401, ""},
		{"expired admin", nil, "Bearer " + expired, 401, ""},
		{"admin-only: admin", adminOnly, "Bearer " + admin, 200, "carol"},
		{"admin-only: approver", adminOnly, "Bearer " + approver, 403, ""},
		{"admin-only: auditor", adminOnly, "Bearer " + auditor, 403, ""},
		{"admin-only: agent token", adminOnly, "Bearer " + agent, 401, ""},
		{"admin-only: revoked admin", adminOnly, "Bearer " + revoked, 401, ""},
		{"admin-only: expired admin", adminOnly, "Bearer " + expired, 401, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.auth != "" {
				hdr["Authorization"] = tc.auth
			}
			var r response
			if tc.handler == nil {
				r = e.do(t, "GET", "/v1/whoami", "", "", hdr)
			} else {
				req := httptest.NewRequest("GET", "/v1/admin-only", nil)
				for k, v := range hdr {
					req.Header.Set(k, v)
				}
				w := httptest.NewRecorder()
				tc.handler.ServeHTTP(w, req)
				r = response{status: w.Code, header: w.Header(), raw: w.Body.String()}
				_ = json.Unmarshal(w.Body.Bytes(), &r.body)
			}
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.raw)
			}
			checkHeaders(t, r)
			if tc.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Error("401 without WWW-Authenticate")
			}
			// A refused admin token is audited, not only logged.
			if tc.handler == nil && tc.status == 401 && strings.HasPrefix(strings.ToLower(tc.auth), "bearer ") && len(strings.TrimSpace(tc.auth)) > 7 {
				if ev := e.rec.last(t); ev.Type != TypeAdminRefused {
					t.Errorf("refusal not audited: last event %s", ev.Type)
				}
			}
			if tc.status != 200 {
				if r.body["error"] == "" || r.body["error"] == nil {
					t.Errorf("no error message: %s", r.raw)
				}
				return
			}
			if tc.handler == nil {
				if r.body["name"] != tc.who || r.body["role"] == "" || r.body["token_id"] == "" {
					t.Errorf("whoami %v", r.body)
				}
			} else if r.body["hello"] != tc.who {
				t.Errorf("body %v", r.body)
			}
		})
	}
}

// The exchange body decoder never panics and accepts only complete requests.
func FuzzParseExchangeRequest(f *testing.F) {
	for _, seed := range []string{
		`{"token":"a.b.c","agent":"ci-bot"}`, `{"token":"x"}`, `{}`, `[]`, `null`, `{"token":1}`,
		`{"token":"x","agent":"y"}{}`, `{"token":"\u0000","agent":"\ud800"}`, `{"token":"x","agent":"y","z":1}`, "",
		`{"token":"x","token":"y","agent":"z"}`, strings.Repeat("[", 10000),
	} {
		f.Add([]byte(seed))
	}
	h := New(Options{Federator: stubExchanger{}, Audit: func(context.Context, audit.Event) error { return nil }})
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := parseExchangeRequest(bytes.NewReader(data))
		if err == nil && (req.Token == "" || req.Agent == "") {
			t.Fatalf("accepted an incomplete request %+v", req)
		}
		if err != nil {
			var br *errBadRequest
			if !errors.As(err, &br) || br.status < 400 || br.status > 499 {
				t.Fatalf("error %v is not a client error", err)
			}
		}
		// Through the handler: always a JSON answer with the security headers.
		w := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/v1/token/exchange", bytes.NewReader(data))
		r.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(w, r)
		var body map[string]any
		if json.Unmarshal(w.Body.Bytes(), &body) != nil || w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("%d %q", w.Code, w.Body.String())
		}
		if w.Code != 401 && w.Code/100 != 4 {
			t.Fatalf("status %d", w.Code)
		}
	})
}

type stubExchanger struct{}

func (stubExchanger) Exchange(context.Context, string, string, string) (string, identity.Claims, error) {
	return "", identity.Claims{}, &identity.ExchangeError{Reason: identity.ErrExchangeSignature, Rule: -1}
}

// A subtree mount sees the path the client sent (its own canonicalizer
// refuses dot segments); an exact mount goes through the ServeMux; other
// paths still reach the API.
func TestMounts(t *testing.T) {
	var got []string
	rec := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got = append(got, name+" "+r.URL.Path)
			w.WriteHeader(http.StatusTeapot)
		})
	}
	h := New(Options{Audit: func(context.Context, audit.Event) error { return nil },
		Mounts: map[string]http.Handler{"/blob/": rec("blob"), "/mcp": rec("mcp")}})
	for _, tc := range []struct {
		path   string
		status int
		want   string
	}{
		{"/blob/lake/a/../b", http.StatusTeapot, "blob /blob/lake/a/../b"},
		{"/blob/lake//x", http.StatusTeapot, "blob /blob/lake//x"},
		{"/mcp", http.StatusTeapot, "mcp /mcp"},
		{"/v1/nothing", http.StatusNotFound, ""},
	} {
		got = nil
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", tc.path, nil))
		if w.Code != tc.status || (tc.want != "" && (len(got) != 1 || got[0] != tc.want)) {
			t.Errorf("%s: status %d, handled %v", tc.path, w.Code, got)
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no security headers", tc.path)
		}
	}
}
