// Package azure runs weir's Azure front end end to end: the real weir
// binary (`weir serve`, `weir env`, `weir token issue`, `weir approvals`),
// the real Debian `az` CLI and the Go Azure SDK as clients, through the
// HTTPS proxy, against a local HTTPS server standing in for ARM, Key Vault
// and Entra ID (they cannot run here).
//
// The stand-in is a fake, so it is kept honest: its ARM and Key Vault
// bodies are copied from the public REST API specifications' examples
// (testdata/README.md says which), its Entra token endpoint answers the
// documented OAuth2 client-credentials shape (openid-configuration +
// /oauth2/v2.0/token) that azidentity's ClientSecretCredential talks to,
// and it checks on every request that it got weir's upstream credential
// and never anything an agent holds.
package azure

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	entraSecret = "fake-entra-client-secret-never-leaks"
	functionKey = "fake-function-key-never-leaks"
	armToken    = "entra-access-token-for-arm"
	kvToken     = "entra-access-token-for-keyvault"
	tenantID    = "31c75423-32d6-4322-88b7-c478bdde4858"
	subID       = "291bba3f-e0a5-47bc-a099-3bdcb2a50a05"
	maxBody     = 256 << 10
)

var w struct {
	bin, dir, cfg, dataDir string
	httpAddr, proxyAddr    string
	fake                   *fake
	up                     *httptest.Server
	serve                  *exec.Cmd
	serveLog               *lockedWriter
}

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "azure e2e:", err)
		if w.serveLog != nil {
			fmt.Fprintln(os.Stderr, w.serveLog.String())
		}
		os.Exit(1)
	}
	os.Exit(code)
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func run(m *testing.M) (int, error) {
	if _, err := exec.LookPath("az"); err != nil {
		return 0, fmt.Errorf("the az CLI is required: %w", err)
	}
	dir, err := os.MkdirTemp("", "weir-azure-e2e")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	w.dir = dir
	// WEIR_E2E_BIN runs a weir built elsewhere (e.g. from a clean export
	// of a commit while the work tree is mid-edit).
	w.bin = os.Getenv("WEIR_E2E_BIN")
	if w.bin == "" {
		w.bin = filepath.Join(dir, "weir")
		build := exec.Command("go", "build", "-o", w.bin, "github.com/weir-gw/weir/cmd/weir")
		if out, err := build.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("building weir: %v\n%s", err, out)
		}
	}
	w.fake = &fake{}
	w.up = httptest.NewUnstartedServer(w.fake)
	w.up.StartTLS()
	defer w.up.Close()
	w.fake.base = w.up.URL
	caFile := filepath.Join(dir, "upstream-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: w.up.Certificate().Raw}), 0o644); err != nil {
		return 0, err
	}
	w.dataDir = filepath.Join(dir, "data")
	w.httpAddr, w.proxyAddr = freeAddr(), freeAddr()
	w.cfg = filepath.Join(dir, "weir.yaml")
	cfg := fmt.Sprintf(`data_dir: %s
listen:
  postgres: %s
  http: %s
  azure_proxy: %s
tls:
  allow_plaintext_loopback: true
targets:
  - name: arm
    kind: azure-arm
    endpoint: %s
    hosts: [management.azure.com]
  - name: vault
    kind: azure-keyvault
    endpoint: %s
    hosts: [myvault.vault.azure.net]
  - name: fn
    kind: azure-functions
    endpoint: %s
    hosts: [myapp.azurewebsites.net]
    function_key_env: WEIR_TEST_FUNCTION_KEY
agents:
  - name: ci-bot
    targets: [arm, vault, fn]
  - name: kv-only
    targets: [vault]
azure:
  tenant_id: %s
  max_body_bytes: %d
  upstream_ca_file: %s
  credential:
    tenant_id: %s
    client_id: 11111111-1111-1111-1111-111111111111
    client_secret_env: WEIR_TEST_ENTRA_SECRET
    authority_host: %s/
policy:
  rules:
    - name: no-role-assignments
      when: '"role_assignment" in command.risks'
      action: deny
      message: agents never change who may do what; ask the platform team
    - name: reveal-needs-approval
      when: '"reveal_secret" in command.risks'
      action: review
      mode: async
    - name: no-opaque-or-code
      when: '"opaque_template" in command.risks || "code_execution" in command.risks'
      action: deny
      message: deployments must carry their template inline and run no scripts
    - name: no-vault-backups
      when: 'command.protocol == "keyvault" && command.attrs.operation == "backup"'
      action: deny
    - name: review-secret-reads
      when: 'command.protocol == "arm" && "secret_read" in command.risks'
      action: review
      mode: async
    - name: arm-reads
      when: 'command.protocol == "arm" && command.kind == "read"'
      action: allow
    - name: rg-dev-writes
      when: 'command.protocol == "arm" && command.attrs.resource_group == "rg-dev" && command.kind == "write"'
      action: allow
    - name: orders-function
      when: 'command.protocol == "functions" && command.attrs.function == "orders"'
      action: allow
    - name: keyvault-reads
      when: 'command.protocol == "keyvault" && command.kind == "read"'
      action: allow
`, w.dataDir, freeAddr(), w.httpAddr, w.proxyAddr, w.up.URL, w.up.URL, w.up.URL, tenantID, maxBody, caFile, tenantID, w.up.URL)
	if err := os.WriteFile(w.cfg, []byte(cfg), 0o600); err != nil {
		return 0, err
	}
	w.serveLog = &lockedWriter{w: &bytes.Buffer{}}
	w.serve = exec.Command(w.bin, "serve", "--config", w.cfg, "--log-level", "debug")
	w.serve.Env = append(os.Environ(), "WEIR_TEST_ENTRA_SECRET="+entraSecret, "WEIR_TEST_FUNCTION_KEY="+functionKey)
	w.serve.Stdout, w.serve.Stderr = w.serveLog, w.serveLog
	if err := w.serve.Start(); err != nil {
		return 0, err
	}
	defer func() {
		w.serve.Process.Signal(syscall.SIGTERM)
		w.serve.Wait()
	}()
	deadline := time.Now().Add(60 * time.Second)
	for _, addr := range []string{w.proxyAddr, w.httpAddr} {
		for {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				return 0, fmt.Errorf("weir serve did not listen on %s", addr)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	code := m.Run()
	if code != 0 || os.Getenv("WEIR_E2E_LOG") != "" {
		fmt.Fprintf(os.Stderr, "weir serve log:\n%s\n", w.serveLog.String())
	}
	if v := w.fake.violations(); len(v) > 0 {
		fmt.Fprintf(os.Stderr, "the fake upstream saw requests it must never see:\n%s\n", strings.Join(v, "\n"))
		code = 1
	}
	if strings.Contains(w.serveLog.String(), entraSecret) || strings.Contains(w.serveLog.String(), armToken) || strings.Contains(w.serveLog.String(), functionKey) {
		fmt.Fprintln(os.Stderr, "weir's log contains an upstream secret")
		code = 1
	}
	return code, nil
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// weir runs the weir CLI against the test config.
func weir(t testing.TB, env []string, args ...string) (string, string) {
	t.Helper()
	cmd := exec.Command(w.bin, append(args, "--config", w.cfg)...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("weir %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), stderr.String()
}

func issueToken(t testing.TB, agent string) string {
	out, _ := weir(t, nil, "token", "issue", "--agent", agent, "--ttl", "30m")
	return strings.TrimSpace(out)
}

// bundle is the CA bundle weir env points clients at.
func bundle(t testing.TB) *x509.CertPool {
	out, _ := weir(t, nil, "ca", "export", "--bundle")
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(out)) {
		t.Fatalf("weir ca export --bundle printed no certificate:\n%s", out)
	}
	return pool
}

// recorded is one request the fake upstream received.
type recorded struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte
}

type fake struct {
	base string
	mu   sync.Mutex
	reqs []recorded
	bad  []string
}

func (f *fake) violations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.bad...)
}

// saw reports whether a request whose path contains s reached the fake.
func (f *fake) saw(s string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.reqs {
		if strings.Contains(r.Path+"?"+r.RawQuery, s) {
			return true
		}
	}
	return false
}

// count is how many requests whose path and query contain s reached the fake.
func (f *fake) count(s string) int {
	if s == "" {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.reqs {
		if strings.Contains(r.Path+"?"+r.RawQuery, s) {
			n++
		}
	}
	return n
}

func (f *fake) last(s string) (recorded, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.reqs) - 1; i >= 0; i-- {
		if strings.Contains(f.reqs[i].Path, s) {
			return f.reqs[i], true
		}
	}
	return recorded{}, false
}

func readTestdata(name string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		panic(err)
	}
	return b
}

func writeJSON(rw http.ResponseWriter, status int, body []byte) {
	rw.Header().Set("Content-Type", "application/json; charset=utf-8")
	rw.WriteHeader(status)
	rw.Write(body)
}

func (f *fake) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.reqs = append(f.reqs, recorded{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
	for name, vals := range r.Header {
		for _, v := range vals {
			// weir tokens and weir's managed-identity tokens are JWTs
			// whose payload names weir; neither may ever reach Azure.
			if strings.Contains(v, "eyJ") && !strings.HasPrefix(v, "Bearer entra-") {
				f.bad = append(f.bad, fmt.Sprintf("%s %s carried a JWT in %s", r.Method, r.URL.Path, name))
			}
		}
	}
	for _, h := range []string{"X-Agent-Id", "X-Http-Method-Override", "Proxy-Authorization", "Cookie", "X-Weir-Reveal"} {
		if r.Header.Get(h) != "" {
			f.bad = append(f.bad, fmt.Sprintf("%s %s carried %s", r.Method, r.URL.Path, h))
		}
	}
	f.mu.Unlock()
	p := r.URL.Path
	switch {
	case strings.HasSuffix(p, "/v2.0/.well-known/openid-configuration"):
		tenant := strings.Split(strings.TrimPrefix(p, "/"), "/")[0]
		b, _ := json.Marshal(map[string]any{
			"token_endpoint":                        f.base + "/" + tenant + "/oauth2/v2.0/token",
			"authorization_endpoint":                f.base + "/" + tenant + "/oauth2/v2.0/authorize",
			"issuer":                                f.base + "/" + tenant + "/v2.0",
			"jwks_uri":                              f.base + "/" + tenant + "/discovery/v2.0/keys",
			"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
			"subject_types_supported":               []string{"pairwise"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
		writeJSON(rw, 200, b)
		return
	case strings.HasSuffix(p, "/oauth2/v2.0/token"):
		r.Form = nil
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ParseForm()
		if r.PostForm.Get("client_secret") != entraSecret || r.PostForm.Get("grant_type") != "client_credentials" {
			writeJSON(rw, 401, []byte(`{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}`))
			return
		}
		tok := armToken
		if strings.Contains(r.PostForm.Get("scope"), "vault") {
			tok = kvToken
		}
		writeJSON(rw, 200, []byte(fmt.Sprintf(`{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":%q}`, tok)))
		return
	}
	if strings.HasPrefix(p, "/api/") {
		// An HTTP-triggered function: the function key weir injects, no bearer.
		if r.Header.Get("X-Functions-Key") != functionKey || r.Header.Get("Authorization") != "" {
			f.mu.Lock()
			f.bad = append(f.bad, fmt.Sprintf("%s %s: function key %q, Authorization %q", r.Method, p, trunc(r.Header.Get("X-Functions-Key")), trunc(r.Header.Get("Authorization"))))
			f.mu.Unlock()
			rw.WriteHeader(401)
			return
		}
		switch p {
		case "/api/orders/echo":
			// A debugging trigger that echoes its request, as many do:
			// the key weir injected comes back in the body and a header.
			rw.Header().Set("Content-Type", "text/plain")
			rw.Header().Set("X-Echo-Key", r.Header.Get("X-Functions-Key"))
			r.Header.Write(rw)
			return
		case "/api/orders/utf16":
			// A report exported as "Unicode Text": UTF-16LE with a BOM.
			rw.Header().Set("Content-Type", "text/plain")
			b := []byte{0xff, 0xfe}
			for _, c := range "contact ops@example.com\n" {
				b = append(b, byte(c), 0)
			}
			rw.Write(b)
			return
		case "/api/orders/bycustomer":
			// Data keyed by customer, as a map serializes.
			writeJSON(rw, 200, []byte(`{"ada@example.com":{"orders":3},"cards":{"4111 1111 1111 1111":"visa"},"card":4111111111111111}`))
			return
		case "/api/orders/echojson":
			b, _ := json.Marshal(map[string]any{"headers": r.Header, "note": "key=" + r.Header.Get("X-Functions-Key")})
			writeJSON(rw, 200, b)
			return
		}
		rw.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(rw, "order %s accepted; contact ops@example.com\n", strings.TrimPrefix(p, "/api/orders/"))
		return
	}
	want := "Bearer " + armToken
	if strings.HasPrefix(p, "/secrets") || strings.HasPrefix(p, "/keys") || strings.HasPrefix(p, "/certificates") {
		want = "Bearer " + kvToken
	}
	if got := r.Header.Get("Authorization"); got != want {
		f.mu.Lock()
		f.bad = append(f.bad, fmt.Sprintf("%s %s: Authorization %q, want weir's Entra token", r.Method, p, trunc(got)))
		f.mu.Unlock()
		writeJSON(rw, 401, []byte(`{"error":{"code":"InvalidAuthenticationToken","message":"fake: wrong token"}}`))
		return
	}
	lp := strings.ToLower(p)
	sub := "/subscriptions/" + subID
	switch {
	case r.Method == "GET" && lp == "/subscriptions":
		writeJSON(rw, 200, readTestdata("subscriptions.json"))
	case r.Method == "GET" && lp == sub+"/resourcegroups":
		if strings.Contains(r.URL.RawQuery, "skiptoken=foreign") {
			writeJSON(rw, 200, []byte(`{"value":[],"nextLink":"https://evil.example.net/subscriptions/x/resourcegroups?api-version=2022-09-01"}`))
			return
		}
		if strings.Contains(r.URL.RawQuery, "skiptoken=own") {
			writeJSON(rw, 200, []byte(`{"value":[],"nextLink":"`+f.base+sub+`/resourcegroups?api-version=2022-09-01&$skiptoken=2"}`))
			return
		}
		writeJSON(rw, 200, []byte(`{"value":[`+string(readTestdata("resourcegroup.json"))+`]}`))
	case r.Method == "GET" && lp == sub+"/resourcegroups/gzipped":
		// Content-Encoding weir did not ask for (it sends identity).
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write(readTestdata("listkeys.json"))
		zw.Close()
		rw.Header().Set("Content-Type", "application/json")
		rw.Header().Set("Content-Encoding", "gzip")
		rw.Write(b.Bytes())
	case r.Method == "GET" && lp == sub+"/resourcegroups/brotli":
		rw.Header().Set("Content-Type", "application/json")
		rw.Header().Set("Content-Encoding", "br")
		rw.Write([]byte{0x1b, 0x03, 0x00})
	case r.Method == "GET" && lp == sub+"/resourcegroups/bomb":
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(`{"value":"`))
		zw.Write(bytes.Repeat([]byte("A"), 4*maxBody))
		zw.Write([]byte(`"}`))
		zw.Close()
		rw.Header().Set("Content-Type", "application/json")
		rw.Header().Set("Content-Encoding", "gzip")
		rw.Write(b.Bytes())
	case r.Method == "GET" && lp == sub+"/resourcegroups/huge":
		rw.Header().Set("Content-Type", "application/json")
		rw.Write([]byte(`{"value":"` + strings.Repeat("A", 2*maxBody) + `"}`))
	case r.Method == "GET" && lp == sub+"/resourcegroups/redirect":
		rw.Header().Set("Location", "https://evil.example.net/steal")
		rw.WriteHeader(http.StatusTemporaryRedirect)
	case lp == sub+"/resourcegroups/rg-dev" || lp == sub+"/resourcegroups/my-resource-group":
		writeJSON(rw, 200, readTestdata("resourcegroup.json"))
	case r.Method == "POST" && strings.HasSuffix(lp, "/providers/microsoft.storage/storageaccounts/sto2220/listkeys"):
		writeJSON(rw, 200, readTestdata("listkeys.json"))
	case r.Method == "GET" && strings.HasPrefix(lp, "/secrets/mysecretname"):
		writeJSON(rw, 200, readTestdata("getsecret.json"))
	case r.Method == "POST" && lp == "/batch":
		writeJSON(rw, 200, []byte(`{"responses":[{"httpStatusCode":200,"content":{"value":[]}}]}`))
	default:
		writeJSON(rw, 404, []byte(`{"error":{"code":"NotFound","message":"fake: no such resource"}}`))
	}
}

func trunc(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}

// tunnel opens a CONNECT tunnel through weir's proxy and the TLS session
// inside it, trusting weir's CA as a client given `weir env` would.
func tunnel(t testing.TB, host string, roots *x509.CertPool) (*tls.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", w.proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n", host, host)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("CONNECT %s: %s %s", host, resp.Status, b)
	}
	tc := tls.Client(c, &tls.Config{ServerName: host, RootCAs: roots})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	return tc, bufio.NewReader(tc)
}

// rawRequest sends raw bytes in a fresh tunnel and reads one response.
func rawRequest(t testing.TB, host string, roots *x509.CertPool, raw string) (*http.Response, string) {
	t.Helper()
	tc, br := tunnel(t, host, roots)
	tc.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(tc, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}
