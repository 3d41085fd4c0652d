package e2e

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// COPY FROM STDIN into an allowed table streams through; COPY TO STDOUT of
// a readable table returns the rows; COPY into a table the policy does not
// allow is refused before any data is sent upstream.
func TestCopyBothWays(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, "shop")
	note := "copy-" + marker(t)
	n, err := conn.CopyFrom(ctx, pgx.Identifier{"scratch"}, []string{"note"}, pgx.CopyFromRows([][]any{{note}, {note}, {note}}))
	if err != nil || n != 3 {
		t.Fatalf("copy from: n=%d err=%v", n, err)
	}
	var got int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM scratch WHERE note = $1", note).Scan(&got); err != nil || got != 3 {
		t.Fatalf("rows after copy: %d %v", got, err)
	}
	var out bytes.Buffer
	tag, err := conn.PgConn().CopyTo(ctx, &out, "COPY (SELECT id, email FROM customers ORDER BY id LIMIT 3) TO STDOUT")
	// COPY TO data is masked like result rows (corpus P15).
	if err != nil || tag.RowsAffected() != 3 || !strings.Contains(out.String(), "1\tc****@e*****.com\n") || strings.Contains(out.String(), "@example.com") {
		t.Fatalf("copy to: %q %v %v", out.String(), tag, err)
	}
	_, err = conn.CopyFrom(ctx, pgx.Identifier{"orders"}, []string{"customer_id", "total_cents"}, pgx.CopyFromRows([][]any{{1, 1}}))
	if pgCode(err) != "42501" {
		t.Fatalf("copy into orders: %v", err)
	}
	if _, err := conn.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("session unusable after refused COPY: %v", err)
	}
}

// A wrong upstream credential gives the agent a generic error with a
// reference, never the credential or the server's detail.
func TestUpstreamFailureIsOpaque(t *testing.T) {
	t.Setenv("E2E_PG_PASSWORD", "wrong-"+upstreamPassword)
	tok, _ := token(t, "ci-bot", time.Hour)
	_, err := pgconn.Connect(context.Background(), dsn(tok, "shop", "require"))
	if err == nil {
		t.Fatal("connected with a wrong upstream password")
	}
	msg := err.Error()
	if !strings.Contains(msg, `could not connect to target "shop"`) || !strings.Contains(msg, "reference s_") {
		t.Fatalf("message: %s", msg)
	}
	if strings.Contains(msg, upstreamPassword) || strings.Contains(msg, "weir_agent") {
		t.Fatalf("upstream detail leaked to the agent: %s", msg)
	}
	if strings.Contains(env.logBuf.String(), upstreamPassword) {
		t.Fatal("the upstream password is in weir's log")
	}
}
