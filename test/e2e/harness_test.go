// Package e2e runs weir end to end: a real PostgreSQL (internal/testpg), the
// real weir front end in this process, and real clients (psql, pgx).
package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/weir-gw/weir/internal/audit"
	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/gateway"
	"github.com/weir-gw/weir/internal/identity"
	"github.com/weir-gw/weir/internal/proxy/postgres"
	"github.com/weir-gw/weir/internal/store"
	"github.com/weir-gw/weir/internal/testpg"
	"github.com/weir-gw/weir/internal/tlsutil"
)

const upstreamPassword = "Upstr3am-S3cret-never-leaks"

// env is the shared world of the e2e tests.
var env struct {
	pg      *testpg.Server
	cfg     *config.Config
	st      *faultyStore
	auth    *identity.Authority
	gw      *gateway.Gateway
	aw      *audit.Writer
	srv     *postgres.Server
	addr    string
	logBuf  *syncBuffer
	dataDir string
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

// faultyStore lets a test make the audit store refuse writes, to prove
// that weir then refuses commands. It wraps the real SQLite store.
type faultyStore struct {
	store.Store
	mu   sync.Mutex
	fail bool
}

func (f *faultyStore) setFail(v bool) {
	f.mu.Lock()
	f.fail = v
	f.mu.Unlock()
}

func (f *faultyStore) AppendAudit(ctx context.Context, recs []store.AuditRecord, genesis []byte, hash func(*store.AuditRecord) []byte) error {
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	if fail {
		return fmt.Errorf("disk full (injected by test)")
	}
	return f.Store.AppendAudit(ctx, recs, genesis, hash)
}

const schema = `
CREATE ROLE weir_agent LOGIN PASSWORD '` + upstreamPassword + `';
CREATE TABLE customers (id serial PRIMARY KEY, full_name text NOT NULL, email text NOT NULL);
CREATE TABLE orders (id serial PRIMARY KEY, customer_id int REFERENCES customers, total_cents int NOT NULL);
CREATE TABLE scratch (id serial PRIMARY KEY, note text);
CREATE TABLE secrets (id int, value text);
INSERT INTO customers (full_name, email) SELECT 'Customer ' || g, 'c' || g || '@example.com' FROM generate_series(1, 50) g;
INSERT INTO orders (customer_id, total_cents) SELECT 1 + g % 50, g * 100 FROM generate_series(1, 200) g;
INSERT INTO secrets VALUES (1, 'top');
CREATE TABLE people (id serial PRIMARY KEY, full_name text NOT NULL, email text NOT NULL, phone text, ssn text, salary int, profile jsonb, photo bytea, created_at timestamptz NOT NULL DEFAULT '2026-01-02 03:04:05+00');
INSERT INTO people (full_name, email, phone, ssn, salary, profile, photo)
  SELECT 'Person ' || g, 'p' || g || '@corp.example', '+1 202 555 01' || lpad(g::text, 2, '0'), lpad((123450000 + g)::text, 9, '0'), 50000 + g * 1000,
         jsonb_build_object('nick', 'n' || g), convert_to('photo' || g, 'UTF8')
  FROM generate_series(1, 20) g;
CREATE TABLE payments (id serial PRIMARY KEY, person_id int REFERENCES people, card_number text NOT NULL, amount_cents int NOT NULL);
INSERT INTO payments (person_id, card_number, amount_cents) SELECT 1 + g % 20, '4242 4242 4242 ' || lpad((4242 + g)::text, 4, '0'), g * 150 FROM generate_series(1, 40) g;
CREATE TABLE accounts (id serial PRIMARY KEY, owner text, iban text);
INSERT INTO accounts (owner, iban) VALUES ('acme', 'DE89370400440532013000'), ('globex', 'GB82WEST12345698765432');
CREATE TABLE vault (id int PRIMARY KEY, secret text);
INSERT INTO vault VALUES (1, 'k3y-abcdefghijklmnopqrstuvwxyz-0123456789');
CREATE VIEW people_contacts AS SELECT id, lower(email) AS contact FROM people;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO weir_agent;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO weir_agent;
GRANT CREATE ON SCHEMA public TO weir_agent;
`

const policyYAML = `
policy:
  rules:
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
    - name: reads
      when: 'command.kind in ["read", "transaction"] || (command.kind == "session" && !("setting_change" in command.risks))'
      action: allow
    - name: copy-in-scratch
      when: 'command.verb == "COPY FROM" && command.written == ["scratch"]'
      action: allow
  masking:
    columns: [people.email, people.phone, people.ssn, people.profile, people.photo, payments.card_number, "*.iban", public.vault.secret]
`

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
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
	if err := pg.Exec(ctx, "other", "GRANT ALL ON SCHEMA public TO weir_agent"); err != nil {
		return 0, err
	}
	os.Setenv("E2E_PG_PASSWORD", upstreamPassword)
	env.dataDir, err = os.MkdirTemp("", "weir-e2e-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(env.dataDir)
	yml := fmt.Sprintf(`data_dir: %s
listen:
  postgres: 127.0.0.1:0
tls:
  allow_plaintext_loopback: true
targets:
  - name: shop
    kind: postgres
    address: %s
    database: shop
    username: weir_agent
    password_env: E2E_PG_PASSWORD
    sslmode: require
    labels: {env: prod}
  - name: other
    kind: postgres
    address: %s
    database: other
    username: weir_agent
    password_env: E2E_PG_PASSWORD
    sslmode: require
    labels: {env: dev}
agents:
  - name: ci-bot
    targets: [shop, other]
    max_ttl: 2h
  - name: reader
    targets: [other]
    max_ttl: 1h
`+policyYAML, env.dataDir, pg.Addr(), pg.Addr())
	env.cfg, err = config.Parse("e2e.yaml", []byte(yml))
	if err != nil {
		return 0, err
	}
	sq, err := store.OpenSQLite(env.dataDir, false)
	if err != nil {
		return 0, err
	}
	env.st = &faultyStore{Store: sq}
	defer sq.Close()
	env.auth, err = identity.NewAuthority(ctx, env.st)
	if err != nil {
		return 0, err
	}
	aw, err := audit.NewWriter(ctx, env.st)
	if err != nil {
		return 0, err
	}
	defer aw.Close()
	env.aw = aw
	env.logBuf = &syncBuffer{}
	log := slog.New(slog.NewTextHandler(env.logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	env.gw, err = gateway.New(env.cfg, env.st, env.auth, aw, log)
	if err != nil {
		return 0, err
	}
	env.gw.Start(200 * time.Millisecond)
	defer env.gw.Close()
	tlsCfg, err := tlsutil.ServerConfig("", "", env.dataDir)
	if err != nil {
		return 0, err
	}
	env.srv, err = postgres.NewServer(env.gw, tlsCfg, log)
	if err != nil {
		return 0, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	env.addr = ln.Addr().String()
	go env.srv.Serve(ln)
	defer env.srv.Close()
	code := m.Run()
	// No test may have leaked the upstream password into weir's log.
	if strings.Contains(env.logBuf.String(), upstreamPassword) {
		fmt.Fprintln(os.Stderr, "FAIL: weir's log contains the upstream password")
		code = 1
	}
	return code, nil
}

// token issues a weir token.
func token(t testing.TB, agent string, ttl time.Duration, targets ...string) (string, identity.Claims) {
	t.Helper()
	if len(targets) == 0 {
		a, _ := env.cfg.Agent(agent)
		targets = a.Targets
	}
	tok, c, err := env.auth.Issue(context.Background(), identity.IssueRequest{Agent: agent, Targets: targets, TTL: ttl, Context: map[string]string{"ticket": "OPS-12"}, IssuedBy: "local:test"})
	if err != nil {
		t.Fatal(err)
	}
	return tok, c
}

func host() (string, string) {
	h, p, _ := net.SplitHostPort(env.addr)
	return h, p
}

// dsn is what an agent puts in its client.
func dsn(tok, db, sslmode string) string {
	h, p := host()
	return fmt.Sprintf("host=%s port=%s dbname=%s user=ci-bot password=%s sslmode=%s connect_timeout=10", h, p, db, tok, sslmode)
}

// connect opens a pgx connection through weir.
func connect(t testing.TB, db string) *pgx.Conn {
	t.Helper()
	tok, _ := token(t, "ci-bot", time.Hour)
	conn, err := pgx.Connect(context.Background(), dsn(tok, db, "require"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// marker returns a unique comment to embed in SQL, so the server log can
// tell whether the statement reached PostgreSQL.
func marker(t testing.TB) string {
	return "/*m" + identity.RandomID(6) + "*/"
}

func serverSaw(t testing.TB, mark string) bool {
	t.Helper()
	// Logging is asynchronous only by a few ms after the statement ran.
	time.Sleep(20 * time.Millisecond)
	log, err := env.pg.Log()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(log, mark)
}

var _ = tls.VersionTLS12
