package pgsql

import (
	"fmt"
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// Error oracles (corpus M05, counted as M04: deny).
//
// Whether a statement failed is visible to the client even though weir
// withholds the text of the error: with a clean WHERE id = 1,
// sqrt(ascii(substr(ssn, 9, 1)) - 52) fails exactly when the digit is
// below 4, and a handful of such statements read a masked value. So a
// value derived from a masked column may flow only into functions,
// operators and casts that are total: that cannot fail for any value of
// their argument types. The list is an allow-list and deliberately
// short; what is not on it is refused when it receives a masked value
// (arguments derived only from clean columns are not checked).
//
// Two less obvious ways a total-looking expression fails on the value:
//   - Strictness: a strict function is not called when an argument is
//     NULL, and NULLIF(ssn < '5', true)::text makes nullness follow the
//     value; so a constant argument that makes a function fail when it
//     is called (substr(x, 1, -1), encode(x, 'nope'), lpad to a huge
//     length, an invalid LIKE pattern) is an oracle too. Such arguments
//     must be constants the function accepts.
//   - Lazy evaluation: AND, OR, COALESCE, IN (…), BETWEEN and row
//     comparisons stop evaluating once the result is known, so an
//     operand after a masked one is evaluated depending on the value:
//     it must be an expression that cannot fail at all (cannotFail).
//     x = ANY (SELECT …) fetches rows until one matches: refused on a
//     masked value unless it is an allowed equality lookup.

// oracle refuses a statement that passes a masked value to something
// that may fail depending on it. The refusal is held until the statement
// is resolved (PlanMasking returns it if nothing else refused): the other
// rules name what is wrong more precisely (1/(ascii(ssn)-49) is a masked
// divisor; generate_series(1, ascii(ssn)) a set-returning function over
// a masked value). It returns nil so that resolution goes on.
func (r *resolver) oracle(column, what string) error {
	r.touches = true
	if r.oracleErr == nil {
		r.oracleErr = r.oracleError(column, what)
	}
	return nil
}

func (r *resolver) oracleError(column, what string) error {
	return &LineageError{Column: column, Reason: fmt.Sprintf("masked column %s may not be passed to %s: it could fail depending on the masked value, which would reveal it (an error oracle); use the column itself or a transform that cannot fail (lower, upper, md5, length, ||, concat, substr/left/right/lpad with constant lengths, replace with constants, a cast to text, row_to_json, count/min/max/array_agg/string_agg…) and compute the rest on the client", column, what)}
}

// utf8Funcs are total only when the server encoding is UTF-8: ascii
// fails on a non-ASCII first character in the other multi-byte
// encodings, and convert_to(x, 'UTF8') on a character a single-byte
// encoding leaves undefined (WIN1252 0x81) or bytes SQL_ASCII holds that
// are not UTF-8.
var utf8Funcs = map[string]bool{"ascii": true, "convert_to": true}

// totalFuncs cannot fail for any value of any argument.
// Aggregates here are total too: their transition functions never fail.
var totalFuncs = map[string]bool{
	"lower": true, "upper": true, "initcap": true,
	"md5": true, "sha224": true, "sha256": true, "sha384": true, "sha512": true,
	"reverse": true, "concat": true, "concat_ws": true,
	"btrim": true, "ltrim": true, "rtrim": true,
	"translate": true, "position": true, "strpos": true, "starts_with": true,
	"quote_literal": true, "quote_nullable": true, "quote_ident": true,
	"row_to_json": true, "to_json": true, "to_jsonb": true, "array_to_json": true,
	"json_build_array": true, "jsonb_build_array": true,
	"json_typeof": true, "jsonb_typeof": true,
	"num_nulls": true, "num_nonnulls": true,
	"count": true, "min": true, "max": true,
	"array_agg": true, "string_agg": true, "json_agg": true, "jsonb_agg": true,
	"bool_and": true, "bool_or": true, "every": true,
	"text": true, // text(x): a cast to text, total for every type
}

// condFuncs are total when their other arguments are constants the
// function accepts; check returns "" when the call is admitted, else why
// not.
var condFuncs = map[string]func(args []*pg_query.Node, taint []srcs) string{
	// substr(s, from [, for]): a negative for fails; a pattern (the
	// second argument a string) compiles a regular expression.
	"substr":    substrRule,
	"substring": substrRule,
	"left":      func(a []*pg_query.Node, _ []srcs) string { return lenArg("left", a, 2, 1, false) },
	"right":     func(a []*pg_query.Node, _ []srcs) string { return lenArg("right", a, 2, 1, false) },
	// lpad(s, n [, fill]): the result is n characters whatever s is; a
	// bound on n keeps it far below the 1 GB limit, whose "too large"
	// error would otherwise depend on the lengths of what it is joined to.
	"lpad": padRule,
	"rpad": padRule,
	// overlay(s placing r from f [for n]) fails on f < 1, n < 0 or an
	// f + n that overflows.
	"overlay": func(a []*pg_query.Node, _ []srcs) string {
		if len(a) < 3 || len(a) > 4 {
			return "overlay with other than three or four arguments"
		}
		f, ok := intConst(a[2])
		if !ok || f < 1 || f > maxPad {
			return fmt.Sprintf("overlay with a start other than an integer constant from 1 to %d", maxPad)
		}
		if len(a) == 4 {
			if n, ok := intConst(a[3]); !ok || n < 0 || n > maxPad {
				return fmt.Sprintf("overlay with a length other than an integer constant from 0 to %d", maxPad)
			}
		}
		return ""
	},
	// mod(x, c) and div(x, c) with a non-zero constant c cannot fail
	// for integer and numeric x (mod(INT_MIN, -1) is 0, div works in
	// numeric); a masked divisor is refused before this (see funcCall).
	"mod": divRule,
	"div": divRule,
	// length(b, encoding) fails on bytes invalid in the encoding.
	"length":           oneArg,
	"char_length":      oneArg,
	"character_length": oneArg,
	"octet_length":     oneArg,
	"bit_length":       oneArg,
	// split_part(s, d, 0) fails.
	"split_part": func(a []*pg_query.Node, _ []srcs) string {
		if len(a) != 3 {
			return "split_part with other than three arguments"
		}
		// A negative field fails before PostgreSQL 14.
		if n, ok := intConst(a[2]); !ok || n <= 0 {
			return "split_part with a field number other than a positive integer constant"
		}
		return ""
	},
	// replace(s, from, to) grows s by the number of matches when to is
	// longer than from: the "too large" error would depend on the value.
	"replace": func(a []*pg_query.Node, _ []srcs) string {
		if len(a) != 3 {
			return "replace with other than three arguments"
		}
		from, ok1 := strConst(a[1])
		to, ok2 := strConst(a[2])
		if !ok1 || !ok2 || (from != "" && len([]rune(to)) > len([]rune(from))) {
			return "replace with other than constant strings, the replacement no longer than what it replaces"
		}
		return ""
	},
	"encode": func(a []*pg_query.Node, _ []srcs) string {
		if len(a) == 2 {
			if f, ok := strConst(a[1]); ok {
				switch strings.ToLower(f) {
				case "base64", "hex", "escape":
					return ""
				}
			}
		}
		return "encode with a format other than a constant base64, hex or escape"
	},
	// convert_to(text, 'UTF8'): valid text always converts to UTF-8;
	// another encoding fails on a character it cannot represent.
	"convert_to": func(a []*pg_query.Node, _ []srcs) string {
		if len(a) == 2 {
			if e, ok := strConst(a[1]); ok {
				if c := cleanEncodingName(e); c == "utf8" || c == "unicode" {
					return ""
				}
			}
		}
		return "convert_to an encoding other than a constant UTF8"
	},
	// json_build_object fails on a NULL key; its values are total.
	"json_build_object":  buildObjectRule,
	"jsonb_build_object": buildObjectRule,
	"json_object_agg": func(a []*pg_query.Node, t []srcs) string {
		if len(a) == 2 && len(t[0]) == 0 {
			return ""
		}
		return "json_object_agg with a masked key (a NULL key fails)"
	},
	"jsonb_object_agg": func(a []*pg_query.Node, t []srcs) string {
		if len(a) == 2 && len(t[0]) == 0 {
			return ""
		}
		return "jsonb_object_agg with a masked key (a NULL key fails)"
	},
}

func oneArg(a []*pg_query.Node, _ []srcs) string {
	if len(a) != 1 {
		return "length with an encoding (it fails on bytes invalid in it)"
	}
	return ""
}

func divRule(a []*pg_query.Node, t []srcs) string {
	if len(a) == 2 && len(t[1]) == 0 {
		if c, ok := intConst(a[1]); ok && c != 0 {
			return ""
		}
	}
	return "mod/div with a divisor other than a non-zero integer constant"
}

func substrRule(a []*pg_query.Node, _ []srcs) string {
	if len(a) < 2 || len(a) > 3 {
		return "substr with other than two or three arguments"
	}
	if _, ok := intConst(a[1]); !ok {
		return "substr with a start other than an integer constant"
	}
	if len(a) == 3 {
		if n, ok := intConst(a[2]); !ok || n < 0 {
			return "substr with a length other than a non-negative integer constant"
		}
	}
	return ""
}

func padRule(a []*pg_query.Node, _ []srcs) string {
	if len(a) < 2 || len(a) > 3 {
		return "lpad/rpad with other than two or three arguments"
	}
	return lenArg("lpad/rpad", a, len(a), 1, true)
}

// maxPad bounds the constant length of lpad/rpad over a masked value.
const maxPad = 10000

// lenArg checks that a[i] is an integer constant (within 0..maxPad when
// bounded) and that there are n arguments.
func lenArg(fn string, a []*pg_query.Node, n, i int, bounded bool) string {
	if len(a) != n {
		return fn + " with an unexpected number of arguments"
	}
	v, ok := intConst(a[i])
	if !ok || (bounded && (v < 0 || v > maxPad)) {
		if bounded {
			return fmt.Sprintf("%s with a length other than an integer constant from 0 to %d", fn, maxPad)
		}
		return fn + " with a length other than an integer constant"
	}
	return ""
}

func buildObjectRule(a []*pg_query.Node, _ []srcs) string {
	if len(a)%2 != 0 {
		return "json_build_object with an odd number of arguments"
	}
	for i := 0; i < len(a); i += 2 {
		if _, ok := strConst(a[i]); !ok {
			return "json_build_object with a key other than a string constant (a NULL key fails)"
		}
	}
	return ""
}

// cleanEncodingName is PostgreSQL's clean_encoding_name: lower case,
// alphanumerics only.
func cleanEncodingName(s string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// intConst reads an integer constant, possibly negated or cast to an
// integer type.
func intConst(n *pg_query.Node) (int64, bool) {
	if tc := n.GetTypeCast(); tc != nil {
		if !isType(tc.TypeName, "int2", "int4", "int8", "integer", "smallint", "bigint") {
			return 0, false
		}
		n = tc.Arg
	}
	if ae := n.GetAExpr(); ae != nil && ae.Kind == pg_query.A_Expr_Kind_AEXPR_OP && ae.Lexpr == nil && isOpName(ae.Name, "-") {
		v, ok := intConst(ae.Rexpr)
		return -v, ok
	}
	ac := n.GetAConst()
	if ac == nil || ac.GetIsnull() {
		return 0, false
	}
	if iv := ac.GetIval(); iv != nil {
		return int64(iv.GetIval()), true
	}
	if sv := ac.GetSval(); sv != nil {
		v, err := strconv.ParseInt(strings.TrimSpace(sv.GetSval()), 10, 32)
		return v, err == nil
	}
	return 0, false
}

// strConst reads a non-NULL string constant, possibly cast to text.
func strConst(n *pg_query.Node) (string, bool) {
	if tc := n.GetTypeCast(); tc != nil {
		if !isType(tc.TypeName, "text", "varchar") {
			return "", false
		}
		n = tc.Arg
	}
	ac := n.GetAConst()
	if ac == nil || ac.GetIsnull() || ac.GetSval() == nil {
		return "", false
	}
	return ac.GetSval().GetSval(), true
}

// isType reports whether tn names one of the built-in scalar types
// (unqualified or in pg_catalog, not an array).
func isType(tn *pg_query.TypeName, names ...string) bool {
	if tn == nil || len(tn.ArrayBounds) > 0 || tn.PctType || tn.Setof {
		return false
	}
	var buf [2]string
	parts, ok := nameParts(tn.Names, buf[:0])
	if !ok || len(parts) == 0 || len(parts) > 2 || (len(parts) == 2 && parts[0] != "pg_catalog") {
		return false
	}
	for _, n := range names {
		if parts[len(parts)-1] == n {
			return true
		}
	}
	return false
}

// textType: a cast to these is total from every type (explicit casts to
// varchar(n) and char(n) truncate rather than fail).
func textType(tn *pg_query.TypeName) bool {
	return isType(tn, "text", "varchar", "bpchar")
}

func isOpName(l []*pg_query.Node, names ...string) bool {
	op, ok := opName(l)
	if !ok {
		return false
	}
	for _, n := range names {
		if op == n {
			return true
		}
	}
	return false
}

// opName is the name of a built-in operator (unqualified or pg_catalog).
func opName(l []*pg_query.Node) (string, bool) {
	var buf [2]string
	parts, ok := nameParts(l, buf[:0])
	if !ok || len(parts) == 0 || len(parts) > 2 || (len(parts) == 2 && parts[0] != "pg_catalog") {
		return "", false
	}
	return parts[len(parts)-1], true
}

// totalOps never fail on the values of their operands: comparisons,
// text and jsonb concatenation, and jsonb/json field access (a missing
// key or a scalar gives NULL).
var totalOps = map[string]bool{
	"=": true, "<>": true, "!=": true, "<": true, ">": true, "<=": true, ">=": true,
	"||": true, "->": true, "->>": true, "#>": true, "#>>": true,
}

var comparisonOps = map[string]bool{
	"=": true, "<>": true, "!=": true, "<": true, ">": true, "<=": true, ">=": true,
}

// checkAExpr refuses an operator expression over a masked value (l, rt:
// the taint of its operands) that could fail depending on it.
func (r *resolver) checkAExpr(ae *pg_query.A_Expr, l, rt srcs) error {
	if len(l) == 0 && len(rt) == 0 {
		return nil
	}
	m := l
	if len(m) == 0 {
		m = rt
	}
	op, _ := opName(ae.Name)
	switch ae.Kind {
	case pg_query.A_Expr_Kind_AEXPR_OP:
		if ae.Lexpr == nil || !totalOps[op] {
			return r.oracle(m[0], "the operator "+op)
		}
		if ae.Lexpr.GetRowExpr() != nil || ae.Rexpr.GetRowExpr() != nil {
			// (a, b) < (c, d) compares column by column and stops at
			// the first difference.
			if !cannotFail(ae.Lexpr) || !cannotFail(ae.Rexpr) {
				return r.oracle(m[0], "a row comparison with an operand that can fail (it is evaluated depending on the masked value)")
			}
		}
		return nil
	case pg_query.A_Expr_Kind_AEXPR_OP_ANY, pg_query.A_Expr_Kind_AEXPR_OP_ALL:
		// The array is built whole before any comparison.
		if !comparisonOps[op] {
			return r.oracle(m[0], "the operator "+op+" ANY/ALL")
		}
		return nil
	case pg_query.A_Expr_Kind_AEXPR_DISTINCT, pg_query.A_Expr_Kind_AEXPR_NOT_DISTINCT, pg_query.A_Expr_Kind_AEXPR_NULLIF:
		return nil
	case pg_query.A_Expr_Kind_AEXPR_IN:
		// x IN (a, f(y)) becomes x = a OR x = f(y): f(y) runs only when
		// x <> a.
		if !cannotFail(ae.Lexpr) || !cannotFail(ae.Rexpr) {
			return r.oracle(m[0], "IN (…) with an item that can fail (it is evaluated depending on the masked value)")
		}
		return nil
	case pg_query.A_Expr_Kind_AEXPR_BETWEEN, pg_query.A_Expr_Kind_AEXPR_NOT_BETWEEN,
		pg_query.A_Expr_Kind_AEXPR_BETWEEN_SYM, pg_query.A_Expr_Kind_AEXPR_NOT_BETWEEN_SYM:
		// x BETWEEN a AND b is x >= a AND x <= b.
		if !cannotFail(ae.Lexpr) || !cannotFail(ae.Rexpr) {
			return r.oracle(m[0], "BETWEEN with a bound that can fail (it is evaluated depending on the masked value)")
		}
		return nil
	case pg_query.A_Expr_Kind_AEXPR_LIKE, pg_query.A_Expr_Kind_AEXPR_ILIKE:
		// The pattern is read only as far as matching gets: 'b' LIKE
		// 'a\' is false, '1' LIKE '1\' fails.
		if len(rt) > 0 {
			return r.oracle(rt[0], "a LIKE pattern")
		}
		r.constDep = true // '1%' and '1\' share a shape
		if p, ok := strConst(ae.Rexpr); !ok || !validLikePattern(p) {
			return r.oracle(m[0], "LIKE with a pattern other than a valid string constant")
		}
		return nil
	}
	return r.oracle(m[0], "this operator expression")
}

// validLikePattern: no trailing lone escape (the only pattern error).
func validLikePattern(p string) bool {
	for i := 0; i < len(p); i++ {
		if p[i] == '\\' {
			if i+1 == len(p) {
				return false
			}
			i++
		}
	}
	return true
}

// checkFunc refuses a call that could fail depending on a masked
// argument (taint: per argument).
func (r *resolver) checkFunc(fc *pg_query.FuncCall, base string, taint []srcs, m string) error {
	named := false
	for _, a := range fc.Args {
		if a.GetNamedArgExpr() != nil {
			named = true
		}
	}
	if totalFuncs[base] {
		return nil
	}
	if utf8Funcs[base] {
		if !r.utf8 {
			return r.oracle(m, "the function "+base+" in a database weir does not know to be UTF-8 (in another encoding it fails on some characters)")
		}
		if base == "ascii" {
			return nil
		}
	}
	if rule, ok := condFuncs[base]; ok {
		// The rule reads constants: substr(ssn, 1, 3) and
		// substr(ssn, 1, -1) share a shape but not a verdict.
		r.constDep = true
		if named || fc.FuncVariadic {
			return r.oracle(m, "the function "+base+" with named or VARIADIC arguments")
		}
		if why := rule(fc.Args, taint); why != "" {
			return r.oracle(m, why)
		}
		return nil
	}
	return r.oracle(m, "the function "+base)
}

// checkLazy refuses AND/OR/COALESCE where an operand after a masked one
// could fail: whether it is evaluated depends on the masked value.
func (r *resolver) checkLazy(args []*pg_query.Node, taint []srcs, what string) error {
	for i, t := range taint {
		if len(t) == 0 {
			continue
		}
		for _, a := range args[i+1:] {
			if !cannotFail(a) {
				return r.oracle(t[0], what+" with a later operand that can fail (it is evaluated depending on the masked value)")
			}
		}
		return nil
	}
	return nil
}

// checkNode refuses, over a masked value, an expression node of a type
// without its own rule unless it is known not to fail.
func (r *resolver) checkNode(n *pg_query.Node, t srcs) error {
	switch x := n.GetNode().(type) {
	case *pg_query.Node_TypeCast:
		if !textType(x.TypeCast.TypeName) {
			return r.oracle(t[0], "a cast to "+typeString(x.TypeCast.TypeName)+" (only casts to text, varchar and char cannot fail)")
		}
		return nil
	case *pg_query.Node_MinMaxExpr, *pg_query.Node_NullTest, *pg_query.Node_BooleanTest,
		*pg_query.Node_RowExpr, *pg_query.Node_AArrayExpr, *pg_query.Node_AIndirection,
		*pg_query.Node_AIndices, *pg_query.Node_CollateClause, *pg_query.Node_List,
		*pg_query.Node_NamedArgExpr, *pg_query.Node_GroupingFunc, *pg_query.Node_MultiAssignRef,
		*pg_query.Node_ResTarget, *pg_query.Node_SortBy:
		// GREATEST/LEAST compare, IS [NOT] NULL/TRUE test, ROW and
		// ARRAY collect, a subscript out of range is NULL; the others
		// only carry an expression that is checked on its own.
		return nil
	}
	return r.oracle(t[0], "this kind of expression ("+exprKind(n)+"), which weir does not know to be unable to fail")
}

func exprKind(n *pg_query.Node) string {
	s := fmt.Sprintf("%T", n.GetNode())
	return strings.TrimPrefix(s, "*pg_query.Node_")
}

func typeString(tn *pg_query.TypeName) string {
	var buf [3]string
	parts, _ := nameParts(tn.GetNames(), buf[:0])
	s := joinName(parts)
	if len(tn.GetArrayBounds()) > 0 {
		s += "[]"
	}
	return s
}

// cannotFail reports whether an expression cannot fail for any value of
// what it reads (syntactically, conservatively: false when unsure). A
// constant that fails does so whatever the data.
func cannotFail(n *pg_query.Node) bool {
	if n == nil || n.GetNode() == nil {
		return true
	}
	switch x := n.GetNode().(type) {
	case *pg_query.Node_ColumnRef, *pg_query.Node_AConst, *pg_query.Node_ParamRef:
		return true
	case *pg_query.Node_TypeCast:
		return (textType(x.TypeCast.TypeName) || x.TypeCast.Arg.GetAConst() != nil) && cannotFail(x.TypeCast.Arg)
	case *pg_query.Node_NullTest:
		return cannotFail(x.NullTest.Arg)
	case *pg_query.Node_BooleanTest:
		return cannotFail(x.BooleanTest.Arg)
	case *pg_query.Node_CollateClause:
		return cannotFail(x.CollateClause.Arg)
	case *pg_query.Node_BoolExpr:
		return allCannotFail(x.BoolExpr.Args)
	case *pg_query.Node_CoalesceExpr:
		return allCannotFail(x.CoalesceExpr.Args)
	case *pg_query.Node_MinMaxExpr:
		return allCannotFail(x.MinMaxExpr.Args)
	case *pg_query.Node_RowExpr:
		return allCannotFail(x.RowExpr.Args)
	case *pg_query.Node_List:
		return allCannotFail(x.List.Items)
	case *pg_query.Node_AExpr:
		ae := x.AExpr
		op, ok := opName(ae.Name)
		switch ae.Kind {
		case pg_query.A_Expr_Kind_AEXPR_OP:
			if !ok || ae.Lexpr == nil || !comparisonOps[op] {
				return false
			}
		case pg_query.A_Expr_Kind_AEXPR_DISTINCT, pg_query.A_Expr_Kind_AEXPR_NOT_DISTINCT,
			pg_query.A_Expr_Kind_AEXPR_NULLIF, pg_query.A_Expr_Kind_AEXPR_IN:
		default:
			return false
		}
		return cannotFail(ae.Lexpr) && cannotFail(ae.Rexpr)
	case *pg_query.Node_FuncCall:
		fc := x.FuncCall
		var buf [3]string
		parts, ok := nameParts(fc.Funcname, buf[:0])
		if !ok || len(parts) == 0 || len(parts) > 2 || (len(parts) == 2 && parts[0] != "pg_catalog") ||
			!totalFuncs[parts[len(parts)-1]] || fc.Over != nil || fc.AggFilter != nil || len(fc.AggOrder) > 0 {
			return false
		}
		if e := lookupFunc("", parts[len(parts)-1], false); e.risks != 0 {
			return false
		}
		return allCannotFail(fc.Args)
	}
	return false
}

func allCannotFail(l []*pg_query.Node) bool {
	for _, a := range l {
		if !cannotFail(a) {
			return false
		}
	}
	return true
}
