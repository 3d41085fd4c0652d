package e2e

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Error oracles (corpus M05, counted as M04: deny). Whether a statement
// failed is visible to the agent (weir keeps the SQLSTATE, withholds the
// text), so with a clean WHERE id = N a function that fails depending on a
// masked value reads it a few statements per character. weir lets a
// masked value flow only into functions, operators and casts that cannot
// fail for any value, and refuses the rest before the server sees them.

// The oracle is real: straight to PostgreSQL, sqrt(ascii(ninth digit)-52)
// fails exactly for the people whose ssn ends in a digit below 4; through
// weir every such statement is refused the same way, whatever the row.
func TestLineageErrorOracleRefused(t *testing.T) {
	ctx := context.Background()
	direct, err := pgx.Connect(ctx, env.pg.DSN("shop"))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close(ctx)
	oracle := "SELECT sqrt(ascii(substr(ssn, 9, 1)) - 52) FROM people WHERE id = "
	failed := map[string]bool{}
	for _, id := range []string{"2", "7"} {
		_, err := direct.Exec(ctx, oracle+id)
		failed[id] = err != nil
	}
	if !failed["2"] || failed["7"] {
		t.Fatalf("the oracle does not work against PostgreSQL directly (id 2 failed: %v, id 7 failed: %v): the test proves nothing", failed["2"], failed["7"])
	}

	conn := connect(t, "shop")
	// Admitted first: weir reuses a plan for texts of the same shape
	// (other constants) unless admitting it read a constant, and
	// '1234\' below has the shape of '1%'.
	if _, err := conn.Exec(ctx, "SELECT ssn LIKE '1%' FROM people WHERE id = 1", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatalf("LIKE with a valid pattern: %v", err)
	}
	queries := []struct{ sql, column string }{
		{oracle + "2", "people.ssn"},
		{oracle + "7", "people.ssn"},
		{"SELECT sqrt(length(ssn) - 10) FROM people WHERE id = 1", "people.ssn"},
		{"SELECT chr(length(email) * 100000) FROM people WHERE id = 1", "people.email"},
		{"SELECT make_date(2000, 1, length(email)) FROM people WHERE id = 1", "people.email"},
		{"SELECT ln(length(ssn) - 9) FROM people WHERE id = 1", "people.ssn"},
		{"SELECT ssn::int FROM people WHERE id = 1", "people.ssn"},
		{"SELECT substr(ssn, 9, 1)::int FROM people WHERE id = 1", "people.ssn"},
		{"SELECT email::int FROM people WHERE id = 1", "people.email"},
		{"SELECT CAST(phone AS numeric) FROM people WHERE id = 1", "people.phone"},
		{"SELECT length(ssn) * 2147483647 FROM people WHERE id = 1", "people.ssn"},
		{"SELECT to_date(ssn, 'YYYYMMDD') FROM people WHERE id = 1", "people.ssn"},
		{"SELECT repeat(email, 100000000) FROM people WHERE id = 1", "people.email"},
		{"SELECT substr(NULLIF(ssn < '123450005', true)::text, 1, -1) FROM people WHERE id = 1", "people.ssn"},
		{"SELECT coalesce(NULLIF(ssn < '123450005', true), 1 / (id - 1) = 1) FROM people WHERE id = 1", "people.ssn"},
		{"SELECT (ssn < '123450005') OR 1 / (id - 1) = 1 FROM people WHERE id = 1", "people.ssn"},
		{"SELECT ssn LIKE '1234\\' FROM people WHERE id = 1", "people.ssn"},
		{"SELECT to_tsquery('simple', translate(substr(ssn, 6, 4), '01234', E' \\t\\n\\r\\f')) FROM people WHERE id = 2", "people.ssn"},
		{"SELECT (profile->>'nick')::int FROM people WHERE id = 1", "people.profile"},
	}
	for _, q := range queries {
		mark := marker(t)
		for _, m := range modes {
			_, _, err := readAll(t, conn, mark+q.sql, m.opts)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "42501" || !strings.Contains(pe.Message, "error oracle") || !strings.Contains(pe.Message, q.column) {
				t.Errorf("%s [%s]: want refusal 42501 naming %s as an error oracle, got %v", q.sql, m.name, q.column, err)
			}
		}
		if serverSaw(t, mark) {
			t.Errorf("%s: reached the server", q.sql)
		}
	}
	out, err := psql(t, dsn(mustToken(t), "shop", "require"), oracle+"2")
	if err == nil || !strings.Contains(out, "error oracle") {
		t.Errorf("psql: %v %s", err, out)
	}
	// Arithmetic and casts over clean columns, next to masked ones, run.
	raw, _, err := readAll(t, conn, "SELECT id + 1, sqrt(salary), salary::numeric / 3, full_name::text, email FROM people WHERE id = 1", nil)
	if err != nil || len(raw) != 5 {
		t.Fatalf("clean arithmetic: %v %d", err, len(raw))
	}
	assertNoLeak(t, "clean arithmetic", bytes.Join(raw, []byte{0}))
}

// Transforms that cannot fail still run and come back masked: the clear
// result, computed straight against PostgreSQL, never reaches the agent.
func TestLineageTotalTransformsMasked(t *testing.T) {
	ctx := context.Background()
	direct, err := pgx.Connect(ctx, env.pg.DSN("shop"))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close(ctx)
	conn := connect(t, "shop")
	queries := []string{
		"SELECT lower(email) FROM people WHERE id = 1",
		"SELECT md5(email) FROM people WHERE id = 1",
		"SELECT email || 'x' FROM people WHERE id = 1",
		"SELECT row_to_json(c)::text FROM people c WHERE id = 1",
		"SELECT substr(iban, 1, 4) FROM accounts WHERE id = 1",
		"SELECT encode(sha256(convert_to(email, 'UTF8')), 'hex') FROM people WHERE id = 1",
		"SELECT lpad(ssn, 12, '*') FROM people WHERE id = 1",
		"SELECT split_part(email, '@', 1) FROM people WHERE id = 1",
		"SELECT replace(ssn, '0', '') FROM people WHERE id = 1",
		"SELECT concat_ws('/', upper(email), phone) FROM people WHERE id = 1",
		"SELECT email::varchar(6) FROM people WHERE id = 1",
		"SELECT coalesce(phone, 'none') FROM people WHERE id = 1",
		"SELECT length(ssn)::text FROM people WHERE id = 1",
		"SELECT profile->>'nick' FROM people WHERE id = 1",
		"SELECT string_agg(ssn, ',') FROM people WHERE id < 3",
		// Total in a UTF-8 database (weir reads server_encoding).
		"SELECT ascii(substr(ssn, 9, 1))::text FROM people WHERE id = 2",
		"SELECT encode(convert_to(ssn, 'UTF8'), 'base64') FROM people WHERE id = 1",
	}
	for _, q := range queries {
		var clear string
		if err := direct.QueryRow(ctx, q).Scan(&clear); err != nil {
			t.Fatalf("%s directly: %v", q, err)
		}
		for _, m := range modes {
			raw, _, err := readAll(t, conn, q, m.opts)
			if err != nil {
				t.Errorf("%s [%s]: %v", q, m.name, err)
				continue
			}
			if len(raw) != 1 {
				t.Errorf("%s [%s]: %d values", q, m.name, len(raw))
				continue
			}
			if string(raw[0]) == clear || (len(clear) >= 4 && bytes.Contains(raw[0], []byte(clear))) {
				t.Errorf("%s [%s]: came back in clear: %q", q, m.name, raw[0])
			}
			assertNoLeak(t, q+" ["+m.name+"]", raw[0])
		}
	}
}
