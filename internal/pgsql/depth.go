package pgsql

import (
	"errors"
	"fmt"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/pganalyze/pg_query_go/v6/parser"
)

// libpg_query turns its parse tree into protobuf with recursive C functions
// that do not check the stack: a left-deep chain of ~24,000 operators
// ("SELECT 1+1+1…", "x::int::int…", "a UNION b UNION …", joins) overflows
// an 8 MiB thread stack and kills the whole gateway with SIGSEGV, which no
// recover() can catch. (Right-recursive constructs stop at the grammar's
// own limit of 10,000 with "memory exhausted".) So before a long text
// reaches the parser, weir bounds the depth of the tree it could produce.
//
// Each level of such a chain takes at least two bytes of text ("+1"), so a
// text of at most depthCheckAbove bytes cannot nest deeper than 4,096
// levels (about 1.5 MiB of C stack); longer texts are scanned with
// PostgreSQL's own lexer (which needs no recursion) and refused when the
// bound exceeds maxDepthBound. This assumes thread stacks of at least
// 2 MiB: glibc's default is 8 MiB, but musl's 128 KiB is far too small for
// libpg_query whatever weir does.
const (
	depthCheckAbove = 8 << 10
	maxDepthBound   = 4000
)

// errTooDeep is the reason of the ClassifyError for such texts.
const errTooDeep = "statement nested too deeply to classify safely"

// checkDepth returns a *ClassifyError when the parse tree of sql could nest
// deeper than maxDepthBound, a *ParseError when the lexer rejects it.
func checkDepth(sql string) (err error) {
	if len(sql) <= depthCheckAbove {
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = &ClassifyError{Reason: fmt.Sprintf("internal error in the lexer: %v", r)}
		}
	}()
	res, err := pg_query.Scan(sql)
	if err != nil {
		var pe *parser.Error
		if errors.As(err, &pe) {
			return &ParseError{Message: pe.Message, Position: bytePosition(sql, pe.Cursorpos)}
		}
		return &ClassifyError{Reason: "lexer: " + err.Error()}
	}
	if depthBound(res.Tokens) > maxDepthBound {
		return &ClassifyError{Reason: errTooDeep}
	}
	return nil
}

// depthBound over-estimates how deep the parse tree of a token sequence
// nests. Within one parenthesis level, the tree of a "segment" is at most
// as deep as the number of its operator and keyword tokens plus the depth
// of its deepest parenthesised part. Segments end at commas and at the
// tokens whose chains PostgreSQL builds flat (AND, OR, the WHEN/THEN/ELSE
// of CASE): each of those costs a constant, counted once per level. Set
// operations chain across the commas of their select lists, and a CASE
// nests in the ELSE of another across those separators, so both are counted
// per level rather than per segment.
func depthBound(tokens []*pg_query.ScanToken) int {
	type level struct {
		seg     int // operators in the current segment
		inner   int // deepest parenthesised part in the current segment
		best    int // deepest segment closed at this level
		chains  int // UNION / INTERSECT / EXCEPT and CASE at this level
		flatten int // 2 if the level has AND/OR/CASE parts, else 0
	}
	closeSeg := func(l *level) {
		l.best = max(l.best, l.seg+l.inner)
		l.seg, l.inner = 0, 0
	}
	depth := func(l *level) int {
		closeSeg(l)
		return l.best + l.chains + l.flatten + 1
	}
	stack := []level{{}}
	overall := 0
	for _, t := range tokens {
		top := &stack[len(stack)-1]
		switch t.Token {
		case pg_query.Token_SQL_COMMENT, pg_query.Token_C_COMMENT:
		case pg_query.Token_IDENT, pg_query.Token_UIDENT, pg_query.Token_FCONST,
			pg_query.Token_SCONST, pg_query.Token_USCONST, pg_query.Token_BCONST,
			pg_query.Token_XCONST, pg_query.Token_ICONST, pg_query.Token_PARAM:
		case pg_query.Token_ASCII_40, pg_query.Token_ASCII_91: // ( [
			stack = append(stack, level{})
		case pg_query.Token_ASCII_41, pg_query.Token_ASCII_93: // ) ]
			if len(stack) == 1 {
				continue // unbalanced: the parser will say so
			}
			d := depth(top)
			stack = stack[:len(stack)-1]
			top = &stack[len(stack)-1]
			top.inner = max(top.inner, d)
		case pg_query.Token_ASCII_44: // ,
			closeSeg(top)
		case pg_query.Token_AND, pg_query.Token_OR, pg_query.Token_WHEN,
			pg_query.Token_THEN, pg_query.Token_ELSE:
			closeSeg(top)
			top.flatten = 2
		case pg_query.Token_UNION, pg_query.Token_INTERSECT, pg_query.Token_EXCEPT,
			pg_query.Token_CASE:
			top.chains++
		case pg_query.Token_ASCII_59: // ;
			if len(stack) == 1 {
				overall = max(overall, depth(top))
				stack[0] = level{}
				continue
			}
			top.seg++
		default:
			top.seg++
		}
	}
	// Close what the text left open, innermost first.
	for len(stack) > 1 {
		d := depth(&stack[len(stack)-1])
		stack = stack[:len(stack)-1]
		top := &stack[len(stack)-1]
		top.inner = max(top.inner, d)
	}
	return max(overall, depth(&stack[0]))
}
