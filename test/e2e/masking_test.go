package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/weir-gw/weir/internal/audit"
)

// Values leave weir masked by content, whatever the client asked for
// (corpus M05, M07, M08).
func TestMaskingByContent(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, "shop")
	accountKey := strings.Repeat("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==", 1)
	secretNote := "DefaultEndpointsProtocol=https;AccountName=lake;AccountKey=" + accountKey + ";EndpointSuffix=core.windows.net"
	if _, err := conn.Exec(ctx, "INSERT INTO scratch(note) VALUES ($1)", secretNote); err != nil {
		t.Fatal(err)
	}

	check := func(name, got string) {
		t.Helper()
		if strings.Contains(got, "@example.com") || strings.Contains(got, accountKey) {
			t.Errorf("%s: unmasked value reached the client: %q", name, got)
		}
	}
	var email string
	// Extended protocol, text result format.
	if err := conn.QueryRow(ctx, "SELECT email FROM customers WHERE id = $1", 7).Scan(&email); err != nil {
		t.Fatal(err)
	}
	check("extended text", email)
	if email != "c****@e*****.com" {
		t.Errorf("masked form %q", email)
	}
	// Binary result format (M07).
	if err := conn.QueryRow(ctx, "SELECT email FROM customers WHERE id = $1", pgx.QueryResultFormats{pgx.BinaryFormatCode}, 7).Scan(&email); err != nil {
		t.Fatal(err)
	}
	check("extended binary", email)
	// Derived values are caught by content too (M01).
	for _, q := range []string{"SELECT lower(email) FROM customers WHERE id = 3", "SELECT email || '' FROM customers WHERE id = 3", "SELECT row_to_json(c)::text FROM customers c WHERE id = 3"} {
		var v string
		if err := conn.QueryRow(ctx, q).Scan(&v); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		check(q, v)
	}
	// A secret in free text.
	var note string
	if err := conn.QueryRow(ctx, "SELECT note FROM scratch WHERE note LIKE 'DefaultEndpoints%' LIMIT 1").Scan(&note); err != nil {
		t.Fatal(err)
	}
	check("connection string", note)
	if !strings.Contains(note, "AccountName=lake") {
		t.Errorf("masking destroyed the non-secret parts: %q", note)
	}
	// The error that prints the value (M05).
	_, err := conn.Exec(ctx, "SELECT email::int FROM customers WHERE id = 1")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "22P02" {
		t.Fatalf("cast error: %v", err)
	}
	check("error message", pe.Message)
	if !strings.Contains(pe.Message, "c****@e*****.com") {
		t.Errorf("error message %q", pe.Message)
	}
}

// The audit log says how many values were masked, per detector.
func TestMaskedCountsAudited(t *testing.T) {
	ctx := context.Background()
	tok, c := token(t, "ci-bot", time.Hour)
	conn, err := pgx.Connect(ctx, dsn(tok, "shop", "require"))
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := conn.Query(ctx, "SELECT email FROM customers ORDER BY id LIMIT 4")
	rows.Close()
	conn.Close(ctx)
	time.Sleep(100 * time.Millisecond)
	var session string
	found := false
	for _, r := range auditRecords(t) {
		if r.Type == audit.TypeSessionStart && r.Data["token_id"] == c.ID {
			session = r.SessionID
		}
		if r.Type == audit.TypeResult && r.SessionID == session && session != "" {
			m, _ := r.Data["masked"].(map[string]any)
			if m["email"] == float64(4) {
				found = true
			}
		}
	}
	if !found {
		t.Fatal("no result record with masked email count 4")
	}
}

// The audit log keeps the rows a real psql session saw, masked exactly as
// the client got them (replay shows what the agent saw, never more).
func TestRecordingMatchesWhatClientSaw(t *testing.T) {
	tok, c := token(t, "ci-bot", time.Hour)
	out, err := psql(t, dsn(tok, "shop", "require"), "SELECT id, email FROM customers ORDER BY id LIMIT 3")
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var session string
	var seen []string
	var cols []any
	for _, r := range auditRecords(t) {
		if r.Type == audit.TypeSessionStart && r.Data["token_id"] == c.ID {
			session = r.SessionID
		}
		if r.Type == audit.TypeResult && session != "" && r.SessionID == session {
			cols, _ = r.Data["columns"].([]any)
			rows, _ := r.Data["rows_seen"].([]any)
			for _, row := range rows {
				vals := row.([]any)
				seen = append(seen, vals[0].(string)+"|"+vals[1].(string))
			}
		}
	}
	if got, want := strings.Join(seen, "\n")+"\n", out; got != want {
		t.Fatalf("recorded rows:\n%s\npsql printed:\n%s", got, want)
	}
	if len(cols) != 2 || cols[1] != "email" || strings.Contains(out, "@example.com") {
		t.Fatalf("columns %v, output %q", cols, out)
	}
}

// A weir token pasted into data never comes back readable (corpus G02).
func TestWeirTokenMaskedInResults(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, "shop")
	leaked, _ := token(t, "ci-bot", time.Hour)
	if _, err := conn.Exec(ctx, "INSERT INTO scratch(note) VALUES ($1)", "my token is "+leaked); err != nil {
		t.Fatal(err)
	}
	var note string
	if err := conn.QueryRow(ctx, "SELECT note FROM scratch WHERE note LIKE 'my token is %' ORDER BY id DESC LIMIT 1").Scan(&note); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(note, leaked) || strings.Contains(note, strings.Split(leaked, ".")[2]) || !strings.HasPrefix(note, "my token is ") {
		t.Fatalf("weir token not masked: %q", note)
	}
}
