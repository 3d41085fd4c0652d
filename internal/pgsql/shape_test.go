package pgsql

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/pganalyze/pg_query_go/v6/parser"

	"github.com/weir-gw/weir/internal/command"
)

// The shape cache must never answer what a full parse of the same text
// would not: every test here compares a Classifier warmed with one text and
// asked for another with a fresh Classify of the other.

// shapeCases are statements that stress the shape key: constants whose
// values the grammar checks or turns into structure, constants weir reads,
// Unicode escapes, statement boundaries, signs.
var shapeCases = []string{
	// Hot paths: must be shape-cached.
	"SELECT abalance FROM pgbench_accounts WHERE aid = 12345;",
	"UPDATE pgbench_accounts SET abalance = abalance + -4321 WHERE aid = 12345;",
	"INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 2, 3, 4, CURRENT_TIMESTAMP);",
	"SELECT * FROM t WHERE a IN (1, 2, 3) AND b = 'x' AND c > 1.5 AND d = B'101' AND e = X'FF'",
	"DELETE FROM t WHERE id = 7",
	"SELECT a FROM t ORDER BY 1 LIMIT 10 OFFSET 5",
	"SELECT a FROM t FETCH FIRST 5 ROWS ONLY",
	"SELECT a FROM t FETCH FIRST -5 ROWS ONLY",
	"SELECT now() - interval '7 days', interval '1' day, interval(3) '1 day', timestamp(3) '2020-01-01', date '2020-01-01'",
	"SELECT '1'::varchar(10), 1::bit(3), 1::numeric(10, 2), 'x'::text",
	"SELECT - 5, - - 5, 5 - -3, -(5), +5, - 2147483648, -1.5",
	"SELECT 0x1F, 1_000, 0o17, 0b101, 2147483647, 2147483648, .5, 1e3",
	"SELECT E'\\x41', 'a'\n'b', $$dollar$$, $q$it's$q$, 'it''s'",
	"SELECT $1 + 1 FROM t WHERE x = $2 AND y = 'a'",
	"SELECT 1; SELECT 2",
	";;SELECT 1;; SELECT 'x' ;",
	"  /* lead */ SELECT 1 -- one\n ; /* mid */ SELECT 'two' /* end */ ; -- tail",
	"SELECT 1 AT TIME ZONE 'UTC', EXTRACT('year' FROM now()), EXTRACT(year FROM now())",
	"SELECT 'a' LIKE 'b' ESCAPE 'c', 'x' COLLATE \"C\", xmlparse(document '<a/>')",
	"SELECT * FROM t WHERE a = ANY('{1,2}') OR b <> ALL('{3}')",
	"SELECT x FROM t TABLESAMPLE SYSTEM (10) REPEATABLE (5)",
	"WITH x AS (SELECT 1 AS a) SELECT * FROM x WHERE a = 'q'",
	"INSERT INTO t VALUES (1, 'a'), (2, 'b') ON CONFLICT (id) DO UPDATE SET v = 'c'",
	"CREATE TABLE t (a int DEFAULT 5, b text DEFAULT 'x' CHECK (b <> 'y'), c varchar(20))",
	"CREATE INDEX ON t (a) WITH (fillfactor = 70)",
	"ALTER TABLE t SET (fillfactor = 70)",
	"SELECT * FROM JSON_TABLE('{}'::jsonb, '$' COLUMNS (a int PATH '$.a'))",
	"SELECT * FROM JSON_TABLE('{}'::jsonb, ('$') COLUMNS (a int))",
	"CREATE TABLE p PARTITION OF q FOR VALUES FROM (1) TO (10)",
	"CREATE TABLE p PARTITION OF q FOR VALUES WITH (MODULUS 4, REMAINDER 1)",
	"SELECT current_time(3), localtimestamp(2)",
	"SELECT 1::float(10), 1::float(30)",
	"SELECT 1::float(0)",
	"SELECT 1::float(54)",
	"ALTER TABLE t ALTER COLUMN 1 SET STATISTICS 100",
	"ALTER TABLE t ALTER 0 SET STATISTICS 1",
	"ALTER TABLE t ALTER COLUMN a SET STATISTICS -1",
	"FETCH 5 FROM c",
	"FETCH -5 FROM c",
	"MOVE ABSOLUTE 3 IN c",
	"CREATE SEQUENCE s INCREMENT 5 START -3 CACHE 10",
	"ALTER SEQUENCE s RESTART 1",
	"SELECT * FROM t LIMIT 1, 2",

	// Constants weir reads.
	"SELECT set_config('role', 'x', false)",
	"SELECT set_config('work_mem', '1MB', false)",
	"SELECT set_config('search_path', 'evil,public', false)",
	"SELECT set_config('client_encoding', 'SJIS', false)",
	"SELECT set_config('client_encoding', 'UTF8', false)",
	"SELECT set_config(1, 'x', false)",
	"SELECT pg_catalog.set_config('role', 'x', false)",
	"SELECT set_config('Role'::text, 'x', false)",
	"SELECT nextval('a')",
	"SELECT nextval('b')",
	"SELECT setval('\"A\"', 5)",
	"SELECT nextval('public.s'::regclass)",
	"INSERT INTO t VALUES (nextval('s'), 1)",
	"SET client_encoding = 'UTF8'",
	"SET client_encoding = 'SJIS'",
	"SET client_encoding TO 'utf-8'",
	"SET NAMES 'SJIS'",
	"SET NAMES 'UTF8'",
	"SET standard_conforming_strings = 'off'",
	"SET standard_conforming_strings = 'on'",
	"SET standard_conforming_strings = 0",
	"SET standard_conforming_strings = 1",
	"SET work_mem = '64MB'",
	"SET x = -5",
	"SET x = +5",
	"SET x = -1.5",
	"SET TIME ZONE 'UTC'",
	"SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE",
	"SET SCHEMA 'x'",
	"SET ROLE 'x'",
	"SET SESSION AUTHORIZATION 'x'",
	"SET TRANSACTION SNAPSHOT '000003A1-1'",
	"ALTER SYSTEM SET work_mem = '1MB'",
	"ALTER ROLE r SET search_path = 'x'",
	"ALTER DATABASE d SET client_encoding = 'SJIS'",
	"ALTER DATABASE d SET client_encoding = 'UTF8'",
	"CREATE FUNCTION f() RETURNS int AS $$select 1$$ LANGUAGE sql SET client_encoding = 'SJIS'",
	"BEGIN READ ONLY",
	"BEGIN READ WRITE",
	"SET TRANSACTION READ WRITE",
	"EXPLAIN (ANALYZE 0) DELETE FROM t",
	"EXPLAIN (ANALYZE 1) DELETE FROM t",
	"EXPLAIN (ANALYZE 'off') DELETE FROM t",
	"EXPLAIN (ANALYZE 'on') DELETE FROM t",
	"EXPLAIN (ANALYZE false) DELETE FROM t",
	"EXPLAIN SELECT 1 WHERE 'a' = 'b'",
	"EXPLAIN ANALYZE SELECT 1 WHERE 'a' = 'b'",
	"COPY t FROM 'x'",
	"COPY t FROM 'http://x'",
	"COPY t TO PROGRAM 'curl x'",
	"COPY (SELECT 1 WHERE 'a' = 'b') TO STDOUT WITH (FORMAT csv, DELIMITER ';')",
	"NOTIFY c, 'p'",
	"SELECT pg_notify('c', 'p')",
	"LOAD 'x'",
	"PREPARE TRANSACTION 'x'",
	"COMMIT PREPARED 'x'",
	"COMMENT ON TABLE t IS 'x'",
	"SECURITY LABEL ON TABLE t IS 'x'",
	"CREATE TABLESPACE x LOCATION '/tmp'",
	"ALTER ROLE r PASSWORD 'x'",
	"CREATE ROLE r CONNECTION LIMIT 5",
	"CREATE EXTENSION dblink VERSION '1.0'",
	"CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p",
	"ALTER TYPE e ADD VALUE 'x'",
	"CREATE TYPE e AS ENUM ('a', 'b')",
	"CREATE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql",
	"CREATE FUNCTION f() RETURNS int LANGUAGE 'sql' AS 'select 1'",
	"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END; SELECT 3",
	"CREATE RULE r AS ON INSERT TO t DO (INSERT INTO a VALUES (1); DELETE FROM b WHERE x = 2); SELECT 'z'",
	"DO 'begin end'",
	"DO $$begin end$$",
	"DO LANGUAGE plpgsql 'begin end'",
	"PREPARE p(int) AS SELECT $1 + 5",
	"EXECUTE p(5)",
	"EXPLAIN ANALYZE EXECUTE p(5)",
	"CREATE TABLE x AS EXECUTE p(1)",
	"DEALLOCATE p",
	"SELECT * INTO x FROM t WHERE a = 1",
	"SELECT lo_export(1, '/tmp/x'), pg_read_file('/etc/passwd')",
	"SELECT 1 OPERATOR(pg_catalog.+) 2",

	// Unicode escapes: the escape character is part of the shape.
	`SELECT U&'d\0061t\+000061'`,
	`SELECT U&'d!0061t' UESCAPE '!'`,
	`SELECT U&'d!0061t' UESCAPE '#'`,
	`SELECT U&'d\0061t' UESCAPE '\'`,
	`SELECT * FROM U&"!0075sers" UESCAPE '!'`,
	`SELECT * FROM U&"!0075sers" UESCAPE '#'`,
	`SELECT * FROM U&"\0075sers"`,
	`DELETE FROM U&"!0075sers" UESCAPE '!' WHERE id = 1`,
	`SELECT 'a' UESCAPE '!'`,
	`SELECT U&'\00zz'`,
}

// shapeCached and shapeNotCached pin which texts the shape cache takes: the
// hot paths must be cached, texts whose classification or parse depends on
// a constant must not be.
var shapeCached = []string{
	"SELECT abalance FROM pgbench_accounts WHERE aid = 12345;",
	"UPDATE pgbench_accounts SET abalance = abalance + -4321 WHERE aid = 12345;",
	"INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 2, 3, 4, CURRENT_TIMESTAMP);",
	"SELECT * FROM t WHERE a IN (1, 2, 3) AND b = 'x' AND c > 1.5 AND d = B'101' AND e = X'FF'",
	"SELECT now() - interval '7 days', interval '1' day, interval(3) '1 day', timestamp(3) '2020-01-01', date '2020-01-01'",
	"SELECT - 5, - - 5, 5 - -3, +5, - 2147483648, -1.5",
	"SELECT 1; SELECT 2",
	"  /* lead */ SELECT 1 -- one\n ; /* mid */ SELECT 'two' /* end */ ; -- tail",
	"SELECT $1 + 1 FROM t WHERE x = $2 AND y = 'a'",
	"SELECT a FROM t ORDER BY 1 LIMIT 10 OFFSET 5",
	"SET x = -5",
	"SET TIME ZONE 'UTC'",
}

var shapeNotCached = []string{
	"SELECT -(5)", // the location moved to "-" across a parenthesis: refused, not guessed
	"SELECT 1::float(10)",
	"SELECT current_time(3)",
	"ALTER TABLE t ALTER COLUMN 1 SET STATISTICS 100",
	"FETCH 5 FROM c",
	"CREATE SEQUENCE s INCREMENT 5",
	"SELECT set_config('role', 'x', false)",
	"SELECT set_config(1, 'x', false)",
	"SELECT nextval('a')",
	"INSERT INTO t VALUES (nextval('s'), 1)",
	"SET client_encoding = 'UTF8'",
	"SET NAMES 'UTF8'",
	"SET standard_conforming_strings = 'on'",
	"BEGIN READ ONLY",
	"EXPLAIN (ANALYZE 0) DELETE FROM t",
	"EXPLAIN (ANALYZE 'off') DELETE FROM t",
	"COPY t FROM 'x'",
	"NOTIFY c, 'p'",
	"CREATE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql",
	"DO 'begin end'",
	"COMMENT ON TABLE t IS 'x'",
	"SELECT * FROM JSON_TABLE('{}'::jsonb, ('$') COLUMNS (a int))",
}

// shapeMatters are pairs with the same shape key whose full classifications
// differ (or where one fails): the shape cache must tell them apart.
var shapeMatters = [][2]string{
	{"SELECT set_config('role','x',false)", "SELECT set_config('work_mem','1MB',false)"},
	{"SELECT set_config('search_path','x',false)", "SELECT set_config('work_mem','1MB',false)"},
	{"SET client_encoding='UTF8'", "SET client_encoding='SJIS'"},
	{"SET NAMES 'UTF8'", "SET NAMES 'SJIS'"},
	{"SET standard_conforming_strings = 1", "SET standard_conforming_strings = 0"},
	{"SELECT nextval('a')", "SELECT nextval('b')"},
	{"SELECT setval('\"A\"', 5)", "SELECT setval('a.b', 5)"},
	{"SELECT U&'d!0061t' UESCAPE '!'", "SELECT U&'d!0061t' UESCAPE 'xx'"},
	{`SELECT * FROM U&"!0075sers" UESCAPE '!'`, `SELECT * FROM U&"!0075sers" UESCAPE '#'`},
	{`SELECT U&'\0061'`, `SELECT U&'\00zz'`},
	{"EXPLAIN (ANALYZE 0) DELETE FROM t", "EXPLAIN (ANALYZE 1) DELETE FROM t"},
	{"EXPLAIN (ANALYZE 'off') DELETE FROM t", "EXPLAIN (ANALYZE 'on') DELETE FROM t"},
	{"COPY t FROM 'x'", "COPY t FROM 'http://x'"},
	{"SELECT 1::float(10)", "SELECT 1::float(30)"},
	{"SELECT 1::float(10)", "SELECT 1::float(0)"},
	{"ALTER TABLE t ALTER COLUMN 1 SET STATISTICS 100", "ALTER TABLE t ALTER COLUMN 0 SET STATISTICS 100"},
	{"SELECT current_time(3)", "SELECT current_time(5)"},
	{"CREATE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql", "CREATE FUNCTION f() RETURNS int AS 'select 2' LANGUAGE sql"},
	// Comments are invisible to the grammar but not to libpg_query's
	// look-ahead: these pairs had one shape while the key left comments out.
	{"SELECT 1 WHERE 1 NOT IN (2) /* c */", "SELECT 1 WHERE 1 NOT /* c */ IN (2)"},
	{"SELECT * FROM t ORDER BY a NULLS FIRST /* c */", "SELECT * FROM t ORDER BY a NULLS /* c */ FIRST"},
	{"SELECT * FROM unnest(array[1]) WITH ORDINALITY -- c\n", "SELECT * FROM unnest(array[1]) WITH -- c\n ORDINALITY"},
	{"SELECT U&'d!0061t' UESCAPE '#' /* c */", "SELECT U&'d!0061t' UESCAPE /* c */ '#'"},
	{`SELECT * FROM U&"!0075sers" UESCAPE '!' /* c */`, `SELECT * FROM U&"!0075sers" /* c */ UESCAPE '!'`},
	{"SELECT 1", "SELECT 1a"},
	{"SELECT 'a'", "SELECT E'\\xff'"},
	{"SELECT 'a'", "SELECT 'a\x00'"},
	{"SELECT 'a'", "SELECT '\xff'"},
}

// shapeCorpus is every statement the package's tests know: the golden
// files, the fuzz seeds and corpora, and shapeCases.
func shapeCorpus(t testing.TB) []string {
	t.Helper()
	out := append([]string{}, shapeCases...)
	out = append(out, fuzzSeeds...)
	for _, p := range shapeMatters {
		out = append(out, p[0], p[1])
	}
	for _, q := range benchQueries {
		out = append(out, q.sql)
	}
	files, err := filepath.Glob(filepath.Join("testdata", "classify", "*.sqltest"))
	if err != nil || len(files) == 0 {
		t.Fatalf("golden files: %v", err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		// As FuzzClassify reads them.
		for _, block := range strings.Split(string(data), "\n"+caseMarker)[1:] {
			_, rest, _ := strings.Cut(block, "\n")
			sql, _, _ := strings.Cut(rest, "\n"+separator+"\n")
			out = append(out, sql)
		}
	}
	for _, dir := range []string{"FuzzClassify", "FuzzShapeCacheAgrees"} {
		files, _ := filepath.Glob(filepath.Join("testdata", "fuzz", dir, "*"))
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(string(data), "\n")[1:] {
				line = strings.TrimSpace(line)
				if !strings.HasPrefix(line, "string(") {
					continue
				}
				if s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(line, "string("), ")")); err == nil {
					out = append(out, s)
				}
			}
		}
	}
	return out
}

// isConstToken reports whether a token is a constant the mutations rewrite
// (deliberately more than the shape key leaves out: Unicode strings and the
// string after UESCAPE too).
func isConstToken(k pg_query.Token) bool {
	switch k {
	case pg_query.Token_ICONST, pg_query.Token_FCONST, pg_query.Token_SCONST,
		pg_query.Token_USCONST, pg_query.Token_BCONST, pg_query.Token_XCONST:
		return true
	}
	return false
}

// rewrite rebuilds sql with every constant token replaced by constant(i,
// kind, original), every white-space gap between tokens by gap(i, gap) and
// every comment by comment(kind, original). It reports false when the lexer
// rejects sql.
func rewrite(sql string, constant func(i int, k pg_query.Token, orig string) string, gap func(i int, orig string) string,
	comment func(k pg_query.Token, orig string) string) (string, bool) {
	res, err := pg_query.Scan(sql)
	if err != nil {
		return "", false
	}
	var b strings.Builder
	prev, n := 0, 0
	for i, tok := range res.Tokens {
		start, end := int(tok.Start), int(tok.End)
		if start < prev || end > len(sql) || end < start {
			return "", false
		}
		g := sql[prev:start]
		if gap != nil && allSpace(g) {
			g = gap(i, g)
		}
		b.WriteString(g)
		text := sql[start:end]
		switch {
		case isConstToken(tok.Token) && constant != nil:
			text = constant(n, tok.Token, text)
			n++
		case (tok.Token == pg_query.Token_C_COMMENT || tok.Token == pg_query.Token_SQL_COMMENT) && comment != nil:
			text = comment(tok.Token, text)
		}
		b.WriteString(text)
		prev = end
	}
	b.WriteString(sql[prev:])
	return b.String(), true
}

// Values that matter somewhere: setting names, encodings, booleans,
// regclass names, URLs, limits of the grammar's checks.
var (
	intValues    = []string{"0", "1", "2", "5", "24", "25", "53", "54", "100", "32767", "32768", "2147483647", "2147483648", "0x10", "1_0"}
	floatValues  = []string{"0.0", "1.5", "1e3", ".5", "99999999999"}
	stringValues = []string{"'x'", "''", "'role'", "'Role'", "'search_path'", "'session_authorization'",
		"'work_mem'", "'client_encoding'", "'standard_conforming_strings'", "'SJIS'", "'UTF8'", "'utf-8'",
		"'off'", "'on'", "'0'", "'1'", "'false'", "'true'", "'public.seq'", `'"Users"'`, "'a.b.c.d'",
		"'://x'", "'http://x'", "'analyze'", "'7 days'", "'2020-01-01'", "'!'", "'#'", "'xx'", "'\\'",
		"$$x$$", "$q$'$q$", "E'\\n'", "E'\\xff'", "'a''b'", "'select 1'", "'hour'", "'$'", "'$.a'",
		"U&'\\0061'", "U&'\\00zz'", "'\xff'", "'\x00'", "'é'"}
	bitValues = []string{"B'0'", "B'1010'", "X'FF'", "x'0'", "B'2'"}
)

func valueFor(r *rand.Rand, k pg_query.Token) string {
	switch k {
	case pg_query.Token_ICONST:
		return intValues[r.IntN(len(intValues))]
	case pg_query.Token_FCONST:
		return floatValues[r.IntN(len(floatValues))]
	case pg_query.Token_BCONST, pg_query.Token_XCONST:
		return bitValues[r.IntN(len(bitValues))]
	}
	return stringValues[r.IntN(len(stringValues))]
}

// White space, and gaps that add comments (which changes the shape).
var (
	spaceValues   = []string{" ", "\n\t", "  \r\n  ", "\f", "\v "}
	commentValues = []string{" /* c */ ", " -- c\n", "/**/", "/* /* nested */ */"}
)

// otherComment replaces a comment with another of the same kind.
func otherComment(k pg_query.Token, orig string) string {
	if k == pg_query.Token_SQL_COMMENT {
		return "-- other comment ; DELETE FROM t"
	}
	return "/* other ; comment */"
}

// variants returns texts of (mostly) the same shape as sql: constants
// replaced with values of the same kind, some with other white space and
// comments, some with comments added.
func variants(sql string, seed uint64, n int) []string {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	var out []string
	for v := 0; v < n; v++ {
		var gap func(int, string) string
		var comment func(pg_query.Token, string) string
		switch v % 4 {
		case 2:
			gap = func(i int, orig string) string {
				if orig == "" {
					return ""
				}
				return spaceValues[r.IntN(len(spaceValues))]
			}
			comment = otherComment
		case 3:
			gap = func(i int, orig string) string {
				if orig == "" || r.IntN(3) > 0 {
					return orig
				}
				return commentValues[r.IntN(len(commentValues))]
			}
		}
		s, ok := rewrite(sql, func(i int, k pg_query.Token, orig string) string {
			if r.IntN(4) == 0 {
				return orig
			}
			return valueFor(r, k)
		}, gap, comment)
		if ok && s != sql {
			out = append(out, s)
		}
	}
	return out
}

// checkAgrees warms a fresh Classifier with warm, then asks it for sql and
// compares with an uncached Classify(sql). It reports whether the answer
// came from the shape cache.
func checkAgrees(t testing.TB, warm, sql string) bool {
	t.Helper()
	c := NewClassifier(16)
	c.Classify(warm) //nolint:errcheck // warming only
	got, gerr := c.Classify(sql)
	hit := c.shapeHits.Load() > 0
	want, werr := Classify(sql)
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gerr, werr) {
		t.Fatalf("after %q, Classifier.Classify(%q) (shape hit %v)\n got %s, %v\nwant %s, %v",
			warm, sql, hit, dump(got), gerr, dump(want), werr)
	}
	if hit {
		// The text's own, fresh slice; the next call comes from the exact cache.
		again, _ := c.Classify(sql)
		if len(got) > 0 && &again[0] != &got[0] {
			t.Fatalf("%q: second call did not come from the exact-text cache", sql)
		}
	}
	return hit
}

func dump(cmds []command.Command) string {
	var b strings.Builder
	for _, c := range cmds {
		fmt.Fprintf(&b, "\n  %+v", c)
	}
	return b.String()
}

// TestShapeCacheAgrees is the differential test: for every statement of the
// corpus and many variants with other constants (and other white space and
// comments), a Classifier warmed with one text answers for another exactly
// what Classify does, in both directions.
func TestShapeCacheAgrees(t *testing.T) {
	corpus := shapeCorpus(t)
	n := 12
	if testing.Short() {
		n = 3
	}
	texts, hits := 0, 0
	for i, sql := range corpus {
		for _, v := range variants(sql, uint64(i), n) {
			texts += 2
			if checkAgrees(t, sql, v) {
				hits++
			}
			if checkAgrees(t, v, sql) {
				hits++
			}
		}
	}
	t.Logf("%d statements, %d comparisons, %d from the shape cache", len(corpus), texts, hits)
	if hits < texts/4 {
		t.Errorf("only %d of %d comparisons used the shape cache: the test no longer exercises it", hits, texts)
	}
}

// Pairs of the same shape whose classifications differ: never mixed up.
func TestShapeCacheConstantsThatMatter(t *testing.T) {
	for _, p := range shapeMatters {
		a, aerr := Classify(p[0])
		b, berr := Classify(p[1])
		if reflect.DeepEqual(stripText(a), stripText(b)) && (aerr == nil) == (berr == nil) {
			t.Errorf("%q and %q classify alike: not a pair that matters", p[0], p[1])
		}
		checkAgrees(t, p[0], p[1])
		checkAgrees(t, p[1], p[0])
	}
}

func stripText(cmds []command.Command) []command.Command {
	out := append([]command.Command(nil), cmds...)
	for i := range out {
		out[i].Text = ""
	}
	return out
}

func TestShapeCacheTakes(t *testing.T) {
	for _, sql := range shapeCached {
		c := NewClassifier(8)
		if _, err := c.Classify(sql); err != nil {
			t.Fatalf("%q: %v", sql, err)
		}
		if c.ShapeLen() != 1 {
			t.Errorf("%q: not shape-cached", sql)
		}
	}
	for _, sql := range shapeNotCached {
		c := NewClassifier(8)
		c.Classify(sql) //nolint:errcheck
		if c.ShapeLen() != 0 {
			t.Errorf("%q: shape-cached, but its classification or parse depends on a constant", sql)
		}
	}
}

func TestShapeCacheHit(t *testing.T) {
	c := NewClassifier(16)
	a, err := c.Classify("SELECT abalance FROM pgbench_accounts WHERE aid = 12345;")
	if err != nil {
		t.Fatal(err)
	}
	a, err = c.Classify("SELECT abalance FROM pgbench_accounts /* x */ WHERE aid = 12345;")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Classify("SELECT abalance\n\tFROM pgbench_accounts /* another comment */ WHERE aid = 678 ;  ")
	if err != nil {
		t.Fatal(err)
	}
	if c.shapeHits.Load() != 1 {
		t.Fatalf("shape hits = %d, want 1", c.shapeHits.Load())
	}
	if &a[0] == &b[0] {
		t.Error("a text of the same shape got the other text's slice")
	}
	if b[0].Text != "SELECT abalance\n\tFROM pgbench_accounts /* another comment */ WHERE aid = 678" {
		t.Errorf("Text = %q", b[0].Text)
	}
	if a[0].Fingerprint != b[0].Fingerprint || a[0].Verb != "SELECT" || a[0].Reads[0] != "pgbench_accounts" {
		t.Errorf("commands %+v, %+v", a[0], b[0])
	}
	if c.Len() != 3 || c.ShapeLen() != 2 {
		t.Errorf("Len %d, ShapeLen %d; want 3, 2", c.Len(), c.ShapeLen())
	}
	// Errors and texts that are not cached stay out of both caches.
	for _, sql := range []string{"SELECT abalance FROM pgbench_accounts WHERE aid = 1a", "SELECT '\xff'", "SELECT 'a\x00'"} {
		if _, err := c.Classify(sql); err == nil {
			t.Errorf("%q: no error", sql)
		}
	}
	if c.Len() != 3 || c.ShapeLen() != 2 {
		t.Errorf("after errors: Len %d, ShapeLen %d; want 3, 2", c.Len(), c.ShapeLen())
	}
}

func TestShapeCacheBound(t *testing.T) {
	for _, m := range []int{1, 2, 3, 10, 101} {
		c := NewClassifier(m)
		limit := max(m, 2)
		for i := 0; i < 5*m+7; i++ {
			// A new shape each time (the table name), a new text too.
			if _, err := c.Classify(fmt.Sprintf("SELECT * FROM t%d WHERE id = %d", i, i)); err != nil {
				t.Fatal(err)
			}
			if n := c.ShapeLen(); n > limit {
				t.Fatalf("max %d: ShapeLen = %d after %d shapes", m, n, i+1)
			}
		}
		// A recently used shape stays.
		c.Classify("SELECT * FROM hot WHERE id = 1") //nolint:errcheck
		for i := 0; i < 3*m; i++ {
			c.Classify(fmt.Sprintf("SELECT * FROM u%d WHERE id = 1", i)) //nolint:errcheck
			hits := c.shapeHits.Load()
			c.Classify(fmt.Sprintf("SELECT * FROM hot WHERE id = %d", i+2)) //nolint:errcheck
			if c.shapeHits.Load() != hits+1 && m > 1 {
				t.Fatalf("max %d: the hot shape was dropped", m)
			}
		}
	}
}

// Run with -race: concurrent hits and stores of the same shapes.
func TestShapeCacheConcurrent(t *testing.T) {
	c := NewClassifier(64)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				var sql string
				switch i % 3 {
				case 0:
					sql = fmt.Sprintf("SELECT abalance FROM pgbench_accounts WHERE aid = %d", g*1000+i)
				case 1:
					sql = fmt.Sprintf("UPDATE t%d SET v = '%d' WHERE id = %d; SELECT %d", i%5, i, g, i)
				default:
					sql = fmt.Sprintf("SELECT set_config('%s', 'x', false)", []string{"role", "work_mem"}[i%2])
				}
				got, err := c.Classify(sql)
				want, werr := Classify(sql)
				if err != nil || werr != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("Classify(%q) = %s, %v; want %s, %v", sql, dump(got), err, dump(want), werr)
					return
				}
			}
		}()
	}
	wg.Wait()
	if c.shapeHits.Load() == 0 {
		t.Error("no shape hits")
	}
}

// The shape cache's argument rests on an audit of one version of the
// grammar (see shape.go).
func TestShapeAuditVersion(t *testing.T) {
	tree, err := pg_query.Parse("SELECT 1")
	if err != nil {
		t.Fatal(err)
	}
	if tree.Version != auditedPGVersion {
		t.Fatalf("pg_query_go now embeds PostgreSQL %d; the shape cache was audited for %d: "+
			"redo the audit of the grammar's constant handling (shape.go) before updating auditedPGVersion",
			tree.Version, auditedPGVersion)
	}
}

// The allocation-free decoder of the scan agrees with pg_query.Scan.
func TestDecodeScan(t *testing.T) {
	for _, sql := range shapeCorpus(t) {
		if checkText(sql) != nil {
			continue
		}
		res, err := pg_query.Scan(sql)
		if err != nil {
			continue
		}
		pb, err := parser.ScanToProtobuf(sql)
		if err != nil {
			t.Fatalf("%q: %v", sql, err)
		}
		i := 0
		err = decodeScan(pb, func(start, end, kind int32) bool {
			if i >= len(res.Tokens) {
				t.Errorf("%q: extra token", sql)
				return false
			}
			tk := res.Tokens[i]
			if tk.Start != start || tk.End != end || int32(tk.Token) != kind {
				t.Errorf("%q: token %d = %d,%d,%d; want %v", sql, i, start, end, kind, tk)
			}
			i++
			return true
		})
		if err != nil || i != len(res.Tokens) {
			t.Errorf("%q: %v, %d of %d tokens", sql, err, i, len(res.Tokens))
		}
	}
	for _, bad := range [][]byte{{0x12}, {0x12, 0x05, 0x08}, {0xff}, {0x12, 0x02, 0x08, 0xff}} {
		if err := decodeScan(bad, func(int32, int32, int32) bool { return true }); err == nil {
			t.Errorf("decodeScan(%x): no error", bad)
		}
	}
}

// FuzzShapeCacheAgrees: warm a Classifier with sql, ask it for sql with
// its constants rewritten from vals (and the other way round); the answer
// must be Classify's. vals is split at NUL bytes, one part per constant: an
// empty part picks a value from the tables above, a part starting with "="
// replaces the constant's text verbatim (any text, any kind), another part
// becomes a constant of the same kind. A first part starting with "~" also
// rewrites the white space between tokens.
func FuzzShapeCacheAgrees(f *testing.F) {
	for i, s := range shapeCorpus(f) {
		f.Add(s, "")
		f.Add(s, strings.Repeat("\x00", i%4)+"=1a\x00x\x00~\x00='\\'")
	}
	f.Add(`SELECT U&'d!0061t' UESCAPE '!'`, "\x00=''")
	f.Add("SELECT set_config('role','x',false)", "work_mem")
	f.Add("SET client_encoding='UTF8'", "SJIS")
	f.Add("SELECT nextval('a')", "b")
	f.Fuzz(func(t *testing.T, sql, vals string) {
		if len(sql) > 2048 || len(vals) > 2048 {
			return
		}
		parts := strings.Split(vals, "\x00")
		r := rand.New(rand.NewPCG(uint64(len(sql)), uint64(len(vals))))
		var gap func(int, string) string
		if strings.HasPrefix(parts[0], "~") {
			gap = func(i int, orig string) string {
				if orig == "" {
					return ""
				}
				return spaceValues[(i+len(parts))%len(spaceValues)]
			}
		}
		var comment func(pg_query.Token, string) string
		if strings.HasPrefix(parts[0], "~~") {
			comment = otherComment
		}
		other, ok := rewrite(sql, func(i int, k pg_query.Token, orig string) string {
			p := parts[i%len(parts)]
			switch {
			case p == "" || p == "~":
				return valueFor(r, k)
			case p[0] == '=':
				return p[1:]
			}
			switch k {
			case pg_query.Token_ICONST:
				return strconv.Itoa(len(p) * 7919 % 1000003)
			case pg_query.Token_FCONST:
				return strconv.Itoa(len(p)) + ".5"
			case pg_query.Token_BCONST:
				return "B'" + strconv.FormatUint(uint64(p[0]), 2) + "'"
			case pg_query.Token_XCONST:
				return "X'" + strconv.FormatUint(uint64(p[0]), 16) + "'"
			}
			return "'" + strings.ReplaceAll(p, "'", "''") + "'"
		}, gap, comment)
		if !ok {
			other = sql + vals
		}
		checkAgrees(t, sql, other)
		checkAgrees(t, other, sql)
	})
}
