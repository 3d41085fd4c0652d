package e2e

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/weir-gw/weir/internal/audit"
	"github.com/weir-gw/weir/internal/gateway"
	"github.com/weir-gw/weir/internal/proxy/postgres"
	"github.com/weir-gw/weir/internal/tlsutil"
)

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func TestPsqlReadMatchesDirect(t *testing.T) {
	tok, _ := token(t, "ci-bot", time.Hour)
	q := "SELECT id, full_name, email FROM customers ORDER BY id LIMIT 5"
	viaWeir, err := psql(t, dsn(tok, "shop", "require"), q)
	if err != nil {
		t.Fatalf("%v: %s", err, viaWeir)
	}
	direct, err := psql(t, env.pg.DSN("shop"), q)
	if err != nil {
		t.Fatalf("%v: %s", err, direct)
	}
	// Same rows, with the e-mail addresses masked by weir's default detectors.
	masked := regexp.MustCompile(`c\d+@example\.com`).ReplaceAllString(direct, "c****@e*****.com")
	if viaWeir != masked || !strings.Contains(direct, "c1@example.com") || strings.Contains(viaWeir, "@example.com") {
		t.Fatalf("through weir:\n%s\ndirect:\n%s", viaWeir, direct)
	}
}

func TestDenialMessageIsActionable(t *testing.T) {
	conn := connect(t, "shop")
	_, err := conn.Exec(context.Background(), "DROP TABLE customers")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("got %v", err)
	}
	for _, want := range []string{`policy rule "no-ddl"`, "open a change request", "Nothing in this request was run"} {
		if !strings.Contains(pe.Message, want) {
			t.Errorf("message %q lacks %q", pe.Message, want)
		}
	}
	if pe.Code != "42501" || !strings.Contains(pe.Hint, "weir session s_") {
		t.Errorf("code %s hint %q", pe.Code, pe.Hint)
	}
}

// A refusal inside a transaction aborts it, as a PostgreSQL error would:
// the allowed write before it is not committed.
func TestRefusalAbortsTransaction(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, "shop")
	note := "tx-" + marker(t)
	if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO scratch(note) VALUES ($1)", note); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "DELETE FROM orders"); pgCode(err) != "42501" {
		t.Fatalf("delete in tx: %v", err)
	}
	if _, err := conn.Exec(ctx, "SELECT 1"); pgCode(err) != "25P02" {
		t.Fatalf("want current transaction is aborted (25P02), got %v", err)
	}
	if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM scratch WHERE note = $1", note).Scan(&n); err != nil || n != 0 {
		t.Fatalf("write before the refusal was committed: n=%d err=%v", n, err)
	}
}

// A pipelined extended-protocol batch with one refused statement runs none
// of it (P05), and the server never sees the refused one.
func TestBatchWithRefusalRunsNothing(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, "shop")
	note := "batch-" + marker(t)
	mark := marker(t)
	b := &pgx.Batch{}
	b.Queue("INSERT INTO scratch(note) VALUES ($1)", note)
	b.Queue(mark+" DELETE FROM orders WHERE id = $1", -1)
	b.Queue("INSERT INTO scratch(note) VALUES ($1)", note)
	err := conn.SendBatch(ctx, b).Close()
	if pgCode(err) != "42501" {
		t.Fatalf("batch: %v", err)
	}
	if serverSaw(t, mark) {
		t.Fatal("refused statement reached the server")
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM scratch WHERE note = $1", note).Scan(&n); err != nil || n != 0 {
		t.Fatalf("batch partly ran: n=%d err=%v", n, err)
	}
	// An all-allowed batch runs.
	b = &pgx.Batch{}
	b.Queue("INSERT INTO scratch(note) VALUES ($1)", note)
	b.Queue("SELECT count(*) FROM customers")
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
}

// pgx's default mode prepares and caches statements; SQL-level PREPARE and
// EXECUTE are resolved to the stored body (P04, P06).
func TestPreparedStatements(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, "shop")
	for i := 0; i < 3; i++ {
		var name string
		if err := conn.QueryRow(ctx, "SELECT full_name FROM customers WHERE id = $1", i+1).Scan(&name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Prepare(ctx, "del", "DELETE FROM orders WHERE id = $1"); pgCode(err) != "42501" {
		t.Fatalf("prepare of a reviewed statement: %v", err)
	}
	if _, err := conn.Exec(ctx, "PREPARE p AS SELECT count(*) FROM customers"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "EXECUTE p"); err != nil {
		t.Fatal(err)
	}
	mark := marker(t)
	if _, err := conn.Exec(ctx, mark+" EXECUTE never_prepared"); pgCode(err) != "42501" && pgCode(err) != "26000" {
		t.Fatalf("execute of unknown name: %v", err)
	}
	if _, err := conn.Exec(ctx, "PREPARE d AS DELETE FROM orders"); pgCode(err) != "42501" {
		t.Fatalf("prepare delete: %v", err)
	}
	if _, err := conn.Exec(ctx, "DEALLOCATE p"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "EXECUTE p"); err == nil {
		t.Fatal("execute after deallocate ran")
	}
}

// Raw protocol: Bind/Execute of a statement name weir never saw parsed is
// refused; a FunctionCall message is refused (P23).
func TestRawProtocolRefusals(t *testing.T) {
	ctx := context.Background()
	tok, _ := token(t, "ci-bot", time.Hour)
	pc, err := pgconn.Connect(ctx, dsn(tok, "shop", "require"))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(ctx)
	fe := pc.Frontend()
	fe.Send(&pgproto3.Bind{PreparedStatement: "ghost"})
	fe.Send(&pgproto3.Execute{})
	fe.Send(&pgproto3.Sync{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	expectErrorThenReady(t, fe, "26000")
	fe.Send(&pgproto3.FunctionCall{Function: 1598 /* random() */, Arguments: nil})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	expectErrorThenReady(t, fe, "42501")
	res := pc.Exec(ctx, "SELECT 1")
	if _, err := res.ReadAll(); err != nil {
		t.Fatalf("session unusable: %v", err)
	}
}

func expectErrorThenReady(t *testing.T, fe *pgproto3.Frontend, code string) {
	t.Helper()
	gotErr := false
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			if m.Code != code || !strings.Contains(m.Message, "weir") {
				t.Fatalf("error %s %q, want %s from weir", m.Code, m.Message, code)
			}
			gotErr = true
		case *pgproto3.ReadyForQuery:
			if !gotErr {
				t.Fatal("ReadyForQuery without the refusal")
			}
			return
		}
	}
}

func TestTokenRefusals(t *testing.T) {
	ctx := context.Background()
	good, _ := token(t, "ci-bot", time.Hour)
	revoked, rc := token(t, "ci-bot", time.Hour)
	if err := env.auth.Revoke(ctx, rc.ID, "local:test"); err != nil {
		t.Fatal(err)
	}
	readerTok, _ := token(t, "reader", time.Hour)
	shortLived, _ := token(t, "ci-bot", time.Second)
	time.Sleep(1100 * time.Millisecond)
	otherOnly, _ := token(t, "ci-bot", time.Hour, "other")
	forged := good[:len(good)-4] + "AAAA"
	h, p := host()
	tests := []struct {
		name, conninfo, want string
	}{
		{"revoked", dsn(revoked, "shop", "require"), "revoked"},
		{"expired", dsn(shortLived, "shop", "require"), "expired"},
		{"forged", dsn(forged, "shop", "require"), "signature is invalid"},
		{"not a token", dsn("hunter2", "shop", "require"), "malformed"},
		{"token for another target", dsn(otherOnly, "shop", "require"), `not valid for target "shop"`},
		{"user is not the agent", "host=" + h + " port=" + p + " dbname=other user=ci-bot sslmode=require password=" + readerTok, `must be the agent the token was issued to ("reader")`},
		{"unknown target", dsn(good, "nosuch", "require"), `no target "nosuch"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pgx.Connect(ctx, tc.conninfo)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	// Refusals are audited.
	recs := auditRecords(t)
	refused := 0
	for _, r := range recs {
		if r.Type == audit.TypeAuthRefused {
			refused++
		}
	}
	if refused < 7 {
		t.Fatalf("%d auth.refused records, want at least 7", refused)
	}
}

// Revoking a token ends its live session within seconds, with a clear error.
func TestRevocationEndsLiveSession(t *testing.T) {
	ctx := context.Background()
	tok, c := token(t, "ci-bot", time.Hour)
	conn, err := pgx.Connect(ctx, dsn(tok, "shop", "require"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if err := env.auth.Revoke(ctx, c.ID, "local:test"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err = conn.Exec(ctx, "SELECT 1"); err != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err == nil || !strings.Contains(err.Error(), "revoked") && !conn.IsClosed() {
		t.Fatalf("session still alive after revocation: %v", err)
	}
}

// Plain TCP is accepted only because this test config allows plaintext on
// loopback; sslmode=disable works there, and TLS works too.
func TestPlaintextLoopbackAllowedByConfig(t *testing.T) {
	tok, _ := token(t, "ci-bot", time.Hour)
	conn, err := pgx.Connect(context.Background(), dsn(tok, "shop", "disable"))
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(context.Background())
}

// Without tls.allow_plaintext_loopback, a client that does not use TLS is
// refused before it can send its token.
func TestPlaintextRefusedWithoutOptIn(t *testing.T) {
	cfg := *env.cfg
	cfg.TLS.AllowPlaintextLoopback = false
	gw, err := gateway.New(&cfg, env.st, env.auth, env.aw, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := tlsutil.ServerConfig("", "", env.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := postgres.NewServer(gw, tlsCfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	tok, _ := token(t, "ci-bot", time.Hour)
	h, p, _ := net.SplitHostPort(ln.Addr().String())
	base := "host=" + h + " port=" + p + " dbname=shop user=ci-bot password=" + tok
	if _, err := pgx.Connect(context.Background(), base+" sslmode=disable"); err == nil || !strings.Contains(err.Error(), "requires TLS") {
		t.Fatalf("plaintext: %v", err)
	}
	conn, err := pgx.Connect(context.Background(), base+" sslmode=require")
	if err != nil {
		t.Fatalf("TLS: %v", err)
	}
	conn.Close(context.Background())
}

func rawStartup(t *testing.T, params map[string]string) *pgproto3.Frontend {
	t.Helper()
	c, err := net.Dial("tcp", env.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fe := pgproto3.NewFrontend(c, c)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: params})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	return fe
}

func expectFatal(t *testing.T, fe *pgproto3.Frontend, want string) {
	t.Helper()
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatalf("connection ended without an error message: %v", err)
		}
		if m, ok := msg.(*pgproto3.ErrorResponse); ok {
			if !strings.Contains(m.Message, want) {
				t.Fatalf("error %q, want %q", m.Message, want)
			}
			return
		}
	}
}

func TestStartupRefusals(t *testing.T) {
	tests := []struct {
		name   string
		params map[string]string
		want   string
	}{
		{"replication (P22)", map[string]string{"user": "ci-bot", "database": "shop", "replication": "database"}, "replication connections are not allowed"},
		{"options (P22)", map[string]string{"user": "ci-bot", "database": "shop", "options": "-c role=postgres"}, `"options" is not allowed`},
		{"unsafe encoding (P08)", map[string]string{"user": "ci-bot", "database": "shop", "client_encoding": "SJIS"}, "client_encoding"},
		{"unknown parameter", map[string]string{"user": "ci-bot", "database": "shop", "search_path": "evil"}, `"search_path" is not supported`},
		{"no user", map[string]string{"database": "shop"}, "no user name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			expectFatal(t, rawStartup(t, tc.params), tc.want)
		})
	}
}

// Bad frames get an error and a closed connection, never a crash or hang;
// the server keeps serving others (P21).
func TestMalformedFrames(t *testing.T) {
	ctx := context.Background()
	tok, _ := token(t, "ci-bot", time.Hour)
	frames := map[string][]byte{
		"length 0":          {'Q', 0, 0, 0, 0},
		"length 3":          {'Q', 0, 0, 0, 3},
		"length 0xFFFFFFFF": {'Q', 0xff, 0xff, 0xff, 0xff},
		"over the cap":      {'Q', 0x7f, 0, 0, 0},
		"unknown type":      {'~', 0, 0, 0, 4},
		"query without NUL": {'Q', 0, 0, 0, 7, 'a', 'b', 'c'},
	}
	for name, frame := range frames {
		t.Run(name, func(t *testing.T) {
			pc, err := pgconn.Connect(ctx, dsn(tok, "shop", "disable"))
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close(ctx)
			c := pc.Conn()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write(frame); err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(c)
			if len(data) == 0 || data[0] != 'E' || !strings.Contains(string(data), "FATAL") {
				t.Fatalf("want a FATAL error then close, got %q", data)
			}
		})
	}
	startup := map[string][]byte{
		"startup length 0":    {0, 0, 0, 0},
		"startup oversized":   {0, 0x10, 0, 0, 0, 3, 0, 0},
		"startup bad version": {0, 0, 0, 8, 0, 9, 0, 0},
	}
	for name, pkt := range startup {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", env.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write(pkt)
			data, _ := io.ReadAll(c)
			if len(data) > 0 && data[0] != 'E' {
				t.Fatalf("unexpected reply %q", data)
			}
		})
	}
	conn := connect(t, "shop")
	if _, err := conn.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("weir stopped serving: %v", err)
	}
}

// Bytes pipelined after SSLRequest, before the TLS handshake, are never
// read as protocol (P20, CVE-2021-23214): the handshake fails instead.
func TestBytesBeforeTLSRefused(t *testing.T) {
	c, err := net.Dial("tcp", env.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var pkt []byte
	pkt = binary.BigEndian.AppendUint32(pkt, 8)
	pkt = binary.BigEndian.AppendUint32(pkt, 80877103)
	injected, _ := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "ci-bot", "database": "shop"}}).Encode(nil)
	if _, err := c.Write(append(pkt, injected...)); err != nil {
		t.Fatal(err)
	}
	resp := make([]byte, 1)
	if _, err := io.ReadFull(c, resp); err != nil || resp[0] != 'S' {
		t.Fatalf("SSLRequest answer %q %v", resp, err)
	}
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err == nil {
		// If a handshake somehow succeeded, the injected startup must not have been processed.
		t.Fatal("TLS handshake succeeded after injected plaintext bytes")
	}
}

// Cancel works for one's own query and a guessed key cancels nothing (P24).
func TestCancel(t *testing.T) {
	ctx := context.Background()
	tok, _ := token(t, "ci-bot", time.Hour)
	victim, err := pgconn.Connect(ctx, dsn(tok, "shop", "require"))
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close(ctx)
	// A guessed key (pid right, secret wrong) must not cancel the victim's query.
	done := make(chan error, 1)
	go func() { _, err := victim.Exec(ctx, "SELECT pg_sleep(1.5)").ReadAll(); done <- err }()
	time.Sleep(200 * time.Millisecond)
	sendCancel(t, victim.PID(), []byte{1, 2, 3, 4})
	if err := <-done; err != nil {
		t.Fatalf("query cancelled by a wrong key: %v", err)
	}
	go func() { _, err := victim.Exec(ctx, "SELECT pg_sleep(30)").ReadAll(); done <- err }()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	if err := victim.CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if pgCode(err) != "57014" {
			t.Fatalf("want query_canceled, got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancel had no effect")
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("cancel took too long")
	}
}

func sendCancel(t *testing.T, pid uint32, secret []byte) {
	c, err := net.Dial("tcp", env.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var pkt []byte
	pkt = binary.BigEndian.AppendUint32(pkt, uint32(12+len(secret)))
	pkt = binary.BigEndian.AppendUint32(pkt, 80877102)
	pkt = binary.BigEndian.AppendUint32(pkt, pid)
	pkt = append(pkt, secret...)
	c.Write(pkt)
	c.SetDeadline(time.Now().Add(2 * time.Second))
	io.ReadAll(c)
}

type auditRec struct {
	Type, SessionID, Agent, Target string
	Data                           map[string]any
}

func auditRecords(t *testing.T) []auditRec {
	t.Helper()
	time.Sleep(50 * time.Millisecond) // results are recorded asynchronously
	var out []auditRec
	var after int64
	for {
		recs, err := env.st.ReadAudit(context.Background(), after, 5000)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return out
		}
		for _, r := range recs {
			var d map[string]any
			if err := json.Unmarshal(r.Data, &d); err != nil {
				t.Fatal(err)
			}
			out = append(out, auditRec{r.Type, r.SessionID, r.Agent, r.Target, d})
			after = r.Seq
		}
	}
}

// Every statement is in the audit log with decision, rule, agent and
// context, linked to its result, and the chain verifies.
func TestAuditRecordsEveryStatement(t *testing.T) {
	ctx := context.Background()
	tok, c := token(t, "ci-bot", time.Hour)
	conn, err := pgx.Connect(ctx, dsn(tok, "shop", "require")+" application_name=audit-test")
	if err != nil {
		t.Fatal(err)
	}
	mark := marker(t)
	conn.Exec(ctx, mark+" SELECT count(*) FROM orders")
	conn.Exec(ctx, mark+" DROP TABLE orders")
	conn.Close(ctx)
	time.Sleep(100 * time.Millisecond)
	var start, read, denied, result, end bool
	var session string
	for _, r := range auditRecords(t) {
		switch r.Type {
		case audit.TypeSessionStart:
			if r.Data["token_id"] == c.ID {
				session = r.SessionID
				ctxs, _ := r.Data["context"].(map[string]any)
				att, _ := ctxs["attested"].(map[string]any)
				cl, _ := ctxs["claimed"].(map[string]any)
				start = att["ticket"] == "OPS-12" && cl["application_name"] == "audit-test" && r.Agent == "ci-bot"
			}
		case audit.TypeCommand:
			if r.SessionID != session || session == "" {
				continue
			}
			cmds, _ := r.Data["commands"].([]any)
			text, _ := cmds[0].(map[string]any)["text"].(string)
			if strings.Contains(text, "SELECT count(*)") && r.Data["decision"] == "allow" && r.Data["rule"] == "reads" {
				read = true
			}
			if strings.Contains(text, "DROP TABLE") && r.Data["decision"] == "deny" && r.Data["rule"] == "no-ddl" {
				denied = true
			}
		case audit.TypeResult:
			if r.SessionID == session && r.Data["rows"] == float64(1) {
				result = true
			}
		case audit.TypeSessionEnd:
			if r.SessionID == session && r.Data["statements"] == float64(2) && r.Data["denied"] == float64(1) {
				end = true
			}
		}
	}
	if !start || !read || !denied || !result || !end {
		t.Fatalf("audit incomplete: start=%v read=%v denied=%v result=%v end=%v", start, read, denied, result, end)
	}
	rep, err := audit.Verify(ctx, env.st, env.auth.PublicKeys())
	if err != nil || rep.BrokenAt != 0 {
		t.Fatalf("chain: %+v %v", rep, err)
	}
}

// When the audit store cannot take the record, the command is refused and
// never reaches PostgreSQL (G06).
func TestAuditFailureRefuses(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, "shop")
	env.st.setFail(true)
	mark := marker(t)
	_, err := conn.Exec(ctx, mark+" SELECT 1")
	env.st.setFail(false)
	if pgCode(err) != "58000" || !strings.Contains(err.Error(), "audit") {
		t.Fatalf("want refusal for unavailable audit, got %v", err)
	}
	if serverSaw(t, mark) {
		t.Fatal("unaudited statement reached PostgreSQL")
	}
	if _, err := conn.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("session unusable after the store recovered: %v", err)
	}
}

// The upstream password appears in no error, no audit record and no log.
func TestUpstreamPasswordNeverLeaks(t *testing.T) {
	for _, r := range auditRecords(t) {
		b, _ := json.Marshal(r)
		if strings.Contains(string(b), upstreamPassword) {
			t.Fatalf("audit record holds the upstream password: %s", b)
		}
	}
	conn := connect(t, "shop")
	_, err := conn.Exec(context.Background(), "SELECT current_setting('password_encryption'), pg_read_file('pg_hba.conf')")
	if err != nil && strings.Contains(err.Error(), upstreamPassword) {
		t.Fatal("error holds the upstream password")
	}
}
