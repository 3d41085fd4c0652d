// Package pgsql classifies PostgreSQL SQL text into command.Commands with
// the real PostgreSQL parser (libpg_query, through pg_query_go).
//
// Threat model. The text comes from an AI agent that may try to get a
// change past a read-only policy, so the classifier never looks at keywords
// or the first word of the text: it parses the whole message the way the
// server will (one simple-Query message may hold several statements; dollar
// quotes, comments, U&"…" identifiers and letter case are the parser's
// business) and walks the whole parse tree of each statement, so that a
// DELETE inside a CTE, a dangerous function in a default expression or an
// EXECUTE parameter is found wherever the grammar allows it.
//
// Fail closed: text the parser rejects (including invalid UTF-8 and NUL
// bytes, which the server would reject or truncate) is a *ParseError; a
// statement that parses but that weir does not know how to classify (a
// statement type added to the grammar after this file was written, a panic
// in the walk, a text nested deep enough to overflow the C parser's stack:
// see depth.go) is a *ClassifyError. Neither ever yields a Command.
//
// Classifier adds a cache for the statements agents repeat, keyed by the
// exact text and, behind it, by the statement's shape as PostgreSQL's lexer
// sees it (the same statement with other constants: see shape.go); the
// commands it returns are shared and read-only, and are always exactly what
// Classify returns for the same text.
//
// What the classifier cannot know, because it needs the catalog: which
// function an unqualified name resolves to when a user function shadows a
// built-in (weir flags the CREATE FUNCTION that shadows it instead), what a
// view or a SECURITY DEFINER function reads, and the body of a prepared
// statement named by EXECUTE (the adapter keeps the PREPAREd classification).
package pgsql

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/pganalyze/pg_query_go/v6/parser"

	"github.com/weir-gw/weir/internal/command"
)

// Protocol is the Command.Protocol of every command this package produces.
const Protocol = "postgres"

// ParseError is returned when the parser rejects the text. Message is the
// parser's own message, safe to show the client (it quotes only the
// client's text); Position is the 1-based byte offset in the text where the
// parser stopped, or 0 if unknown.
type ParseError struct {
	Message  string
	Position int
}

func (e *ParseError) Error() string {
	if e.Position > 0 {
		return fmt.Sprintf("pgsql: %s (at byte %d)", e.Message, e.Position)
	}
	return "pgsql: " + e.Message
}

// ClassifyError is returned when the text parses but weir cannot classify a
// statement: the request must be refused. Statement is the statement's text
// (possibly empty), Reason says what weir did not understand.
type ClassifyError struct {
	Statement string
	Reason    string
}

func (e *ClassifyError) Error() string {
	return "pgsql: cannot classify statement: " + e.Reason
}

// Classify parses sql (one simple-Query message; may hold several
// statements) with the real PostgreSQL parser and returns one Command per
// statement, in order. Empty or comment-only input gives zero commands and a
// nil error. The commands' Text fields are substrings of sql.
func Classify(sql string) ([]command.Command, error) {
	return classify(sql, nil)
}

// classify is Classify; tr, when not nil, receives what the shape cache
// needs to know about the text's constants and statement boundaries.
func classify(sql string, tr *constTrack) ([]command.Command, error) {
	if err := checkText(sql); err != nil {
		return nil, err
	}
	if err := checkDepth(sql); err != nil {
		return nil, err
	}
	tree, err := parse(sql)
	if err != nil {
		return nil, err
	}
	return classifyTreeTrack(sql, tree, tr)
}

// checkText refuses the texts the server would reject or truncate before
// parsing: NUL bytes and invalid UTF-8.
func checkText(sql string) error {
	if i := strings.IndexByte(sql, 0); i >= 0 {
		return &ParseError{Message: "invalid message format: NUL byte in query text", Position: i + 1}
	}
	if !utf8.ValidString(sql) {
		return &ParseError{Message: `invalid byte sequence for encoding "UTF8"`, Position: firstInvalidUTF8(sql) + 1}
	}
	return nil
}

// parse runs the parser; a panic in it (or in decoding its output) is a
// ClassifyError, never a crash of the gateway.
func parse(sql string) (tree *pg_query.ParseResult, err error) {
	defer func() {
		if r := recover(); r != nil {
			tree, err = nil, &ClassifyError{Reason: fmt.Sprintf("internal error in the parser: %v", r)}
		}
	}()
	tree, err = pg_query.Parse(sql)
	if err != nil {
		var pe *parser.Error
		if errors.As(err, &pe) {
			return nil, &ParseError{Message: pe.Message, Position: bytePosition(sql, pe.Cursorpos)}
		}
		// The C parser accepted the text but its tree could not be decoded
		// (e.g. nested deeper than the protobuf decoder allows).
		return nil, &ClassifyError{Reason: "parse tree: " + err.Error()}
	}
	return tree, nil
}

// classifyTree classifies every statement of a parse tree of sql. A panic
// in the walk is a ClassifyError.
func classifyTree(sql string, tree *pg_query.ParseResult) ([]command.Command, error) {
	return classifyTreeTrack(sql, tree, nil)
}

// classifyTreeTrack is classifyTree, reporting to tr when it is not nil.
func classifyTreeTrack(sql string, tree *pg_query.ParseResult, tr *constTrack) (cmds []command.Command, err error) {
	defer func() {
		if r := recover(); r != nil {
			cmds, err = nil, &ClassifyError{Reason: fmt.Sprintf("internal error: %v", r)}
		}
	}()
	cmds = make([]command.Command, 0, len(tree.GetStmts()))
	for _, raw := range tree.GetStmts() {
		cmd, err := classifyStmt(sql, raw, tr)
		if err != nil {
			return nil, err
		}
		cmds = append(cmds, cmd)
		if tr != nil {
			tr.stmts = append(tr.stmts, rawSpan{loc: raw.StmtLocation, len: raw.StmtLen})
		}
	}
	return cmds, nil
}

// firstInvalidUTF8 returns the byte offset of the first invalid sequence.
func firstInvalidUTF8(s string) int {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(s)
}

// bytePosition converts the parser's 1-based character cursor to a 1-based
// byte offset in s.
func bytePosition(s string, chars int) int {
	if chars <= 0 {
		return 0
	}
	n := 1
	for i := range s {
		if n == chars {
			return i + 1
		}
		n++
	}
	return len(s) + 1
}

// stmtText cuts a statement out of the message, without the whitespace the
// server would skip.
func stmtText(sql string, raw *pg_query.RawStmt) (string, bool) {
	start, n := int(raw.StmtLocation), int(raw.StmtLen)
	if start < 0 || start > len(sql) || n < 0 || start+n > len(sql) {
		return "", false
	}
	end := len(sql)
	if n > 0 {
		end = start + n
	}
	return trimSpace(sql[start:end]), true
}

// trimSpace trims the bytes PostgreSQL's scanner treats as white space.
// (Unicode spaces such as NBSP are identifier bytes to the scanner.)
func trimSpace(s string) string {
	isSpace := func(b byte) bool {
		switch b {
		case ' ', '\t', '\n', '\r', '\f', '\v':
			return true
		}
		return false
	}
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

func classifyStmt(sql string, raw *pg_query.RawStmt, tr *constTrack) (command.Command, error) {
	if raw == nil {
		return command.Command{}, &ClassifyError{Reason: "empty statement"}
	}
	text, ok := stmtText(sql, raw)
	if !ok {
		return command.Command{}, &ClassifyError{Reason: "statement location outside the text"}
	}
	if raw.Stmt == nil || raw.Stmt.Node == nil {
		return command.Command{}, &ClassifyError{Statement: text, Reason: "empty statement node"}
	}
	d, err := describe(raw.Stmt)
	if err != nil {
		err.Statement = text
		return command.Command{}, err
	}

	c := &collector{h: newHash(), track: tr}
	if d.readsConst {
		c.readConst()
	}
	c.walk(raw.Stmt.ProtoReflect(), false)

	var fp [8]byte
	for i := range fp {
		fp[i] = byte(c.h.v >> (56 - 8*i))
	}
	cmd := command.Command{
		Protocol:    Protocol,
		Verb:        d.verb,
		Kind:        d.kind,
		Text:        text,
		Fingerprint: hex.EncodeToString(fp[:]),
		Functions:   c.funcs,
		Prepared:    d.prepared,
	}
	risks := d.risks | c.funcRisks
	if d.planOnly {
		// EXPLAIN without ANALYZE plans the statement and runs nothing: what
		// it would write it only reads the metadata of. Function risks stay:
		// the planner evaluates immutable functions with constant arguments.
		cmd.Reads = c.reads
		for _, w := range c.writes {
			cmd.Reads = addUnique(cmd.Reads, w)
		}
	} else {
		cmd.Reads, cmd.Writes = c.reads, c.writes
		risks |= c.stmtRisks
		if c.into {
			risks |= rSelectInto
			if cmd.Kind == command.KindRead {
				cmd.Kind = command.KindDDL
			}
		}
		nested := c.dml
		if d.dml {
			nested--
		}
		if nested > 0 {
			if c.dmlInCTE > 0 || d.kind == command.KindRead {
				risks |= rWritableCTE
			}
			cmd.Kind = atLeastWrite(cmd.Kind)
		}
		if c.funcWrite {
			cmd.Kind = atLeastWrite(cmd.Kind)
		}
	}
	cmd.Risks = risks.list()
	return cmd, nil
}

// atLeastWrite raises a kind that changes nothing to write. The empty kind
// of EXECUTE stays empty: the adapter substitutes the prepared body's.
func atLeastWrite(k command.Kind) command.Kind {
	switch k {
	case command.KindRead, command.KindSession, command.KindTransaction:
		return command.KindWrite
	}
	return k
}

var (
	_ error = (*ParseError)(nil)
	_ error = (*ClassifyError)(nil)
)
