package e2e

// Bypasses found in review, kept as regression tests (corpus P04/P06
// families): ways to run a statement that was refused or is waiting for
// approval, by reaching the server-side object through another name.

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

type rawc struct {
	t  *testing.T
	c  net.Conn
	fe *pgproto3.Frontend
}

func rawConnect(t *testing.T, addr string) *rawc {
	t.Helper()
	tok, _ := token(t, "ci-bot", time.Hour)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &rawc{t: t, c: c, fe: pgproto3.NewFrontend(c, c)}
	r.fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "ci-bot", "database": "shop"}})
	r.fe.Flush()
	for {
		m, err := r.fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		switch m := m.(type) {
		case *pgproto3.AuthenticationCleartextPassword:
			r.fe.Send(&pgproto3.PasswordMessage{Password: tok})
			r.fe.Flush()
		case *pgproto3.ErrorResponse:
			t.Fatal(m.Message)
		case *pgproto3.ReadyForQuery:
			return r
		}
	}
}

func (r *rawc) send(ms ...pgproto3.FrontendMessage) {
	for _, m := range ms {
		r.fe.Send(m)
	}
	if err := r.fe.Flush(); err != nil {
		r.t.Fatal(err)
	}
}

// until reads n ReadyForQuery and returns the SQLSTATEs of the errors seen.
func (r *rawc) until(n int) []string {
	var codes []string
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for n > 0 {
		m, err := r.fe.Receive()
		if err != nil {
			r.t.Fatalf("connection lost: %v", err)
		}
		switch m := m.(type) {
		case *pgproto3.ErrorResponse:
			codes = append(codes, m.Code)
			r.t.Logf("  <- Error %s %s", m.Code, m.Message)
		case *pgproto3.DataRow:
			r.t.Logf("  <- DataRow %q", m.Values)
		case *pgproto3.CommandComplete:
			r.t.Logf("  <- CommandComplete %s", m.CommandTag)
		case *pgproto3.ReadyForQuery:
			r.t.Logf("  <- RFQ %c", m.TxStatus)
			n--
		default:
			r.t.Logf("  <- %T", m)
		}
	}
	return codes
}

func upstreamName(t *testing.T, id int) string {
	ctx := context.Background()
	c, err := pgx.Connect(ctx, env.pg.DSN("shop"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var s string
	if err := c.QueryRow(ctx, fmt.Sprintf("SELECT full_name FROM customers WHERE id=%d", id)).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func checkUnchanged(t *testing.T, id int) {
	t.Helper()
	if got := upstreamName(t, id); strings.HasPrefix(got, "pwned") {
		t.Fatalf("customers[%d] was changed by a statement that needed approval: %q", id, got)
	}
}

// A protocol portal bound to a statement under review cannot be run with
// SQL FETCH/MOVE (portals and cursors share one namespace upstream).
func TestBypassFetchOfProtocolPortal(t *testing.T) {
	_, addr := approvalWorld(t, "async")
	r := rawConnect(t, addr)
	r.send(&pgproto3.Query{String: "BEGIN"})
	r.until(1)
	r.send(&pgproto3.Parse{Name: "s", Query: "UPDATE customers SET full_name='pwned-fetch' WHERE id=2 RETURNING id"},
		&pgproto3.Bind{DestinationPortal: "P", PreparedStatement: "s"}, &pgproto3.Sync{})
	r.until(1)
	for _, q := range []string{`FETCH ALL FROM "P"`, `MOVE ALL IN "P"`} {
		r.send(&pgproto3.Query{String: q})
		if codes := r.until(1); len(codes) == 0 {
			t.Errorf("%s was not refused", q)
		}
	}
	r.send(&pgproto3.Query{String: "ROLLBACK"})
	r.until(1)
	checkUnchanged(t, 2)
}

// A name cannot be re-Parsed to a harmless statement while the server
// keeps the earlier one under that name.
func TestBypassNameReuse(t *testing.T) {
	_, addr := approvalWorld(t, "async")
	r := rawConnect(t, addr)
	r.send(&pgproto3.Parse{Name: "s1", Query: "UPDATE customers SET full_name='pwned-reuse' WHERE id=3"}, &pgproto3.Sync{})
	r.until(1)
	r.send(&pgproto3.Parse{Name: "s1", Query: "SELECT 1"}, &pgproto3.Sync{})
	r.until(1)
	r.send(&pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	r.until(1)
	checkUnchanged(t, 3)
}

// Close and re-Parse skipped by the server after an error in the same
// batch cannot leave weir and the server disagreeing about a name.
func TestBypassSkippedClose(t *testing.T) {
	_, addr := approvalWorld(t, "async")
	r := rawConnect(t, addr)
	r.send(&pgproto3.Parse{Name: "s2", Query: "UPDATE customers SET full_name='pwned-skip' WHERE id=4"}, &pgproto3.Sync{})
	r.until(1)
	r.send(&pgproto3.Parse{Name: "e", Query: "SELECT 1/0"}, &pgproto3.Bind{PreparedStatement: "e"}, &pgproto3.Execute{},
		&pgproto3.Close{ObjectType: 'S', Name: "s2"}, &pgproto3.Parse{Name: "s2", Query: "SELECT 2"}, &pgproto3.Sync{})
	r.until(1)
	r.send(&pgproto3.Bind{PreparedStatement: "s2"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	r.until(1)
	checkUnchanged(t, 4)
}

// SQL PREPARE cannot take a protocol statement's name (one namespace).
func TestBypassSQLPrepareCollision(t *testing.T) {
	_, addr := approvalWorld(t, "async")
	r := rawConnect(t, addr)
	r.send(&pgproto3.Parse{Name: "s3", Query: "UPDATE customers SET full_name='pwned-collide' WHERE id=5"}, &pgproto3.Sync{})
	r.until(1)
	r.send(&pgproto3.Query{String: "PREPARE s3 AS SELECT 1"})
	r.until(1)
	r.send(&pgproto3.Query{String: "EXECUTE s3"})
	r.until(1)
	checkUnchanged(t, 5)
}

// EXECUTE after another statement in one message does not change the
// classifier's shared cache (other sessions' verdicts would drift).
func TestExecuteDoesNotMutateSharedClassification(t *testing.T) {
	r := rawConnect(t, env.addr)
	r.send(&pgproto3.Query{String: "PREPARE q AS SELECT id FROM customers"})
	r.until(1)
	for i := 0; i < 3; i++ {
		r.send(&pgproto3.Query{String: "SELECT 1; EXECUTE q"})
		r.until(1)
	}
	var last []any
	for _, rec := range auditRecords(t) {
		if rec.Type != "command" {
			continue
		}
		cmds, _ := rec.Data["commands"].([]any)
		if len(cmds) == 2 && cmds[1].(map[string]any)["text"] == "EXECUTE q" {
			last, _ = cmds[1].(map[string]any)["reads"].([]any)
		}
	}
	if len(last) != 1 || last[0] != "customers" {
		t.Fatalf("EXECUTE q recorded reads %v after three runs, want [customers]", last)
	}
}

// After a failed batch, weir does not trust name changes the server may
// have skipped: what runs is always what was decided and audited.
func TestSkippedChangesAreNotTrusted(t *testing.T) {
	r := rawConnect(t, env.addr)
	note := "skip-" + marker(t)
	r.send(&pgproto3.Parse{Name: "s2", Query: "INSERT INTO scratch(note) VALUES ('" + note + "')"}, &pgproto3.Sync{})
	r.until(1)
	r.send(&pgproto3.Parse{Name: "e", Query: "SELECT 1/0"}, &pgproto3.Bind{PreparedStatement: "e"}, &pgproto3.Execute{},
		&pgproto3.Close{ObjectType: 'S', Name: "s2"}, &pgproto3.Parse{Name: "s2", Query: "SELECT 2"}, &pgproto3.Sync{})
	r.until(1)
	r.send(&pgproto3.Bind{PreparedStatement: "s2"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if codes := r.until(1); len(codes) != 1 || codes[0] != "26000" {
		t.Fatalf("use of a name changed in a failed batch: errors %v, want a 26000 refusal", codes)
	}
	if serverSaw(t, note) && strings.Count(mustLog(t), note) > 1 {
		t.Fatal("the INSERT ran while weir recorded SELECT 2")
	}
	// The unnamed statement and portal follow the same rule.
	r.send(&pgproto3.Parse{Query: "SELECT 3"}, &pgproto3.Sync{})
	r.until(1)
	r.send(&pgproto3.Parse{Name: "e2", Query: "SELECT 1/0"}, &pgproto3.Bind{PreparedStatement: "e2"}, &pgproto3.Execute{},
		&pgproto3.Parse{Query: "SELECT 4"}, &pgproto3.Sync{})
	r.until(1)
	r.send(&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if codes := r.until(1); len(codes) != 1 || codes[0] != "26000" {
		t.Fatalf("unnamed statement changed in a failed batch: errors %v", codes)
	}
	// A clean batch makes names trustworthy again, and pgx-style flows
	// (Parse first in its batch) never wait.
	r.send(&pgproto3.Parse{Query: "SELECT 5"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if codes := r.until(1); len(codes) != 0 {
		t.Fatalf("fresh unnamed statement refused: %v", codes)
	}
}

func mustLog(t *testing.T) string {
	t.Helper()
	l, err := env.pg.Log()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// A simple Query inside an unfinished extended batch is a protocol
// violation weir refuses (the server could skip it after an error, and
// answers would no longer match requests).
func TestQueryInsideExtendedBatchRefused(t *testing.T) {
	r := rawConnect(t, env.addr)
	r.send(&pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Query{String: "SELECT 2"})
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		m, err := r.fe.Receive()
		if err != nil {
			t.Fatalf("connection ended without weir's error: %v", err)
		}
		if e, ok := m.(*pgproto3.ErrorResponse); ok {
			if e.Severity != "FATAL" || !strings.Contains(e.Message, "send Sync first") {
				t.Fatalf("got %s %s", e.Severity, e.Message)
			}
			return
		}
	}
}

// A statement under review sits on the server under a name only weir
// uses; knowing that name (pg_prepared_statements shows it) reaches it
// neither by SQL EXECUTE nor by a protocol Parse/Bind of the same name.
func TestHiddenReviewStatementUnreachable(t *testing.T) {
	_, addr := approvalWorld(t, "async")
	r := rawConnect(t, addr)
	r.send(&pgproto3.Parse{Name: "s9", Query: "UPDATE customers SET full_name='pwned-hidden' WHERE id=6"}, &pgproto3.Sync{})
	if codes := r.until(1); len(codes) != 0 {
		t.Fatalf("Parse under review: %v", codes)
	}
	// The agent can list it in its own session.
	var hidden string
	r.send(&pgproto3.Query{String: "SELECT name FROM pg_prepared_statements WHERE name LIKE 'weir%'"})
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for hidden == "" {
		m, err := r.fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := m.(*pgproto3.DataRow); ok {
			hidden = string(d.Values[0])
		}
	}
	r.until(1)
	r.send(&pgproto3.Query{String: "EXECUTE " + hidden})
	if codes := r.until(1); len(codes) == 0 {
		t.Fatal("SQL EXECUTE of the hidden statement was not refused")
	}
	r.send(&pgproto3.Bind{PreparedStatement: hidden}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if codes := r.until(1); len(codes) == 0 {
		t.Fatal("Bind of the hidden statement by name was not refused")
	}
	r.send(&pgproto3.Parse{Name: hidden, Query: "SELECT 1"}, &pgproto3.Sync{})
	if codes := r.until(1); len(codes) == 0 {
		t.Fatal("Parse of a reserved name was not refused")
	}
	checkUnchanged(t, 6)
}
