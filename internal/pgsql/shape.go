package pgsql

import (
	"errors"
	"slices"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/pganalyze/pg_query_go/v6/parser"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/weir-gw/weir/internal/command"
)

// The shape cache: a statement that arrives again with other constants
// ("… WHERE aid = 12345", then "… WHERE aid = 678") is classified from the
// first one's classification, after running only PostgreSQL's lexer.
//
// Why that gives what a full parse would. The parser is a deterministic
// function of the token sequence the lexer hands it: the grammar chooses its
// productions from token kinds alone (base_yylex's look-ahead looks at kinds
// too, except after UESCAPE: see below), and semantic actions turn token
// values into tree nodes. The shape key of a text is, for every token, its
// kind, plus its exact source text unless it is a comment or a "value"
// constant (ICONST, FCONST, SCONST, BCONST, XCONST). Two texts with the same
// key therefore go through the same derivation, and their trees differ only
// where a constant's value went. Then:
//
//  1. Where the values went. A classification is reused only when every
//     value constant of the text it came from ended up in an A_Const node at
//     the constant's own location (or at the location of the "-"/"+" signs
//     just before it, which doNegate and NumericOnly give the constant),
//     with the value type of the token's kind. The grammar's actions that
//     make such an A_Const use the value for nothing else (an audit of every
//     makeIntConst/makeStringConst/makeFloatConst/makeBitStringConst/
//     makeAConst/makeStringConstCast/doNegate action of gram.y for
//     PostgreSQL 17: no check, no structure depends on it), while the
//     places where a value becomes structure or is checked (float(p), FETCH
//     counts, sequence options, ALTER … SET STATISTICS, COPY file names,
//     function bodies, EXPLAIN option values, NOTIFY payloads, …) build
//     Integer/String nodes or plain fields, not A_Consts, so such texts fail
//     the check and are never shape-cached. The fingerprint skips A_Const
//     values, so it is the same for every text of the shape.
//  2. What weir reads. Weir reads an A_Const's value in a few places only
//     (set_config's, nextval's and setval's arguments, the new value of
//     client_encoding and standard_conforming_strings, the transaction and
//     EXPLAIN options): each marks the classification with
//     constTrack.valueRead, and such a classification is not shape-cached.
//  3. Errors. A full parse of the new text could fail only where a value is
//     checked: by the lexer (bad escapes, invalid UTF-8 after unescaping,
//     junk after numbers…), which the scan of the new text runs too, so the
//     scan fails and the full path gives the error; or by the grammar, which
//     (1) rules out. Only classifications that succeeded are cached.
//  4. UESCAPE. base_yylex decodes U&"…" and U&'…' with the escape character
//     given by the string constant after UESCAPE, and checks both: U&'…'
//     (USCONST) and UIDENT keep their text in the key, and so does a string
//     constant right after UESCAPE.
//  5. The key's texts are exact. The scan's token ranges must tile the text
//     with nothing but white space between them (comments are tokens), so
//     every token's text in the key is its whole source text, and a
//     non-value token's value (identifier, keyword, operator, parameter) is
//     a function of that text.
//  6. Comments. The grammar never sees them, but in libpg_query the lexer
//     returns them and base_yylex's look-ahead does not skip them: "NOT
//     /* c */ IN", "NULLS /* c */ FIRST", "WITH /* c */ ORDINALITY",
//     "U&'…' /* c */ UESCAPE '!'" parse differently (here: fail) from the
//     same texts without the comment. So a comment's place is part of the
//     key; only its content is left out.
//
// The depth guard (depth.go) bounds a text by its token kinds alone, so
// every text of a shape has the bound of the text that was classified.
//
// Points 1 and 4 rest on an audit of the grammar of the libpg_query that
// pg_query_go embeds (PostgreSQL 17, gram.y actions as compiled into
// src_backend_parser_gram.c): TestShapeAuditVersion fails when that changes,
// and the audit must then be redone before updating auditedPGVersion.
//
// Statement texts are cut from the new text the way the grammar does it: a
// statement starts at offset 0 or one byte after the ";" that ends the
// previous slot, and ends at the next ";" or at the end of the text; the
// same derivation consumes the same ";" tokens, so the entry records their
// token indexes.

// auditedPGVersion is the PostgreSQL version of the grammar audited for
// the shape cache (ParseResult.Version).
const auditedPGVersion = 170007

// Token kinds the shape code looks at.
const (
	tokSemicolon = int32(pg_query.Token_ASCII_59)
	tokPlus      = int32(pg_query.Token_ASCII_43)
	tokMinus     = int32(pg_query.Token_ASCII_45)
)

// constVal is the type of a constant's value: the token kind and the type
// of the A_Const the grammar makes of it must agree.
type constVal uint8

const (
	cvOther constVal = iota
	cvInt
	cvFloat
	cvString
	cvBits
)

// valueKind returns the value type of a value token kind, cvOther for a
// token whose text the shape key keeps.
func valueKind(tok int32) constVal {
	switch pg_query.Token(tok) {
	case pg_query.Token_ICONST:
		return cvInt
	case pg_query.Token_FCONST:
		return cvFloat
	case pg_query.Token_SCONST:
		return cvString
	case pg_query.Token_BCONST, pg_query.Token_XCONST:
		return cvBits
	}
	return cvOther
}

// shapeTok is one token of a text as the grammar sees it (comments left out).
type shapeTok struct {
	start, end int32
	kind       int32
	value      bool // a constant whose value the key leaves out
}

// constNode is an A_Const of the parse tree: its location and value type.
type constNode struct {
	loc int32
	val constVal
}

// rawSpan is a RawStmt's location and length, as the parser reported them.
type rawSpan struct{ loc, len int32 }

// constTrack is what a full classification reports for the shape cache.
type constTrack struct {
	// valueRead: the classification depends on the value of an A_Const.
	valueRead bool
	consts    []constNode
	stmts     []rawSpan
}

func (t *constTrack) add(ac *pg_query.A_Const) {
	v := cvOther
	switch ac.Val.(type) {
	case *pg_query.A_Const_Ival:
		v = cvInt
	case *pg_query.A_Const_Fval:
		v = cvFloat
	case *pg_query.A_Const_Sval:
		v = cvString
	case *pg_query.A_Const_Bsval:
		v = cvBits
	}
	t.consts = append(t.consts, constNode{loc: ac.Location, val: v})
}

// shapeScan is the lexer's view of one text: its tokens and its shape key.
type shapeScan struct {
	toks []shapeTok
	key  []byte
}

// errScanFormat: the scan's output could not be decoded.
var errScanFormat = errors.New("pgsql: malformed scan result")

// scan runs PostgreSQL's lexer over sql (already checked by checkText) and
// builds the shape key. It reports false when sql cannot take the shape
// path: a lexer error, a panic, or tokens that do not tile the text.
func (s *shapeScan) scan(sql string) (ok bool) {
	s.toks, s.key = s.toks[:0], s.key[:0]
	defer func() {
		if r := recover(); r != nil {
			ok = false
		}
	}()
	pb, err := parser.ScanToProtobuf(sql)
	if err != nil {
		return false
	}
	prevEnd := 0
	prevKind := int32(-1)
	err = decodeScan(pb, func(start, end, kind int32) bool {
		if start < int32(prevEnd) || end <= start || int(end) > len(sql) || !allSpace(sql[prevEnd:start]) {
			return false
		}
		prevEnd = int(end)
		switch pg_query.Token(kind) {
		case pg_query.Token_SQL_COMMENT, pg_query.Token_C_COMMENT:
			// Where a comment is matters (see 6 above); what it says does not.
			s.key = protowire.AppendVarint(s.key, uint64(kind)<<1|1)
			return true
		}
		value := valueKind(kind) != cvOther && prevKind != int32(pg_query.Token_UESCAPE)
		prevKind = kind
		s.toks = append(s.toks, shapeTok{start: start, end: end, kind: kind, value: value})
		if value {
			s.key = protowire.AppendVarint(s.key, uint64(kind)<<1|1)
			return true
		}
		s.key = protowire.AppendVarint(s.key, uint64(kind)<<1)
		s.key = protowire.AppendVarint(s.key, uint64(end-start))
		s.key = append(s.key, sql[start:end]...)
		return true
	})
	return err == nil && allSpace(sql[prevEnd:])
}

// decodeScan decodes a pg_query ScanResult message (field 2: repeated
// ScanToken {1: start, 2: end, 4: token}) without allocating, calling fn
// for every token in order; fn returns false to stop with an error.
func decodeScan(b []byte, fn func(start, end, kind int32) bool) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errScanFormat
		}
		b = b[n:]
		if num != 2 || typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return errScanFormat
			}
			b = b[n:]
			continue
		}
		msg, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return errScanFormat
		}
		b = b[n:]
		var start, end, kind int32
		for len(msg) > 0 {
			num, typ, n := protowire.ConsumeTag(msg)
			if n < 0 {
				return errScanFormat
			}
			msg = msg[n:]
			if typ != protowire.VarintType || (num != 1 && num != 2 && num != 4) {
				n = protowire.ConsumeFieldValue(num, typ, msg)
				if n < 0 {
					return errScanFormat
				}
				msg = msg[n:]
				continue
			}
			v, n := protowire.ConsumeVarint(msg)
			if n < 0 {
				return errScanFormat
			}
			msg = msg[n:]
			switch num {
			case 1:
				start = int32(v)
			case 2:
				end = int32(v)
			case 4:
				kind = int32(v)
			}
		}
		if !fn(start, end, kind) {
			return errScanFormat
		}
	}
	return nil
}

// allSpace reports whether s holds only the bytes PostgreSQL's scanner
// skips as white space (the set trimSpace trims).
func allSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\n', '\r', '\f', '\v':
		default:
			return false
		}
	}
	return true
}

// stmtSpan locates a statement's text by the ";" tokens around it: the
// index (among shapeTok) of the ";" it starts after, or -1 for offset 0,
// and of the ";" it ends before, or -1 for the end of the text.
type stmtSpan struct{ after, before int32 }

// shapeEntry is a classification that holds for every text of a shape.
type shapeEntry struct {
	cmds  []command.Command // Text left empty
	spans []stmtSpan
}

// newShapeEntry returns the entry for the shape of sql (scanned as toks)
// from its classification cmds and what the walk reported, or nil when the
// classification may depend on a constant's value.
func newShapeEntry(sql string, toks []shapeTok, cmds []command.Command, tr *constTrack) *shapeEntry {
	if tr.valueRead || len(tr.stmts) != len(cmds) || !constsCovered(toks, tr.consts) {
		return nil
	}
	e := &shapeEntry{
		cmds:  make([]command.Command, len(cmds)),
		spans: make([]stmtSpan, len(cmds)),
	}
	for i, st := range tr.stmts {
		sp := stmtSpan{after: -1, before: -1}
		if st.loc != 0 {
			j, ok := semicolonAt(toks, st.loc-1)
			if !ok {
				return nil
			}
			sp.after = j
		}
		if st.len != 0 {
			j, ok := semicolonAt(toks, st.loc+st.len)
			if !ok {
				return nil
			}
			sp.before = j
		}
		// The entry must give back this text's own commands.
		text, ok := sp.text(sql, toks)
		if !ok || text != cmds[i].Text {
			return nil
		}
		e.spans[i] = sp
		e.cmds[i] = cmds[i]
		e.cmds[i].Text = ""
	}
	return e
}

// semicolonAt returns the index of the ";" token starting at offset off.
func semicolonAt(toks []shapeTok, off int32) (int32, bool) {
	i, found := slices.BinarySearchFunc(toks, off, func(t shapeTok, off int32) int {
		return int(t.start) - int(off)
	})
	if !found || toks[i].kind != tokSemicolon {
		return 0, false
	}
	return int32(i), true
}

// constsCovered reports whether every value token of toks became an
// A_Const of its value type at its own location, or at the location of a
// sign right before it.
func constsCovered(toks []shapeTok, consts []constNode) bool {
	slices.SortFunc(consts, func(a, b constNode) int { return int(a.loc) - int(b.loc) })
	has := func(loc int32, v constVal) bool {
		i, _ := slices.BinarySearchFunc(consts, loc, func(c constNode, loc int32) int {
			return int(c.loc) - int(loc)
		})
		for ; i < len(consts) && consts[i].loc == loc; i++ {
			if consts[i].val == v {
				return true
			}
		}
		return false
	}
	for i, t := range toks {
		if !t.value {
			continue
		}
		v := valueKind(t.kind)
		ok := has(t.start, v)
		for j := i - 1; !ok && j >= 0 && (toks[j].kind == tokMinus || toks[j].kind == tokPlus); j-- {
			ok = has(toks[j].start, v)
		}
		if !ok {
			return false
		}
	}
	return true
}

// text cuts the statement out of sql, scanned as toks, as stmtText does
// with the parser's locations.
func (sp stmtSpan) text(sql string, toks []shapeTok) (string, bool) {
	start, end := 0, len(sql)
	if sp.after >= 0 {
		if int(sp.after) >= len(toks) {
			return "", false
		}
		start = int(toks[sp.after].start) + 1
	}
	if sp.before >= 0 {
		if int(sp.before) >= len(toks) {
			return "", false
		}
		end = int(toks[sp.before].start)
	}
	if start > end || end > len(sql) {
		return "", false
	}
	return trimSpace(sql[start:end]), true
}

// commands returns the entry's commands for sql, a text of the entry's
// shape scanned as toks: a new slice, with Text cut from sql. It reports
// false if a span does not fit sql (not possible for a text of the same
// key; the caller then classifies sql in full).
func (e *shapeEntry) commands(sql string, toks []shapeTok) ([]command.Command, bool) {
	cmds := make([]command.Command, len(e.cmds))
	for i, sp := range e.spans {
		text, ok := sp.text(sql, toks)
		if !ok || text == "" {
			return nil, false
		}
		cmds[i] = e.cmds[i]
		cmds[i].Text = text
	}
	return cmds, true
}
