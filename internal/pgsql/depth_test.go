package pgsql

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// Without the depth check each of these kills the test binary with SIGSEGV
// inside libpg_query (24,000 levels overflow an 8 MiB stack).
func TestDeepTextsAreRefusedNotCrashed(t *testing.T) {
	const n = 30000
	shapes := map[string]string{
		"operators":             "SELECT 1" + strings.Repeat(" + 1", n),
		"concat":                "SELECT 'a'" + strings.Repeat("||'a'", n),
		"casts":                 "SELECT 1" + strings.Repeat("::int", n),
		"is null":               "SELECT 1" + strings.Repeat(" IS NULL", n),
		"joins":                 "SELECT * FROM t0" + strings.Repeat(" JOIN t ON true", n),
		"unions":                "SELECT 1, 2" + strings.Repeat(" UNION SELECT 1, 2", n),
		"parentheses":           "SELECT " + strings.Repeat("(", n) + "1" + strings.Repeat(")", n),
		"not":                   "SELECT " + strings.Repeat("NOT ", n) + "true",
		"after a comma and AND": "SELECT 1, 2 WHERE true AND 1" + strings.Repeat("+1", n) + " = 1",
		"second statement":      "SELECT 1; SELECT 1" + strings.Repeat("+1", n),
		"inside a function":     "SELECT f(1, 1" + strings.Repeat("+1", n) + ")",
	}
	for name, sql := range shapes {
		_, err := Classify(sql)
		var ce *ClassifyError
		var pe *ParseError
		switch {
		case errors.As(err, &ce) && ce.Reason == errTooDeep:
		case errors.As(err, &pe) && strings.Contains(pe.Message, "memory exhausted"):
			// The grammar's own limit, for right-recursive shapes.
		default:
			t.Errorf("%s: err = %v, want the too-deep ClassifyError", name, err)
		}
	}
}

// Long but shallow texts are not refused.
func TestLongShallowTextsPass(t *testing.T) {
	var b strings.Builder
	b.WriteString("INSERT INTO t (a, b, c) VALUES ")
	for i := 0; i < 20000; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "(%d, 'name %d', %d + %d * 2)", i, i, i, i)
	}
	insert := b.String()

	ids := make([]string, 20000)
	for i := range ids {
		ids[i] = fmt.Sprint(i)
	}
	in := "SELECT * FROM t WHERE id IN (" + strings.Join(ids, ", ") + ")"

	var cs strings.Builder
	cs.WriteString("SELECT CASE x")
	for i := 0; i < 3000; i++ {
		fmt.Fprintf(&cs, " WHEN %d THEN 'v%d'", i, i)
	}
	cs.WriteString(" END FROM t")

	and := "SELECT * FROM t WHERE " + strings.Repeat("a = 1 AND b <> 'x' AND ", 3000) + "true"
	unions := "SELECT a, b FROM t" + strings.Repeat(" UNION ALL SELECT a, b FROM t", 1000)

	for name, sql := range map[string]string{
		"bulk insert": insert, "long IN list": in, "long CASE": cs.String(),
		"long AND chain": and, "thousand unions": unions,
	} {
		if len(sql) <= depthCheckAbove {
			t.Fatalf("%s: only %d bytes, the check would not run", name, len(sql))
		}
		cmds, err := Classify(sql)
		if err != nil || len(cmds) != 1 {
			t.Errorf("%s (%d bytes): %v", name, len(sql), err)
		}
	}
}

func TestDepthBound(t *testing.T) {
	tests := []struct {
		sql      string
		min, max int
	}{
		{"SELECT 1", 1, 3},
		{"SELECT 1+1+1+1+1", 5, 8},
		{"SELECT (((1)))", 4, 6},
		{"SELECT 1, 2, 3, 4, 5, 6", 1, 3},
		{"SELECT 1 UNION SELECT 2, 3 UNION SELECT 4, 5", 4, 8},
		{"SELECT a AND b AND c AND d", 1, 5},
		{"SELECT 1+1+1+1+1+1+1+1; SELECT 1", 8, 11},
	}
	for _, tt := range tests {
		res, err := pg_query.Scan(tt.sql)
		if err != nil {
			t.Fatal(err)
		}
		if got := depthBound(res.Tokens); got < tt.min || got > tt.max {
			t.Errorf("depthBound(%q) = %d, want %d..%d", tt.sql, got, tt.min, tt.max)
		}
	}
}

func TestDepthCheckLexerError(t *testing.T) {
	sql := "SELECT '" + strings.Repeat("x", depthCheckAbove)
	_, err := Classify(sql)
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Position != 8 {
		t.Errorf("err = %v, want a ParseError at byte 8", err)
	}
}
