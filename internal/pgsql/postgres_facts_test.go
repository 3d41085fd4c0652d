package pgsql

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/weir-gw/weir/internal/testpg"
)

// Facts the resolver mirrors, checked against a real PostgreSQL.
func TestAgreesWithPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	pg, err := testpg.Start(testpg.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	// Every function weir lets through that returns a set must be known
	// as set-returning, or its row count would read a masked argument
	// unnoticed.
	t.Run("set-returning", func(t *testing.T) {
		var names []string
		for n, e := range knownFuncs {
			if e.risks == 0 && !e.write {
				names = append(names, n)
			}
		}
		rows, err := conn.Query(ctx, "SELECT DISTINCT proname::text FROM pg_proc WHERE proretset AND proname = ANY($1) ORDER BY 1", names)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			t.Fatal("the catalog names no set-returning function: the query is wrong")
		}
		for _, n := range got {
			if !setReturning[n] {
				t.Errorf("%s returns a set but is not in setReturning", n)
			}
		}
	})

	// A function in FROM whose result is a row of a shape weir cannot see
	// must be rowShaped (or have its columns in srfColumns).
	t.Run("row-shaped", func(t *testing.T) {
		var names []string
		for n, e := range knownFuncs {
			if e.risks == 0 && !e.write {
				names = append(names, n)
			}
		}
		rows, err := conn.Query(ctx, `SELECT DISTINCT p.proname::text FROM pg_proc p JOIN pg_type t ON t.oid = p.prorettype
WHERE p.proname = ANY($1) AND p.prokind = 'f' AND (t.typtype = 'c' OR t.typname IN ('record', 'anyelement', 'anycompatible', 'anynonarray', 'anycompatiblenonarray')
  OR 'o' = ANY(p.proargmodes) OR 'b' = ANY(p.proargmodes) OR 't' = ANY(p.proargmodes)) ORDER BY 1`, names)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range got {
			if _, ok := srfColumns[n]; !ok && !rowShaped[n] {
				t.Errorf("%s may return a row but is neither rowShaped nor in srfColumns", n)
			}
		}
	})

	// Columns of functions in FROM are named as PostgreSQL names them.
	t.Run("function columns", func(t *testing.T) {
		for _, from := range []string{
			"generate_series(1, 2)", "generate_series(1, 2) g", "generate_series(1, 2) AS g(n)", "lower('x') f",
			"lower('x')", "jsonb_each('{\"a\":1}')", "jsonb_each_text('{\"a\":1}') j", "json_each('{\"a\":1}')",
			"unnest(ARRAY[1], ARRAY['a'])", "unnest(ARRAY[1]) WITH ORDINALITY", "unnest(ARRAY[1]) WITH ORDINALITY u",
			"ROWS FROM (generate_series(1, 2), lower('x')) r", "pg_options_to_table(ARRAY['a=1'])",
			"pg_get_keywords()", "jsonb_array_elements('[1]') e", "json_array_elements_text('[1]')",
			"jsonb_to_record('{\"a\":1}') AS r(a int, b text)", "regexp_matches('ab', 'a')", "string_to_table('a,b', ',') s",
		} {
			q := "SELECT * FROM " + from
			res := conn.PgConn().ExecParams(ctx, q, nil, nil, nil, nil).Read()
			if res.Err != nil {
				t.Errorf("%s: %v", from, res.Err)
				continue
			}
			var want []string
			for _, fd := range res.FieldDescriptions {
				want = append(want, fd.Name)
			}
			tree, err := pg_query.Parse(q)
			if err != nil {
				t.Fatal(err)
			}
			r := &resolver{cat: newTestCatalog(), rules: testRules(t, false), views: map[*Relation][][]string{}}
			it, err := r.fromItem(tree.Stmts[0].Stmt.GetSelectStmt().FromClause[0], &scope{})
			if err != nil {
				t.Errorf("%s: %v", from, err)
				continue
			}
			var got []string
			for _, c := range it.cols {
				got = append(got, c.name)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: weir names the columns %q, PostgreSQL %q", from, got, want)
			}
		}
	})

	// Output columns are named as PostgreSQL names them: outer
	// references, USING and NATURAL joins match by name.
	t.Run("column names", func(t *testing.T) {
		for _, e := range []string{
			"x", "s.x", "y::int", "y::text", "'a'::text", "1::int", "(1)", "coalesce(x, 1)", "nullif(x, 1)",
			"CASE WHEN true THEN x END", "CASE WHEN true THEN x ELSE x END", "CASE WHEN true THEN 1 ELSE 2 END",
			"CASE WHEN true THEN 1 ELSE y::int END", "greatest(x, 1)", "least(x, 1)", "ARRAY[x]", "ARRAY(SELECT 1)",
			"(SELECT y)", "(SELECT y AS z)", "(SELECT 1 AS a UNION SELECT 2 LIMIT 1)", "(VALUES (1))", "EXISTS (SELECT 1)",
			"ROW(x, 1)", "(s.r).f1", "arr[1]", "j->'a'", "x + 1", "-x", "x IS NULL", "current_date", "current_user",
			"localtimestamp", "session_user", "current_schema", "current_catalog", "xmlelement(name a)", "xmlconcat('<a/>')",
			"xmlforest(x)", "xmlparse(document '<a/>')", "xmlpi(name a)", "xmlroot('<a/>', version '1.0')",
			"xmlserialize(content '<a/>' AS text)", "y COLLATE \"C\"", "lower(y)", "pg_catalog.lower(y)", "y::varchar(3)",
			"x::numeric(3,1)", "'a'", "x = ANY(ARRAY[1])", "(SELECT x)::text", "CASE WHEN true THEN (SELECT x) END",
			"coalesce(x, 1)::text", "(j)", "s", "s.*::text", "array_agg(x)", "count(*)",
		} {
			q := "SELECT " + e + " FROM (SELECT 1 AS x, '1'::text AS y, ARRAY[1] AS arr, '{\"a\":1}'::jsonb AS j, ROW(1, 2) AS r) s"
			if e == "array_agg(x)" || e == "count(*)" {
				q += " GROUP BY x"
			}
			res := conn.PgConn().ExecParams(ctx, q, nil, nil, nil, nil).Read()
			if res.Err != nil || len(res.FieldDescriptions) == 0 {
				t.Errorf("%s: %v", e, res.Err)
				continue
			}
			want := res.FieldDescriptions[0].Name
			tree, err := pg_query.Parse(q)
			if err != nil {
				t.Fatal(err)
			}
			got := outputName(tree.Stmts[0].Stmt.GetSelectStmt().TargetList[0].GetResTarget())
			if got != want {
				t.Errorf("%s: weir names it %q, PostgreSQL %q", e, got, want)
			}
		}
	})
}
