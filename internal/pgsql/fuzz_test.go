package pgsql

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weir-gw/weir/internal/command"
)

// FuzzClassify: whatever the text, Classify returns commands or a
// ParseError/ClassifyError, never panics nor reports an internal error, and
// every command is complete and cut from the text it came from.
func FuzzClassify(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	// Every statement of the golden files seeds the corpus too.
	files, _ := filepath.Glob(filepath.Join("testdata", "classify", "*.sqltest"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		for _, block := range strings.Split(string(data), "\n"+caseMarker)[1:] {
			_, rest, _ := strings.Cut(block, "\n")
			sql, _, _ := strings.Cut(rest, "\n"+separator+"\n")
			f.Add(sql)
		}
	}
	f.Fuzz(func(t *testing.T, sql string) {
		cmds, err := Classify(sql)
		if err != nil {
			var pe *ParseError
			var ce *ClassifyError
			switch {
			case errors.As(err, &pe):
				if pe.Position < 0 || pe.Position > len(sql)+1 {
					t.Fatalf("Position %d outside a text of %d bytes", pe.Position, len(sql))
				}
			case errors.As(err, &ce):
				if strings.Contains(ce.Reason, "internal error") {
					t.Fatalf("Classify(%q): %v", sql, err)
				}
			default:
				t.Fatalf("Classify(%q): error of type %T: %v", sql, err, err)
			}
			if cmds != nil {
				t.Fatalf("commands with an error: %+v", cmds)
			}
			return
		}
		for _, c := range cmds {
			checkCommand(t, sql, c)
		}
	})
}

func checkCommand(t *testing.T, sql string, c command.Command) {
	t.Helper()
	if c.Protocol != Protocol || c.Verb == "" || len(c.Fingerprint) != 16 {
		t.Fatalf("incomplete command for %q: %+v", sql, c)
	}
	if c.Kind == "" && (c.Verb != "EXECUTE" || c.Prepared == "") {
		t.Fatalf("empty kind outside EXECUTE, for %q: %+v", sql, c)
	}
	if c.Text == "" || !strings.Contains(sql, c.Text) {
		t.Fatalf("Text %q is not part of %q", c.Text, sql)
	}
	seen := map[command.Risk]bool{}
	for _, r := range c.Risks {
		if seen[r] {
			t.Fatalf("duplicate risk %s for %q", r, sql)
		}
		seen[r] = true
	}
	for _, list := range [][]string{c.Reads, c.Writes, c.Functions} {
		names := map[string]bool{}
		for _, n := range list {
			if n == "" || names[n] {
				t.Fatalf("empty or duplicate name %q in %q for %q", n, list, sql)
			}
			names[n] = true
		}
	}
}

// fuzzSeeds are the corpus strings and a few shapes the parser finds hard.
var fuzzSeeds = []string{
	"SELECT 1; DROP TABLE users;",
	"COMMIT; SET TRANSACTION READ WRITE; DELETE FROM users",
	"SET default_transaction_read_only=off",
	"SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
	"PREPARE p AS DELETE FROM users; EXECUTE p; DEALLOCATE p",
	"/* x */ DELETE FROM t",
	"-- x\nDELETE FROM t",
	"(DELETE FROM t)",
	"dElEtE FROM users",
	"DELETE\u00a0FROM users",
	"DELETE\tFROM\tusers",
	`SELECT * FROM U&"\0075sers"`,
	`SELECT * FROM "Users"`,
	"SELECT '\xff'",
	"SELECT $x$; DROP TABLE t; $x$",
	"DO $$BEGIN EXECUTE format('DELETE FROM %I','users'); END$$",
	"SELECT set_config('role','x',false), pg_terminate_backend(1), dblink_exec('a','b'), cleanup()",
	"WITH d AS (DELETE FROM users RETURNING *) SELECT * FROM d",
	"SELECT * INTO stash FROM users; CREATE TABLE s AS SELECT 1",
	"COPY users TO PROGRAM 'curl x'",
	"COPY (SELECT ssn FROM users) TO STDOUT",
	"SELECT pg_read_file('/etc/passwd'), pg_ls_dir('.'), lo_export(1,'/x'), azure_storage.blob_put('a')",
	"SET ROLE x; RESET ROLE; SET SESSION AUTHORIZATION y; SELECT set_config('search_path','evil,public',false)",
	"CREATE FUNCTION public.lower(text) RETURNS text AS 'select 1' LANGUAGE sql",
	"SELECT most_common_vals, histogram_bounds FROM pg_stats WHERE attname='ssn'",
	"EXPLAIN ANALYZE EXECUTE p(1); CREATE TABLE t AS EXECUTE p",
	"SELECT " + strings.Repeat("(", 200) + "1" + strings.Repeat(")", 200),
	"SELECT 1 FROM t WHERE a = ANY(ARRAY[1,2]) AND b OPERATOR(public.===) c",
	";;;",
	"",
}
