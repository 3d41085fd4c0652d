// Package mcp runs weir's MCP front end end to end: a real PostgreSQL
// (internal/testpg) and a real Azurite (the Blob storage account), weir's
// gateway, approval workflow, PostgreSQL and Blob front ends in this process, the MCP server on a real HTTP listener, and real MCP
// clients: the Go SDK (streamable HTTP, and stdio through `weir mcp` built
// from source) and the TypeScript SDK from npm (run with node). pgx through
// the PostgreSQL listener is the psql-protocol reference for verdicts.
package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/jackc/pgx/v5"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/weir-gw/weir/internal/approval"
	"github.com/weir-gw/weir/internal/audit"
	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/gateway"
	"github.com/weir-gw/weir/internal/identity"
	weirmcp "github.com/weir-gw/weir/internal/mcp"
	"github.com/weir-gw/weir/internal/proxy/blob"
	"github.com/weir-gw/weir/internal/proxy/postgres"
	"github.com/weir-gw/weir/internal/store"
	"github.com/weir-gw/weir/internal/testpg"
	"github.com/weir-gw/weir/internal/tlsutil"
)

const upstreamPassword = "Upstr3am-MCP-S3cret-never-leaks"

var env struct {
	pg        *testpg.Server
	cfg       *config.Config
	cfgYAML   string
	st        store.Store
	auth      *identity.Authority
	gw        *gateway.Gateway
	aw        *audit.Writer
	approvals *approval.Service
	pgAddr    string // the PostgreSQL front end's TCP listener
	mcp       *weirmcp.Server
	url       string // the MCP endpoint
	base      string
	logBuf    *syncBuffer
	dataDir   string
	blobs     *azblob.Client // Azurite directly, behind weir's back
	blobH     *blob.Handler
	secret    []byte // the Blob front end's, for connection strings
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const schema = `
CREATE ROLE weir_agent LOGIN PASSWORD '` + upstreamPassword + `';
CREATE TABLE customers (id serial PRIMARY KEY, full_name text NOT NULL, email text NOT NULL, card text);
CREATE TABLE orders (id serial PRIMARY KEY, customer_id int REFERENCES customers, total_cents int NOT NULL);
CREATE TABLE scratch (id serial PRIMARY KEY, note text);
CREATE UNIQUE INDEX scratch_emails ON scratch(note) WHERE note LIKE '%@%';
CREATE TABLE secrets (id int, value text);
INSERT INTO customers (full_name, email, card) SELECT 'Customer ' || g, 'c' || g || '@example.com', '4111 1111 1111 1111' FROM generate_series(1, 50) g;
INSERT INTO orders (customer_id, total_cents) SELECT 1 + g % 50, g * 100 FROM generate_series(1, 300) g;
INSERT INTO secrets VALUES (1, 'top');
INSERT INTO scratch(note) VALUES ('c6@example.com');
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO weir_agent;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO weir_agent;
`

const policyYAML = `
policy:
  rules:
    - name: blob-no-delete
      when: 'command.protocol == "blob" && command.operation in ["DeleteBlob", "DeleteContainer"]'
      action: deny
      message: "deleting blobs is not allowed through weir; ask an operator"
    - name: blob-no-hr
      when: 'command.protocol == "blob" && "container" in command.attrs && command.attrs.container == "hr-files"'
      action: deny
      message: "the hr-files container is off limits"
    - name: blob-prod-writes
      when: 'command.protocol == "blob" && command.kind == "write" && "container" in command.attrs && command.attrs.container.startsWith("prod-")'
      action: review
      mode: async
      message: "writes to prod-* containers need a person's approval"
    - name: blob-agent-writes
      when: 'command.protocol == "blob" && command.kind == "write" && command.written.all(r, r.startsWith("scratch/agent/"))'
      action: allow
    - name: blob-writes-elsewhere
      when: 'command.protocol == "blob" && command.kind != "read"'
      action: deny
      message: "agents write only under scratch/agent/"
    - name: blob-reads
      when: 'command.protocol == "blob" && command.kind == "read"'
      action: allow
    - name: no-ddl
      when: 'command.kind == "ddl" || command.kind == "admin"'
      action: deny
      message: "agents may not change the schema; open a change request"
    - name: no-risky
      when: 'command.risks.exists(r, r in ["file_access","network_access","program_exec","dynamic_sql","role_change","search_path","read_only_escape","writable_cte","select_into","server_signal","unknown_function","notify"])'
      action: deny
    - name: no-secrets
      when: '"secrets" in command.reads || "public.secrets" in command.reads'
      action: deny
      message: "the secrets table is off limits"
    - name: scratch-writes
      when: 'command.kind == "write" && command.written.all(t, t == "scratch" || t == "public.scratch")'
      action: allow
    - name: review-prod-writes
      when: 'command.writes && target.labels.env == "prod"'
      action: review
      mode: async
      message: "production data changes need a person's approval"
    - name: reads
      when: 'command.kind in ["read", "transaction"]'
      action: allow
approvals:
  timeout: 5s
  async_timeout: 1h
  grant_ttl: 1m
`

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e mcp setup:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	ctx := context.Background()
	pg, err := testpg.Start(testpg.Options{TLS: true})
	if err != nil {
		return 0, err
	}
	defer pg.Stop()
	env.pg = pg
	for _, db := range []string{"shop", "other"} {
		if err := pg.Exec(ctx, "postgres", "CREATE DATABASE "+db); err != nil {
			return 0, err
		}
	}
	if err := pg.Exec(ctx, "shop", schema); err != nil {
		return 0, err
	}
	os.Setenv("MCP_E2E_PG_PASSWORD", upstreamPassword)
	env.dataDir, err = os.MkdirTemp("", "weir-e2e-mcp-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(env.dataDir)
	azDir := filepath.Join(env.dataDir, "azurite")
	os.MkdirAll(azDir, 0o700)
	azurite, stopAzurite, err := startAzurite(azDir)
	if err != nil {
		return 0, err
	}
	defer stopAzurite()
	os.Setenv("MCP_E2E_BLOB_KEY", azuriteKey)
	env.cfgYAML = fmt.Sprintf(`targets:
  - name: shop
    kind: postgres
    address: %s
    database: shop
    username: weir_agent
    password_env: MCP_E2E_PG_PASSWORD
    sslmode: require
    labels: {env: prod}
  - name: other
    kind: postgres
    address: %s
    database: other
    username: weir_agent
    password_env: MCP_E2E_PG_PASSWORD
    sslmode: require
    labels: {env: dev}
  - name: lake
    kind: azure-blob
    endpoint: %s
    account: %s
    account_key_env: MCP_E2E_BLOB_KEY
    labels: {env: dev}
agents:
  - name: ci-bot
    targets: [shop, other]
    max_ttl: 2h
  - name: reader
    targets: [other]
    max_ttl: 1h
  - name: lake-bot
    targets: [lake, other]
    max_ttl: 1h
`+policyYAML, pg.Addr(), pg.Addr(), azurite, azuriteAccount)
	yml := fmt.Sprintf("data_dir: %s\nlisten:\n  postgres: 127.0.0.1:0\n  http: 127.0.0.1:0\ntls:\n  allow_plaintext_loopback: true\n", env.dataDir) + env.cfgYAML
	env.cfg, err = config.Parse("e2e-mcp.yaml", []byte(yml))
	if err != nil {
		return 0, err
	}
	sq, err := store.OpenSQLite(env.dataDir, false)
	if err != nil {
		return 0, err
	}
	defer sq.Close()
	env.st = sq
	if env.auth, err = identity.NewAuthority(ctx, sq); err != nil {
		return 0, err
	}
	if env.aw, err = audit.NewWriter(ctx, sq); err != nil {
		return 0, err
	}
	defer env.aw.Close()
	env.logBuf = &syncBuffer{}
	log := slog.New(slog.NewTextHandler(env.logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if env.gw, err = gateway.New(env.cfg, sq, env.auth, env.aw, log); err != nil {
		return 0, err
	}
	if env.approvals, _, err = approval.FromConfig(env.cfg, sq, env.aw.Append, log); err != nil {
		return 0, err
	}
	env.approvals.Start(200 * time.Millisecond)
	defer env.approvals.Close()
	env.gw.SetApprovals(env.approvals)
	env.gw.Start(100 * time.Millisecond)
	defer env.gw.Close()
	tlsCfg, err := tlsutil.ServerConfig("", "", env.dataDir)
	if err != nil {
		return 0, err
	}
	pgSrv, err := postgres.NewServer(env.gw, tlsCfg, log)
	if err != nil {
		return 0, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	env.pgAddr = ln.Addr().String()
	go pgSrv.Serve(ln)
	defer pgSrv.Close()

	if env.secret, err = blob.LoadSecret(env.dataDir); err != nil {
		return 0, err
	}
	if env.blobH, err = blob.New(blob.Options{Gateway: env.gw, Secret: env.secret, Log: log}); err != nil {
		return 0, err
	}
	defer env.blobH.Close()
	env.blobs, err = azblob.NewClientFromConnectionString(fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s", azuriteAccount, azuriteKey, azurite), nil)
	if err != nil {
		return 0, err
	}
	if err := seedBlobs(ctx); err != nil {
		return 0, fmt.Errorf("seeding azurite: %w", err)
	}

	env.mcp = weirmcp.New(weirmcp.Options{Gateway: env.gw, Auth: env.auth, Postgres: pgSrv, Approvals: env.approvals, Blob: env.blobH, Logger: log, Version: "e2e"})
	defer env.mcp.Close()
	mux := http.NewServeMux()
	mux.Handle(weirmcp.Path, env.mcp.Handler())
	mux.Handle(weirmcp.MetadataPath, env.mcp.MetadataHandler())
	mux.Handle(weirmcp.MetadataPath+weirmcp.Path, env.mcp.MetadataHandler())
	mux.Handle(blob.Prefix, env.blobH) // for the SDK, the reference client
	hs := httptest.NewServer(mux)
	defer hs.Close()
	env.base = hs.URL
	env.url = hs.URL + weirmcp.Path

	code := m.Run()
	if strings.Contains(env.logBuf.String(), upstreamPassword) {
		fmt.Fprintln(os.Stderr, "FAIL: weir's log contains the upstream password")
		code = 1
	}
	if strings.Contains(env.logBuf.String(), azuriteKey) {
		fmt.Fprintln(os.Stderr, "FAIL: weir's log contains the storage account key")
		code = 1
	}
	return code, nil
}

// token issues a weir token for agent.
func token(t testing.TB, agent string) (string, identity.Claims) {
	t.Helper()
	a, _ := env.cfg.Agent(agent)
	tok, c, err := env.auth.Issue(context.Background(), identity.IssueRequest{Agent: agent, Targets: a.Targets, TTL: time.Hour,
		Context: map[string]string{"ticket": "OPS-9"}, IssuedBy: "local:test"})
	if err != nil {
		t.Fatal(err)
	}
	return tok, c
}

// bearerTransport adds the agent's token, as an MCP client config's
// headers do.
type bearerTransport struct{ token string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// goClient connects the Go SDK's client over streamable HTTP.
func goClient(t testing.TB, tok, name string) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := &mcp.StreamableClientTransport{Endpoint: env.url, HTTPClient: &http.Client{Transport: bearerTransport{tok}}, MaxRetries: -1}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: name, Version: "9.9.9"}, nil).Connect(ctx, tr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// call calls a tool and decodes its structured content into out (if
// non-nil); it returns the result's text and whether it is a tool error.
func call(t testing.TB, cs *mcp.ClientSession, tool string, args map[string]any, out any) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	var text strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			text.WriteString(tc.Text)
		}
	}
	if out != nil {
		b, err := json.Marshal(res.StructuredContent)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: structured content %s: %v", tool, b, err)
		}
	}
	return text.String(), res.IsError
}

// auditEvents reads every audit record.
func auditEvents(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	var after int64
	for {
		recs, err := env.st.ReadAudit(context.Background(), after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return out
		}
		for _, r := range recs {
			var data map[string]any
			json.Unmarshal(r.Data, &data)
			out = append(out, map[string]any{"type": r.Type, "session": r.SessionID, "agent": r.Agent, "target": r.Target, "data": data})
			after = r.Seq
		}
	}
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pgSuper connects to the real PostgreSQL as its superuser, behind weir's
// back, to check what happened there.
func pgSuper(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), env.pg.DSN("shop"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
