package pgsql

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Column lineage for masking (issue 3, corpus M01–M04, M09).
//
// A masked column is sensitive because of where its values come from, not
// because of what they look like, so a detector cannot follow it through
// lower(email), row_to_json(c) or substr(key, 11, 10). The resolver walks
// the real parse tree of a statement and, for every output column, works
// out which masked columns it derives from. The rule is deliberately
// simple and sound: ANY expression that references a masked column
// (directly, through a whole-row reference, a star, a subquery, a CTE, a
// view, a set-operation arm at the same position) is masked whole. There
// is no list of "safe" transforms to fall behind.
//
// A masked column used where it shapes the result instead of appearing in
// it (WHERE, JOIN ON, HAVING, ORDER BY, GROUP BY, DISTINCT ON, window
// clauses, FILTER, LIMIT, CASE conditions, a divisor) lets a query infer
// its values one bit at a time (corpus M04): that is refused, except
// equality lookups (col = expr, col IN (…)) when the operator allows them.
// A masked value may flow only into functions, operators and casts that
// cannot fail on it: whether a statement failed is visible, so one that
// may fail depending on the value is an error oracle (oracle.go).
// A statement that would copy masked values somewhere unmasked (INSERT …
// SELECT, UPDATE … SET, CREATE TABLE AS, SELECT INTO, COPY to a file,
// views) is refused.
//
// Fail closed: whatever the resolver cannot follow is a *LineageError, never
// a guess — a relation missing from the catalog, a function weir does not
// know (its body may read a masked table), a star over something of unknown
// width, a column reference it cannot resolve, a statement type it does not
// know that references a masked column.

// MaskRules are the column selectors of policy.masking.columns.
type MaskRules struct {
	sels []selector
	// AllowEquality admits equality lookups on masked columns.
	AllowEquality bool
}

type selector struct {
	schema, table, column string // table "*" matches every relation
	key                   string // the selector as configured
}

// NewMaskRules compiles column selectors (table.column,
// schema.table.column, *.column).
func NewMaskRules(columns []string, allowEquality bool) (*MaskRules, error) {
	r := &MaskRules{AllowEquality: allowEquality}
	for _, c := range columns {
		p := strings.Split(c, ".")
		var s selector
		switch len(p) {
		case 2:
			s = selector{table: p[0], column: p[1]}
		case 3:
			s = selector{schema: p[0], table: p[1], column: p[2]}
		default:
			return nil, fmt.Errorf("pgsql: column selector %q: want table.column, schema.table.column or *.column", c)
		}
		if s.table == "" || s.column == "" || (s.table == "*" && s.schema != "") {
			return nil, fmt.Errorf("pgsql: column selector %q: want table.column, schema.table.column or *.column", c)
		}
		s.key = c
		r.sels = append(r.sels, s)
	}
	return r, nil
}

// Empty reports whether no column is masked.
func (r *MaskRules) Empty() bool { return r == nil || len(r.sels) == 0 }

// Match returns the selector that masks column col of relation
// schema.rel, or "".
func (r *MaskRules) Match(schema, rel, col string) string {
	if r == nil {
		return ""
	}
	for i := range r.sels {
		s := &r.sels[i]
		if s.column != col {
			continue
		}
		if s.table == "*" || (s.table == rel && (s.schema == "" || s.schema == schema)) {
			return s.key
		}
	}
	return ""
}

// Relation is what the resolver needs to know of a catalog relation.
type Relation struct {
	Schema, Name string
	// Kind is pg_class.relkind: 'r' table, 'p' partitioned table, 'f'
	// foreign table, 'v' view, 'm' materialized view; 's' marks a system
	// relation (pg_catalog, information_schema), which is never masked.
	Kind    byte
	Columns []string
	// Definition is the query of a view or materialized view
	// (pg_get_viewdef), whose lineage the resolver follows.
	Definition string
	// Ancestors are the {schema, name} of the tables this one inherits
	// from or is a partition of, at any depth (pg_inherits). Their rows
	// are its rows: a selector on an ancestor masks the column of the
	// same name here.
	Ancestors [][2]string
}

// MatchRelation returns the selector that masks column col of rel, through
// rel's own name or an ancestor's, or "".
func (r *MaskRules) MatchRelation(rel *Relation, col string) string {
	if s := r.Match(rel.Schema, rel.Name, col); s != "" {
		return s
	}
	for _, a := range rel.Ancestors {
		if s := r.Match(a[0], a[1], col); s != "" {
			return s
		}
	}
	return ""
}

// Catalog answers which relations a name may refer to.
type Catalog interface {
	// Lookup returns the relations schema.name names; with schema "",
	// every relation of that name in any schema (the session's
	// search_path may pick any of them). None: unknown.
	Lookup(schema, name string) []*Relation
}

// ServerEncoder is implemented by a Catalog that knows the server's
// encoding (server_encoding). Some functions are total only in UTF-8
// (ascii, convert_to(x, 'UTF8')): without it they are refused on masked
// values as error oracles.
type ServerEncoder interface {
	ServerEncoding() string
}

// MaskPlan is the masking plan of one statement.
type MaskPlan struct {
	// Columns has one entry per output column of the statement's rows
	// (SELECT, RETURNING, the query of COPY, DECLARE or PREPARE): the
	// selector of a masked column it derives from, or "" when it is
	// clean. Nil when no output column is masked.
	Columns []string
	// Derived is parallel to Columns: set where the masked output is not
	// the stored value itself but an expression over it (a function, an
	// operator, a cast, CASE). The agent chooses what such a value holds
	// (lpad(substr(ssn, 3, 1), 6, 'x')), so it must be rendered without
	// any of its characters and without a stable hash (see the adapter).
	Derived []bool
	// Touches is set when the statement reads a masked column anywhere:
	// the text of its errors is withheld (a failed cast prints the value).
	Touches bool
	// Lookup is set when an allowed equality lookup uses a masked column.
	Lookup bool
	// Copy describes the data of COPY … TO STDOUT; nil for other statements.
	Copy *CopyPlan
	// ConstDependent is set when the plan depends on the value of a
	// constant of the text (ORDER BY 2, COPY … (FORMAT 'csv')): it must
	// not be reused for a text of the same shape (ShapeKey).
	ConstDependent bool
}

// ShapeKey returns a key that two texts share exactly when PostgreSQL's
// lexer sees the same tokens in them up to the values of their constants
// (see shape.go), or ok=false when the lexer cannot say. A plan that is
// not ConstDependent holds for every text of its shape: the resolver reads
// no constant's value except where it sets ConstDependent.
func ShapeKey(sql string) (key string, ok bool) {
	if checkText(sql) != nil {
		return "", false
	}
	s := scanPool.Get().(*shapeScan)
	defer scanPool.Put(s)
	if !s.scan(sql) {
		return "", false
	}
	return string(s.key), true
}

// Masked reports whether any output column is masked.
func (p *MaskPlan) Masked() bool { return p != nil && p.Columns != nil }

// CopyPlan is how COPY … TO STDOUT writes rows.
type CopyPlan struct {
	CSV    bool
	Header bool
}

// LineageError refuses a statement whose lineage to a masked column cannot
// be established, or which uses a masked column as an inference channel.
// Its message is written for the agent that reads it.
type LineageError struct {
	Column string // the masked selector involved, if known
	Reason string
	// Unknown is set when a relation was missing from the catalog: the
	// adapter may read the catalog again and retry.
	Unknown bool
}

func (e *LineageError) Error() string { return e.Reason }

// maxViewDepth bounds how deep views over views are followed.
const maxViewDepth = 8

// PlanMasking parses sql and returns the masking plan of each of its
// statements, in order. An error is a *ParseError, a *ClassifyError or a
// *LineageError; in each case the whole text must be refused.
func PlanMasking(sql string, cat Catalog, rules *MaskRules) (plans []MaskPlan, err error) {
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
	defer func() {
		if r := recover(); r != nil {
			plans, err = nil, &ClassifyError{Reason: fmt.Sprintf("internal error in lineage: %v", r)}
		}
	}()
	se, ok := cat.(ServerEncoder)
	utf8 := ok && se.ServerEncoding() == "UTF8"
	for _, raw := range tree.GetStmts() {
		r := &resolver{cat: cat, rules: rules, views: map[*Relation][][]string{}, utf8: utf8}
		p, err := r.statement(raw.GetStmt())
		if err == nil && r.oracleErr != nil {
			err = r.oracleErr
		}
		if err != nil {
			return nil, err
		}
		plans = append(plans, p)
	}
	return plans, nil
}

// resolver follows lineage through one statement.
type resolver struct {
	cat     Catalog
	rules   *MaskRules
	depth   int
	touches bool
	lookup  bool
	views   map[*Relation][][]string // resolved views
	work    int                      // queries resolved, bounded by maxLineageWork
	// constDep: a constant's value was read (see MaskPlan.ConstDependent).
	constDep bool
	// oracleErr: the first error oracle found (see oracle).
	oracleErr error
	// utf8: the server encoding is known to be UTF-8 (ServerEncoder).
	utf8 bool
}

// maxLineageWork bounds the queries resolved for one statement: recursive
// CTEs are resolved until their taint settles, which nesting multiplies.
const maxLineageWork = 4096

// srcs is the set of masked selectors a value derives from (nil: clean).
// It may also hold derivedMark, never first.
type srcs []string

// derivedMark in a taint says an expression computed the value from the
// masked sources rather than passing a stored value through.
const derivedMark = "\x00derived"

// derive marks a tainted value as computed.
func derive(t srcs) srcs {
	if len(t) == 0 || slices.Contains(t, derivedMark) {
		return t
	}
	return append(slices.Clone(t), derivedMark)
}

func union(a srcs, b srcs) srcs {
	for _, s := range b {
		if !slices.Contains(a, s) {
			a = append(a, s)
		}
	}
	return a
}

// col is an output column of a query or a column of a FROM item.
type col struct {
	name string
	src  srcs
}

// rte is a FROM item, as its columns are seen from outside.
type rte struct {
	alias string
	cols  []col
	// known is false when the width is unknown (a star over it is refused).
	known bool
	// anyName is set when the item may hold columns of names weir does
	// not know (a function returning a row of a type weir cannot see):
	// a name not found elsewhere may be one of them.
	anyName bool
}

func (t *rte) whole() srcs {
	var s srcs
	for _, c := range t.cols {
		s = union(s, c.src)
	}
	return s
}

// scope is the name space of one query level.
type scope struct {
	parent *scope
	ctes   map[string]*rte
	named  []*rte // what column references may name
	from   []*rte // the top-level FROM items, for *
	out    []col  // the target list, for ORDER BY/GROUP BY names
}

func (s *scope) cte(name string) *rte {
	for ; s != nil; s = s.parent {
		if t, ok := s.ctes[name]; ok {
			return t
		}
	}
	return nil
}

func (r *resolver) refuse(column, format string, args ...any) error {
	return &LineageError{Column: column, Reason: fmt.Sprintf(format, args...)}
}

// statement resolves one top-level statement.
func (r *resolver) statement(n *pg_query.Node) (MaskPlan, error) {
	var p MaskPlan
	var out []col
	var err error
	switch s := n.GetNode().(type) {
	case *pg_query.Node_SelectStmt:
		out, err = r.selectStmt(s.SelectStmt, nil)
		if err == nil && s.SelectStmt.IntoClause != nil && r.touches {
			err = r.refuse("", "SELECT INTO would copy masked values into a new table; select them instead (they are masked on the way out)")
		}
	case *pg_query.Node_InsertStmt:
		out, err = r.insert(s.InsertStmt)
	case *pg_query.Node_UpdateStmt:
		out, err = r.update(s.UpdateStmt)
	case *pg_query.Node_DeleteStmt:
		out, err = r.delete(s.DeleteStmt)
	case *pg_query.Node_MergeStmt:
		err = r.anyMasked(n, "MERGE")
	case *pg_query.Node_ExplainStmt:
		// EXPLAIN prints a plan, not values; ANALYZE runs the statement,
		// so its inference channels count all the same.
		_, err = r.statement(s.ExplainStmt.Query)
		return MaskPlan{}, err
	case *pg_query.Node_CopyStmt:
		return r.copyStmt(s.CopyStmt)
	case *pg_query.Node_DeclareCursorStmt:
		out, err = r.query(s.DeclareCursorStmt.Query)
	case *pg_query.Node_PrepareStmt:
		out, err = r.query(s.PrepareStmt.Query)
	case *pg_query.Node_CreateTableAsStmt:
		_, err = r.query(s.CreateTableAsStmt.Query)
		if err == nil && r.touches {
			err = r.refuse("", "CREATE TABLE AS / CREATE MATERIALIZED VIEW would copy masked values into a relation weir does not mask; select them instead (they are masked on the way out)")
		}
	case *pg_query.Node_ViewStmt:
		_, err = r.query(s.ViewStmt.Query)
		if err == nil && r.touches {
			err = r.refuse("", "views over masked columns cannot be created through weir; select from the tables instead (masked values are masked on the way out)")
		}
	case *pg_query.Node_DoStmt, *pg_query.Node_CallStmt, *pg_query.Node_CreateTrigStmt, *pg_query.Node_RuleStmt:
		// Code weir cannot see into may read masked tables and hand the
		// values out through notices, other tables or errors.
		err = r.refuse("", "weir cannot follow masked columns through procedural code (DO, CALL, triggers, rules) on a target with masked columns; use plain SQL")
	default:
		// Statements without rows of their own (SET, BEGIN, DDL, FETCH,
		// EXECUTE, whose plans the adapter keeps): anything that reads a
		// masked column inside them is refused, as weir does not know
		// where its values would go.
		err = r.anyMasked(n, strings.TrimSuffix(strings.TrimPrefix(fmt.Sprintf("%T", s), "*pg_query.Node_"), "Stmt"))
	}
	if err != nil {
		return MaskPlan{}, err
	}
	p.Touches, p.Lookup, p.ConstDependent = r.touches, r.lookup, r.constDep
	p.setColumns(out)
	return p, nil
}

// setColumns fills Columns and Derived from the output columns.
func (p *MaskPlan) setColumns(out []col) {
	for i, c := range out {
		if len(c.src) > 0 {
			if p.Columns == nil {
				p.Columns = make([]string, len(out))
				p.Derived = make([]bool, len(out))
			}
			p.Columns[i] = c.src[0]
			p.Derived[i] = slices.Contains(c.src, derivedMark)
		}
	}
}

// anyMasked refuses a statement of a kind the resolver does not follow if
// anything under it can reach a masked column: a relation with one.
func (r *resolver) anyMasked(n *pg_query.Node, what string) error {
	var found string
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		if found != "" {
			return
		}
		if rv, ok := m.Interface().(*pg_query.RangeVar); ok {
			for _, rel := range r.cat.Lookup(rv.Schemaname, rv.Relname) {
				if s := r.relationMasks(rel); s != "" {
					found = s
					return
				}
			}
			return
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.IsList() && fd.Kind() == protoreflect.MessageKind:
				l := v.List()
				for i := 0; i < l.Len(); i++ {
					walk(l.Get(i).Message())
				}
			case fd.Kind() == protoreflect.MessageKind:
				walk(v.Message())
			}
			return found == ""
		})
	}
	walk(n.ProtoReflect())
	if found != "" {
		r.touches = true
		return r.refuse(found, "%s touching a relation with masked column %s is not supported through weir (weir cannot follow where its values go); use SELECT", what, found)
	}
	return nil
}

// relationMasks returns a masked selector of rel (following views), or "".
func (r *resolver) relationMasks(rel *Relation) string {
	switch rel.Kind {
	case 'v', 'm':
		cols, err := r.view(rel)
		if err != nil {
			return "view " + rel.Schema + "." + rel.Name
		}
		for _, c := range cols {
			if len(c) > 0 {
				return c[0]
			}
		}
		return ""
	case 's':
		return ""
	}
	for _, c := range rel.Columns {
		if s := r.rules.MatchRelation(rel, c); s != "" {
			return s
		}
	}
	return ""
}

// query resolves a node that must be a query (SelectStmt, or DML with
// RETURNING as in PREPARE).
func (r *resolver) query(n *pg_query.Node) ([]col, error) {
	switch s := n.GetNode().(type) {
	case *pg_query.Node_SelectStmt:
		return r.selectStmt(s.SelectStmt, nil)
	case *pg_query.Node_InsertStmt:
		return r.insert(s.InsertStmt)
	case *pg_query.Node_UpdateStmt:
		return r.update(s.UpdateStmt)
	case *pg_query.Node_DeleteStmt:
		return r.delete(s.DeleteStmt)
	case *pg_query.Node_ExecuteStmt:
		// CREATE TABLE t AS EXECUTE p: what p reads is session state the
		// resolver does not see, so its rows could copy masked values.
		return nil, r.refuse("", "weir cannot follow EXECUTE of a prepared statement here on a target with masked columns; write the query itself")
	}
	return nil, r.anyMasked(n, "this statement")
}

// with resolves a WITH clause into a new scope above outer.
func (r *resolver) with(wc *pg_query.WithClause, outer *scope) (*scope, error) {
	if wc == nil {
		return outer, nil
	}
	sc := &scope{parent: outer, ctes: map[string]*rte{}}
	for i, n := range wc.Ctes {
		cte := n.GetCommonTableExpr()
		if cte == nil {
			return nil, r.refuse("", "weir cannot follow this WITH clause")
		}
		var cols []col
		var err error
		if wc.Recursive {
			// Under WITH RECURSIVE a CTE sees the later ones too, which
			// weir does not resolve ahead: a later name here would be
			// taken for the real relation of that name.
			for _, later := range wc.Ctes[i+1:] {
				if name := later.GetCommonTableExpr().GetCtename(); namesRelation(cte.Ctequery, name) {
					return nil, r.refuse("", "weir cannot follow a reference from WITH RECURSIVE query %q to the later query %q; define %q first", cte.Ctename, name, name)
				}
			}
			// The recursive arm sees the CTE itself: iterate until the
			// taint of its columns stops growing. It only grows, one
			// (column, selector) pair at least per round, so it settles
			// within that many rounds.
			for round := 0; ; round++ {
				cols, err = r.cteQuery(cte, sc, true)
				if err != nil {
					return nil, err
				}
				prev := sc.ctes[cte.Ctename]
				sc.ctes[cte.Ctename] = cteRTE(cte, cols)
				if prev != nil && sameTaint(prev.cols, cols) {
					break
				}
				if round > len(cols)*(len(r.rules.sels)+1) {
					return nil, r.refuse("", "weir cannot settle which masked columns recursive query %q carries; simplify it", cte.Ctename)
				}
			}
		} else {
			cols, err = r.cteQuery(cte, sc, false)
			if err != nil {
				return nil, err
			}
		}
		if err := r.searchCycle(cte, cteRTE(cte, cols)); err != nil {
			return nil, err
		}
		sc.ctes[cte.Ctename] = cteOuterRTE(cte, cols)
	}
	return sc, nil
}

// searchCycle refuses SEARCH and CYCLE over masked columns of a CTE: they
// order rows by them and compare them, and the columns they add (the
// search sequence, the cycle path) hold their values.
func (r *resolver) searchCycle(cte *pg_query.CommonTableExpr, t *rte) error {
	var lists []*pg_query.Node
	if sc := cte.SearchClause; sc != nil {
		lists = append(lists, sc.SearchColList...)
	}
	if cc := cte.CycleClause; cc != nil {
		lists = append(lists, cc.CycleColList...)
	}
	for _, n := range lists {
		name := n.GetString_().GetSval()
		for _, c := range t.cols {
			if c.name == name && len(c.src) > 0 {
				return r.inference(c.src[0], "the SEARCH or CYCLE clause of WITH query "+strconv.Quote(cte.Ctename))
			}
		}
	}
	return nil
}

// namesRelation reports whether an unqualified relation name occurs
// anywhere under n.
func namesRelation(n *pg_query.Node, name string) bool {
	found := false
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		if rv, ok := m.Interface().(*pg_query.RangeVar); ok {
			if rv.Schemaname == "" && rv.Relname == name {
				found = true
			}
			return
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.IsList() && fd.Kind() == protoreflect.MessageKind:
				l := v.List()
				for i := 0; i < l.Len() && !found; i++ {
					walk(l.Get(i).Message())
				}
			case fd.Kind() == protoreflect.MessageKind:
				walk(v.Message())
			}
			return !found
		})
	}
	walk(n.ProtoReflect())
	return found
}

func sameTaint(a, b []col) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i].src) != len(b[i].src) {
			return false
		}
	}
	return true
}

func (r *resolver) cteQuery(cte *pg_query.CommonTableExpr, sc *scope, recursive bool) ([]col, error) {
	switch q := cte.Ctequery.GetNode().(type) {
	case *pg_query.Node_SelectStmt:
		// Only under WITH RECURSIVE does a CTE see itself; in a plain
		// WITH its own name inside it is the real relation of that name.
		// (The raw parse tree never sets Cterecursive: analysis does.)
		if recursive && q.SelectStmt.Op != pg_query.SetOperation_SETOP_NONE {
			// A recursive CTE before its first round: seed with the
			// non-recursive arm so the recursive one can name it.
			if sc.ctes[cte.Ctename] == nil && q.SelectStmt.Larg != nil {
				seed, err := r.selectStmt(q.SelectStmt.Larg, sc)
				if err != nil {
					return nil, err
				}
				sc.ctes[cte.Ctename] = cteRTE(cte, seed)
			}
		}
		return r.selectStmt(q.SelectStmt, sc)
	case *pg_query.Node_InsertStmt:
		return r.insert(q.InsertStmt)
	case *pg_query.Node_UpdateStmt:
		return r.update(q.UpdateStmt)
	case *pg_query.Node_DeleteStmt:
		return r.delete(q.DeleteStmt)
	}
	return nil, r.refuse("", "weir cannot follow this WITH query")
}

func cteRTE(cte *pg_query.CommonTableExpr, cols []col) *rte {
	t := &rte{alias: cte.Ctename, cols: slices.Clone(cols), known: true}
	for i, n := range cte.Aliascolnames {
		if i < len(t.cols) {
			t.cols[i].name = n.GetString_().GetSval()
		}
	}
	return t
}

// cteOuterRTE is the CTE as the query after WITH sees it: SEARCH … SET
// seq and CYCLE … SET mark USING path add columns (not seen by its own
// recursive arm), of clean values once searchCycle has refused masked ones.
func cteOuterRTE(cte *pg_query.CommonTableExpr, cols []col) *rte {
	t := cteRTE(cte, cols)
	if sc := cte.SearchClause; sc != nil {
		t.cols = append(t.cols, col{name: sc.SearchSeqColumn})
	}
	if cc := cte.CycleClause; cc != nil {
		t.cols = append(t.cols, col{name: cc.CycleMarkColumn}, col{name: cc.CyclePathColumn})
	}
	return t
}

// selectStmt resolves a SELECT (or VALUES, or a set operation) and
// returns its output columns.
func (r *resolver) selectStmt(s *pg_query.SelectStmt, outer *scope) ([]col, error) {
	if s == nil {
		return nil, r.refuse("", "weir cannot follow an empty query")
	}
	if r.work++; r.work > maxLineageWork {
		return nil, r.refuse("", "this statement is too complex for weir to follow its columns' lineage; simplify it")
	}
	ws, err := r.with(s.WithClause, outer)
	if err != nil {
		return nil, err
	}
	var out []col
	sc := &scope{parent: ws}
	switch {
	case s.Op != pg_query.SetOperation_SETOP_NONE:
		// Arms are matched by position: a masked column in any arm
		// masks that position of the result (corpus M03).
		l, err := r.selectStmt(s.Larg, ws)
		if err != nil {
			return nil, err
		}
		rr, err := r.selectStmt(s.Rarg, ws)
		if err != nil {
			return nil, err
		}
		if len(l) != len(rr) {
			return nil, r.refuse("", "the arms of this %s have different numbers of columns", setOpName(s.Op))
		}
		out = slices.Clone(l)
		for i := range out {
			out[i].src = union(slices.Clone(out[i].src), rr[i].src)
		}
		if !s.All {
			// UNION, INTERSECT and EXCEPT compare rows for equality: the
			// row count of SELECT ssn … INTERSECT SELECT 'guess' answers
			// the guess.
			if err := r.compared(out, setOpName(s.Op)+" (it compares rows)"); err != nil {
				return nil, err
			}
		}
	case len(s.ValuesLists) > 0:
		for _, row := range s.ValuesLists {
			items := row.GetList().GetItems()
			for i, it := range items {
				t, err := r.expr(it, sc)
				if err != nil {
					return nil, err
				}
				if i >= len(out) {
					out = append(out, col{name: "column" + strconv.Itoa(i+1)})
				}
				out[i].src = union(out[i].src, t)
			}
		}
	default:
		for _, f := range s.FromClause {
			t, err := r.fromItem(f, sc)
			if err != nil {
				return nil, err
			}
			sc.from = append(sc.from, t)
		}
		for _, n := range s.TargetList {
			rt := n.GetResTarget()
			if rt == nil {
				return nil, r.refuse("", "weir cannot follow this select list")
			}
			if cr := rt.Val.GetColumnRef(); cr != nil && isStar(cr) {
				cols, err := r.star(cr, sc)
				if err != nil {
					return nil, err
				}
				out = append(out, cols...)
				continue
			}
			t, err := r.expr(rt.Val, sc)
			if err != nil {
				return nil, err
			}
			out = append(out, col{name: outputName(rt), src: t})
		}
		sc.out = out
		if err := r.predicate(s.WhereClause, sc, "WHERE"); err != nil {
			return nil, err
		}
		if err := r.predicate(s.HavingClause, sc, "HAVING"); err != nil {
			return nil, err
		}
		for _, g := range s.GroupClause {
			if err := r.noMaskedOut(g, sc, "GROUP BY"); err != nil {
				return nil, err
			}
		}
		for _, d := range s.DistinctClause {
			if d.GetNode() == nil {
				// Plain DISTINCT compares output rows for equality: with a
				// guessed value mixed in, the row count answers the guess.
				if err := r.compared(out, "DISTINCT (it compares rows)"); err != nil {
					return nil, err
				}
				continue
			}
			if err := r.noMaskedOut(d, sc, "DISTINCT ON"); err != nil {
				return nil, err
			}
		}
		for _, w := range s.WindowClause {
			if err := r.window(w.GetWindowDef(), sc); err != nil {
				return nil, err
			}
		}
	}
	sc.out = out
	for _, o := range s.SortClause {
		if err := r.noMaskedOut(o, sc, "ORDER BY"); err != nil {
			return nil, err
		}
	}
	for _, l := range []*pg_query.Node{s.LimitCount, s.LimitOffset} {
		if err := r.noMasked(l, sc, "LIMIT/OFFSET"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func setOpName(op pg_query.SetOperation) string {
	switch op {
	case pg_query.SetOperation_SETOP_INTERSECT:
		return "INTERSECT"
	case pg_query.SetOperation_SETOP_EXCEPT:
		return "EXCEPT"
	}
	return "UNION"
}

func isStar(cr *pg_query.ColumnRef) bool {
	f := cr.Fields
	return len(f) > 0 && f[len(f)-1].GetAStar() != nil
}

// outputName is the name PostgreSQL gives an output column, as far as
// outer references need it.
func outputName(rt *pg_query.ResTarget) string {
	if rt.Name != "" {
		return rt.Name
	}
	return exprName(rt.Val)
}

func exprName(n *pg_query.Node) string {
	if name, _ := figureColname(n); name != "" {
		return name
	}
	return "?column?"
}

// unsureName names an output column whose name PostgreSQL knows and weir
// does not (a scalar subquery over *): references by name treat it as
// possibly any name.
const unsureName = "\x00?"

// figureColname is PostgreSQL's FigureColnameInternal (parse_target.c):
// the name of an unnamed output column and how sure PostgreSQL is of it
// (2 good, 1 second best, 0 none). Outer references, USING and NATURAL
// joins match columns by these names, so weir must give exactly
// PostgreSQL's: a column PostgreSQL calls "coalesce" that weir called
// "?column?" let an outer clean "coalesce" stand in for a masked value.
func figureColname(n *pg_query.Node) (string, int) {
	switch x := n.GetNode().(type) {
	case *pg_query.Node_ColumnRef:
		name := ""
		for _, f := range x.ColumnRef.Fields {
			if s := f.GetString_(); s != nil {
				name = s.Sval
			}
		}
		if name != "" {
			return name, 2
		}
	case *pg_query.Node_AIndirection:
		name := ""
		for _, f := range x.AIndirection.Indirection {
			if s := f.GetString_(); s != nil {
				name = s.Sval
			}
		}
		if name != "" {
			return name, 2
		}
		return figureColname(x.AIndirection.Arg)
	case *pg_query.Node_FuncCall:
		if f := x.FuncCall.Funcname; len(f) > 0 {
			return f[len(f)-1].GetString_().GetSval(), 2
		}
	case *pg_query.Node_AExpr:
		if x.AExpr.Kind == pg_query.A_Expr_Kind_AEXPR_NULLIF {
			return "nullif", 2
		}
	case *pg_query.Node_TypeCast:
		name, strength := figureColname(x.TypeCast.Arg)
		if strength <= 1 {
			if tn := x.TypeCast.TypeName; tn != nil && len(tn.Names) > 0 {
				return tn.Names[len(tn.Names)-1].GetString_().GetSval(), 1
			}
		}
		return name, strength
	case *pg_query.Node_CollateClause:
		return figureColname(x.CollateClause.Arg)
	case *pg_query.Node_GroupingFunc:
		return "grouping", 2
	case *pg_query.Node_SubLink:
		switch x.SubLink.SubLinkType {
		case pg_query.SubLinkType_EXISTS_SUBLINK:
			return "exists", 2
		case pg_query.SubLinkType_ARRAY_SUBLINK:
			return "array", 2
		case pg_query.SubLinkType_EXPR_SUBLINK:
			if name := firstOutputName(x.SubLink.Subselect.GetSelectStmt()); name != "" {
				return name, 2
			}
		}
	case *pg_query.Node_CaseExpr:
		name, strength := figureColname(x.CaseExpr.Defresult)
		if strength <= 1 {
			return "case", 1
		}
		return name, strength
	case *pg_query.Node_AArrayExpr:
		return "array", 2
	case *pg_query.Node_RowExpr:
		return "row", 2
	case *pg_query.Node_CoalesceExpr:
		return "coalesce", 2
	case *pg_query.Node_MinMaxExpr:
		switch x.MinMaxExpr.Op {
		case pg_query.MinMaxOp_IS_GREATEST:
			return "greatest", 2
		case pg_query.MinMaxOp_IS_LEAST:
			return "least", 2
		}
	case *pg_query.Node_SqlvalueFunction:
		if name := sqlValueNames[x.SqlvalueFunction.Op]; name != "" {
			return name, 2
		}
	case *pg_query.Node_XmlExpr:
		if name := xmlExprNames[x.XmlExpr.Op]; name != "" {
			return name, 2
		}
	case *pg_query.Node_XmlSerialize:
		return "xmlserialize", 2
	case *pg_query.Node_JsonParseExpr:
		return "json", 2
	case *pg_query.Node_JsonScalarExpr:
		return "json_scalar", 2
	case *pg_query.Node_JsonSerializeExpr:
		return "json_serialize", 2
	case *pg_query.Node_JsonObjectConstructor:
		return "json_object", 2
	case *pg_query.Node_JsonArrayConstructor, *pg_query.Node_JsonArrayQueryConstructor:
		return "json_array", 2
	case *pg_query.Node_JsonObjectAgg:
		return "json_objectagg", 2
	case *pg_query.Node_JsonArrayAgg:
		return "json_arrayagg", 2
	case *pg_query.Node_JsonFuncExpr:
		switch x.JsonFuncExpr.Op {
		case pg_query.JsonExprOp_JSON_EXISTS_OP:
			return "json_exists", 2
		case pg_query.JsonExprOp_JSON_QUERY_OP:
			return "json_query", 2
		case pg_query.JsonExprOp_JSON_VALUE_OP:
			return "json_value", 2
		case pg_query.JsonExprOp_JSON_TABLE_OP:
			return "json_table", 2
		}
	case *pg_query.Node_MergeSupportFunc:
		return "merge_action", 2
	}
	return "", 0
}

// firstOutputName is the name of a query's first output column, as a
// scalar subquery's column is named after it; unsureName when weir cannot
// tell (a star), "" when the query has none.
func firstOutputName(s *pg_query.SelectStmt) string {
	for s != nil && s.Op != pg_query.SetOperation_SETOP_NONE {
		s = s.Larg
	}
	switch {
	case s == nil:
		return ""
	case len(s.ValuesLists) > 0:
		return "column1"
	case len(s.TargetList) == 0:
		return ""
	}
	rt := s.TargetList[0].GetResTarget()
	if rt == nil {
		return unsureName
	}
	if cr := rt.Val.GetColumnRef(); rt.Name == "" && cr != nil && isStar(cr) {
		return unsureName
	}
	return outputName(rt)
}

var sqlValueNames = map[pg_query.SQLValueFunctionOp]string{
	pg_query.SQLValueFunctionOp_SVFOP_CURRENT_DATE:        "current_date",
	pg_query.SQLValueFunctionOp_SVFOP_CURRENT_TIME:        "current_time",
	pg_query.SQLValueFunctionOp_SVFOP_CURRENT_TIME_N:      "current_time",
	pg_query.SQLValueFunctionOp_SVFOP_CURRENT_TIMESTAMP:   "current_timestamp",
	pg_query.SQLValueFunctionOp_SVFOP_CURRENT_TIMESTAMP_N: "current_timestamp",
	pg_query.SQLValueFunctionOp_SVFOP_LOCALTIME:           "localtime",
	pg_query.SQLValueFunctionOp_SVFOP_LOCALTIME_N:         "localtime",
	pg_query.SQLValueFunctionOp_SVFOP_LOCALTIMESTAMP:      "localtimestamp",
	pg_query.SQLValueFunctionOp_SVFOP_LOCALTIMESTAMP_N:    "localtimestamp",
	pg_query.SQLValueFunctionOp_SVFOP_CURRENT_ROLE:        "current_role",
	pg_query.SQLValueFunctionOp_SVFOP_CURRENT_USER:        "current_user",
	pg_query.SQLValueFunctionOp_SVFOP_USER:                "user",
	pg_query.SQLValueFunctionOp_SVFOP_SESSION_USER:        "session_user",
	pg_query.SQLValueFunctionOp_SVFOP_CURRENT_CATALOG:     "current_catalog",
	pg_query.SQLValueFunctionOp_SVFOP_CURRENT_SCHEMA:      "current_schema",
}

var xmlExprNames = map[pg_query.XmlExprOp]string{
	pg_query.XmlExprOp_IS_XMLCONCAT:    "xmlconcat",
	pg_query.XmlExprOp_IS_XMLELEMENT:   "xmlelement",
	pg_query.XmlExprOp_IS_XMLFOREST:    "xmlforest",
	pg_query.XmlExprOp_IS_XMLPARSE:     "xmlparse",
	pg_query.XmlExprOp_IS_XMLPI:        "xmlpi",
	pg_query.XmlExprOp_IS_XMLROOT:      "xmlroot",
	pg_query.XmlExprOp_IS_XMLSERIALIZE: "xmlserialize",
}

// star expands * or t.* of a select list, width-correct.
func (r *resolver) star(cr *pg_query.ColumnRef, sc *scope) ([]col, error) {
	var items []*rte
	if len(cr.Fields) == 1 {
		items = sc.from
	} else {
		t, err := r.findRTE(cr.Fields[:len(cr.Fields)-1], sc)
		if err != nil {
			return nil, err
		}
		items = []*rte{t}
	}
	var out []col
	for _, t := range items {
		if !t.known {
			return nil, r.refuse("", "weir cannot expand * over %s (its columns are unknown to weir); name the columns", describeRTE(t))
		}
		out = append(out, t.cols...)
	}
	for _, c := range out {
		if len(c.src) > 0 {
			r.touches = true
		}
	}
	return out, nil
}

func describeRTE(t *rte) string {
	if t.alias == "" {
		return "this FROM item"
	}
	return strconv.Quote(t.alias)
}

// findRTE finds the FROM item a qualified name's prefix names.
func (r *resolver) findRTE(fields []*pg_query.Node, sc *scope) (*rte, error) {
	name := fields[len(fields)-1].GetString_().GetSval()
	for s := sc; s != nil; s = s.parent {
		for _, t := range s.named {
			if t.alias == name {
				return t, nil
			}
		}
	}
	return nil, r.refuse("", "weir cannot resolve %q in this query", name)
}

// fromItem resolves one FROM item and makes its names visible in sc.
func (r *resolver) fromItem(n *pg_query.Node, sc *scope) (*rte, error) {
	switch x := n.GetNode().(type) {
	case *pg_query.Node_RangeVar:
		t, err := r.rangeVar(x.RangeVar, sc)
		if err != nil {
			return nil, err
		}
		sc.named = append(sc.named, t)
		return t, nil
	case *pg_query.Node_RangeSubselect:
		sub := x.RangeSubselect.Subquery.GetSelectStmt()
		if sub == nil {
			return nil, r.refuse("", "weir cannot follow this subquery in FROM")
		}
		// LATERAL or not, seeing the earlier items only adds taint.
		cols, err := r.selectStmt(sub, sc)
		if err != nil {
			return nil, err
		}
		t := &rte{cols: slices.Clone(cols), known: true}
		aliasRTE(t, x.RangeSubselect.Alias)
		sc.named = append(sc.named, t)
		return t, nil
	case *pg_query.Node_JoinExpr:
		return r.join(x.JoinExpr, sc)
	case *pg_query.Node_RangeFunction:
		return r.rangeFunction(x.RangeFunction, sc)
	case *pg_query.Node_RangeTableSample:
		ts := x.RangeTableSample
		for _, a := range append(slices.Clone(ts.Args), ts.Repeatable) {
			if err := r.noMasked(a, sc, "TABLESAMPLE"); err != nil {
				return nil, err
			}
		}
		return r.fromItem(ts.Relation, sc)
	}
	// XMLTABLE, JSON_TABLE and whatever else the grammar adds: their
	// width and lineage are not followed.
	t := &rte{known: false}
	if err := r.anyMasked(n, "this FROM item"); err != nil {
		return nil, err
	}
	if err := r.noMasked(n, sc, "this FROM item"); err != nil {
		return nil, err
	}
	return t, nil
}

func aliasRTE(t *rte, a *pg_query.Alias) {
	if a == nil {
		return
	}
	t.alias = a.Aliasname
	for i, n := range a.Colnames {
		if i < len(t.cols) {
			t.cols[i].name = n.GetString_().GetSval()
		}
	}
}

// statsRelations hold samples of every column's values (most common values,
// histograms): reading them is reading the masked columns.
var statsRelations = map[string]bool{
	"pg_stats": true, "pg_stats_ext": true, "pg_stats_ext_exprs": true, "pg_statistic": true,
	"pg_statistic_ext": true, "pg_statistic_ext_data": true,
}

// rangeVar resolves a relation name: a CTE, a table, a view (through its
// definition) or a system relation.
func (r *resolver) rangeVar(rv *pg_query.RangeVar, sc *scope) (*rte, error) {
	alias := rv.Relname
	if rv.Schemaname == "" && rv.Catalogname == "" {
		if t := sc.cte(rv.Relname); t != nil {
			c := &rte{alias: alias, cols: slices.Clone(t.cols), known: true}
			aliasRTE(c, rv.Alias)
			return c, nil
		}
	}
	if statsRelations[rv.Relname] && (rv.Schemaname == "" || rv.Schemaname == "pg_catalog") {
		return nil, r.refuse("", "%s holds samples of column values, masked ones included; it cannot be read through weir on a target with masked columns", rv.Relname)
	}
	rels := r.cat.Lookup(rv.Schemaname, rv.Relname)
	if len(rels) == 0 {
		name := rv.Relname
		if rv.Schemaname != "" {
			name = rv.Schemaname + "." + name
		}
		return nil, &LineageError{Unknown: true, Reason: fmt.Sprintf("relation %q is not in weir's catalog of this target (a temporary relation, one created in an open transaction, or one that does not exist), so weir cannot tell whether it derives from a masked column; commit it, or query the tables it is built from", name)}
	}
	var t *rte
	for _, rel := range rels {
		cols, err := r.relationCols(rel)
		if err != nil {
			return nil, err
		}
		if t == nil {
			t = &rte{alias: alias, cols: cols, known: true}
			continue
		}
		// The search_path may pick either: mask what either masks, and
		// refuse a star whose width would depend on it.
		if len(cols) != len(t.cols) {
			t.known = false
		}
		for _, c := range cols {
			found := false
			for i := range t.cols {
				if t.cols[i].name == c.name {
					t.cols[i].src = union(t.cols[i].src, c.src)
					found = true
				}
			}
			if !found {
				t.cols = append(t.cols, c)
				t.known = false
			}
		}
	}
	aliasRTE(t, rv.Alias)
	return t, nil
}

// target resolves the relation an INSERT, UPDATE, DELETE or COPY names:
// always a real relation, never a CTE of the same name (WITH t AS (…)
// UPDATE t updates the table t, and its RETURNING reads the table's
// columns).
func (r *resolver) target(rv *pg_query.RangeVar) (*rte, error) {
	return r.rangeVar(rv, &scope{})
}

func (r *resolver) relationCols(rel *Relation) ([]col, error) {
	cols := make([]col, len(rel.Columns))
	for i, name := range rel.Columns {
		cols[i].name = name
	}
	switch rel.Kind {
	case 's':
	case 'v', 'm':
		taint, err := r.view(rel)
		if err != nil {
			return nil, err
		}
		for i := range cols {
			cols[i].src = taint[i]
		}
	default:
		for i, name := range rel.Columns {
			if s := r.rules.MatchRelation(rel, name); s != "" {
				cols[i].src = srcs{s}
			}
		}
	}
	return cols, nil
}

// view resolves a view's definition to the taint of its columns.
func (r *resolver) view(rel *Relation) ([][]string, error) {
	if t, ok := r.views[rel]; ok {
		return t, nil
	}
	name := rel.Schema + "." + rel.Name
	if r.depth >= maxViewDepth {
		return nil, r.refuse("", "view %s nests views deeper than weir follows (%d)", name, maxViewDepth)
	}
	tree, err := parse(rel.Definition)
	if err != nil || len(tree.GetStmts()) != 1 || tree.GetStmts()[0].GetStmt().GetSelectStmt() == nil {
		return nil, r.refuse("", "weir cannot read the definition of view %s, so it cannot tell whether it derives from a masked column; query the tables it is built from", name)
	}
	// The view's own inference channels (a WHERE on a masked column) are
	// the reader's too.
	r.depth++
	saved := r.touches
	cols, err := r.selectStmt(tree.GetStmts()[0].GetStmt().GetSelectStmt(), nil)
	r.depth--
	r.touches = saved
	if err != nil {
		return nil, r.refuse("", "view %s: %s", name, err.Error())
	}
	if len(cols) != len(rel.Columns) {
		return nil, r.refuse("", "view %s has %d columns but its definition %d; weir cannot match them", name, len(rel.Columns), len(cols))
	}
	out := make([][]string, len(cols))
	for i, c := range cols {
		out[i] = c.src
	}
	r.views[rel] = out
	return out, nil
}

// join resolves a JOIN; its width is PostgreSQL's: USING/NATURAL columns
// once, then the left's other columns, then the right's.
func (r *resolver) join(j *pg_query.JoinExpr, sc *scope) (*rte, error) {
	l, err := r.fromItem(j.Larg, sc)
	if err != nil {
		return nil, err
	}
	rr, err := r.fromItem(j.Rarg, sc)
	if err != nil {
		return nil, err
	}
	var using []string
	for _, u := range j.UsingClause {
		using = append(using, u.GetString_().GetSval())
	}
	if j.IsNatural {
		if !l.known || !rr.known || l.anyName || rr.anyName || hasUnsure(l) || hasUnsure(rr) {
			return nil, r.refuse("", "weir cannot follow a NATURAL JOIN over items whose columns it does not know")
		}
		for _, a := range l.cols {
			for _, b := range rr.cols {
				if a.name == b.name && !slices.Contains(using, a.name) {
					using = append(using, a.name)
				}
			}
		}
	}
	t := &rte{known: l.known && rr.known}
	for _, u := range using {
		c := col{name: u}
		for _, side := range []*rte{l, rr} {
			if side.anyName {
				c.src = union(c.src, side.whole())
			}
			for _, x := range side.cols {
				if x.name == u || x.name == unsureName {
					c.src = union(c.src, x.src)
				}
			}
		}
		if len(c.src) > 0 {
			// A join on a masked column is an equality lookup.
			r.touches = true
			if !r.rules.AllowEquality {
				return nil, r.inference(c.src[0], "JOIN USING")
			}
			r.lookup = true
		}
		t.cols = append(t.cols, c)
	}
	for _, side := range []*rte{l, rr} {
		for _, x := range side.cols {
			if !slices.Contains(using, x.name) {
				t.cols = append(t.cols, x)
			}
		}
	}
	if err := r.predicate(j.Quals, sc, "JOIN ON"); err != nil {
		return nil, err
	}
	if j.Alias != nil {
		aliasRTE(t, j.Alias)
		sc.named = append(sc.named, t)
	}
	return t, nil
}

func hasUnsure(t *rte) bool {
	for _, c := range t.cols {
		if c.name == unsureName {
			return true
		}
	}
	return false
}

// srfColumns are the columns of built-ins whose result is a row of known
// shape; every other built-in in FROM returns one column, except those in
// rowShaped.
var srfColumns = map[string][]string{
	"json_each": {"key", "value"}, "jsonb_each": {"key", "value"},
	"json_each_text": {"key", "value"}, "jsonb_each_text": {"key", "value"},
	"pg_options_to_table": {"option_name", "option_value"},
	"aclexplode":          {"grantor", "grantee", "privilege_type", "is_grantable"},
	"pg_get_keywords":     {"word", "catcode", "barelabel", "catdesc", "baredesc"},
	// One named OUT parameter names the column, alias or not.
	"json_array_elements": {"value"}, "json_array_elements_text": {"value"},
	"jsonb_array_elements": {"value"}, "jsonb_array_elements_text": {"value"},
}

// rowShaped are built-ins that may return a row whose shape weir does not
// know (a composite or polymorphic result, OUT parameters: a test checks
// the list against pg_proc). unnest(ARRAY[NULL::pg_am]) returns the
// columns of pg_am, and a bare name PostgreSQL does not find among them
// refers to an outer query's column.
var rowShaped = map[string]bool{
	"unnest": true, "json_populate_record": true, "json_populate_recordset": true,
	"jsonb_populate_record": true, "jsonb_populate_recordset": true,
	"json_to_record": true, "json_to_recordset": true, "jsonb_to_record": true, "jsonb_to_recordset": true,
	"pg_input_error_info": true, "pg_identify_object": true, "pg_identify_object_as_address": true,
	"pg_get_object_address": true, "ts_debug": true, "ts_parse": true, "ts_token_type": true, "ts_stat": true,
	"pg_current_snapshot": true,
	// lower(anyrange) and upper(anyrange) return the range's element.
	"lower": true, "upper": true,
}

func (r *resolver) rangeFunction(rf *pg_query.RangeFunction, sc *scope) (*rte, error) {
	t := &rte{known: true}
	name := ""
	for _, f := range rf.Functions {
		items := f.GetList().GetItems()
		if len(items) == 0 {
			return nil, r.refuse("", "weir cannot follow this function in FROM")
		}
		taint, err := r.expr(items[0], sc)
		if err != nil {
			return nil, err
		}
		fc := items[0].GetFuncCall()
		var names []string
		defs := rf.Coldeflist // f(…) AS t(a int, …)
		if len(items) > 1 && items[1].GetList() != nil {
			defs = items[1].GetList().Items // ROWS FROM (f(…) AS (a int, …))
		}
		switch {
		case len(defs) > 0:
			// A column definition list names the columns.
			for _, d := range defs {
				names = append(names, d.GetColumnDef().GetColname())
			}
		case fc != nil:
			base := exprName(items[0])
			name = base
			if cols, ok := srfColumns[base]; ok {
				names = cols
			} else if base == "unnest" && len(rf.Functions) == 1 && len(fc.Args) > 1 {
				names = slices.Repeat([]string{base}, len(fc.Args))
			} else {
				// A scalar result is named after the FROM alias when the
				// item has one function (chooseScalarFunctionAlias).
				if len(rf.Functions) == 1 && rf.Alias != nil {
					base = rf.Alias.Aliasname
				}
				names = []string{base}
				if rowShaped[exprName(items[0])] {
					t.anyName = true
				}
				if strings.HasPrefix(name, "json") && strings.Contains(name, "record") {
					t.known = false // json_to_record without a column list
				}
			}
		default:
			names = []string{"?column?"}
			t.known = false
		}
		for _, n := range names {
			t.cols = append(t.cols, col{name: n, src: taint})
		}
	}
	if rf.Ordinality {
		t.cols = append(t.cols, col{name: "ordinality"})
	}
	t.alias = name
	aliasRTE(t, rf.Alias)
	if rf.Alias != nil && len(rf.Alias.Colnames) > len(t.cols) {
		t.known = false
	}
	sc.named = append(sc.named, t)
	return t, nil
}

// window checks a window definition: partitioning or ordering by a masked
// column ranks its values.
func (r *resolver) window(w *pg_query.WindowDef, sc *scope) error {
	if w == nil {
		return nil
	}
	for _, n := range w.PartitionClause {
		if err := r.noMasked(n, sc, "a window PARTITION BY"); err != nil {
			return err
		}
	}
	for _, n := range w.OrderClause {
		if err := r.noMasked(n, sc, "a window ORDER BY"); err != nil {
			return err
		}
	}
	for _, n := range []*pg_query.Node{w.StartOffset, w.EndOffset} {
		if err := r.noMasked(n, sc, "a window frame"); err != nil {
			return err
		}
	}
	return nil
}

// compared admits an equality comparison of output rows holding masked
// columns (DISTINCT, UNION, INTERSECT, EXCEPT) only as an equality lookup.
func (r *resolver) compared(out []col, clause string) error {
	for _, c := range out {
		if len(c.src) == 0 {
			continue
		}
		if !r.rules.AllowEquality {
			return r.inference(c.src[0], clause)
		}
		r.lookup = true
	}
	return nil
}

func (r *resolver) inference(column, clause string) error {
	msg := fmt.Sprintf("masked column %s may not be used in %s: that is an inference channel (which rows come back, their order, count, timing or errors reveal its values); select the column without filtering, sorting or grouping on it", column, clause)
	if !r.rules.AllowEquality {
		msg += ", or ask the weir operator to set policy.masking.allow_equality to look rows up by an exact value"
	} else {
		msg += "; only equality lookups (col = value, col IN (…)) are allowed"
	}
	return &LineageError{Column: column, Reason: msg}
}

// noMasked refuses an expression that derives from a masked column.
func (r *resolver) noMasked(n *pg_query.Node, sc *scope, clause string) error {
	if n == nil || n.GetNode() == nil {
		return nil
	}
	t, err := r.expr(n, sc)
	if err != nil {
		return err
	}
	if len(t) > 0 {
		return r.inference(t[0], clause)
	}
	return nil
}

// noMaskedOut is noMasked for ORDER BY / GROUP BY / DISTINCT ON items,
// which may name an output column or its position.
func (r *resolver) noMaskedOut(n *pg_query.Node, sc *scope, clause string) error {
	if sb := n.GetSortBy(); sb != nil {
		n = sb.Node
	}
	if ac := n.GetAConst(); ac != nil {
		r.constDep = true
		if ac.GetIval() == nil {
			return nil
		}
		i := int(ac.GetIval().Ival) - 1
		if i >= 0 && i < len(sc.out) && len(sc.out[i].src) > 0 {
			return r.inference(sc.out[i].src[0], clause)
		}
		return nil
	}
	if cr := n.GetColumnRef(); cr != nil && len(cr.Fields) == 1 && cr.Fields[0].GetString_() != nil {
		name := cr.Fields[0].GetString_().Sval
		matched := false
		for _, o := range sc.out {
			if o.name == name {
				matched = true
				if len(o.src) > 0 {
					return r.inference(o.src[0], clause)
				}
			}
		}
		t, err := r.expr(n, sc)
		if err != nil {
			if matched {
				return nil
			}
			return err
		}
		if len(t) > 0 {
			return r.inference(t[0], clause)
		}
		return nil
	}
	// GROUPING SETS, ROLLUP, CUBE and expressions.
	return r.noMasked(n, sc, clause)
}

// predicate checks a WHERE / JOIN ON / HAVING / FILTER / CASE condition:
// a masked column may appear only in an allowed equality lookup.
func (r *resolver) predicate(n *pg_query.Node, sc *scope, clause string) error {
	if n == nil || n.GetNode() == nil {
		return nil
	}
	switch x := n.GetNode().(type) {
	case *pg_query.Node_BoolExpr:
		for _, a := range x.BoolExpr.Args {
			if err := r.predicate(a, sc, clause); err != nil {
				return err
			}
		}
		return nil
	case *pg_query.Node_AExpr:
		ae := x.AExpr
		if isEquality(ae) {
			return r.equality(ae.Lexpr, ae.Rexpr, sc, clause)
		}
	case *pg_query.Node_SubLink:
		sl := x.SubLink
		if sl.SubLinkType == pg_query.SubLinkType_ANY_SUBLINK && (len(sl.OperName) == 0 || isEqName(sl.OperName)) && sl.Testexpr != nil {
			// x IN (SELECT …): an equality with each row of the subquery.
			ta, err := r.expr(sl.Testexpr, sc)
			if err != nil {
				return err
			}
			sub := sl.Subselect.GetSelectStmt()
			if sub == nil {
				return r.refuse("", "weir cannot follow this subquery")
			}
			cols, err := r.selectStmt(sub, sc)
			if err != nil {
				return err
			}
			var tb srcs
			for _, c := range cols {
				tb = union(tb, c.src)
			}
			return r.equalityTaint(ta, tb, sl.Testexpr, nil, clause)
		}
	}
	return r.noMasked(n, sc, clause)
}

func isEqName(l []*pg_query.Node) bool {
	return len(l) == 1 && l[0].GetString_().GetSval() == "="
}

func isEquality(ae *pg_query.A_Expr) bool {
	switch ae.Kind {
	case pg_query.A_Expr_Kind_AEXPR_OP:
		return isEqName(ae.Name)
	case pg_query.A_Expr_Kind_AEXPR_IN:
		return isEqName(ae.Name) // IN, not NOT IN (<>)
	}
	return false
}

// equality allows col = value when one side is a plain (possibly cast)
// masked column, the other side derives from nothing masked, and the
// operator allows equality lookups.
func (r *resolver) equality(a, b *pg_query.Node, sc *scope, clause string) error {
	ta, err := r.expr(a, sc)
	if err != nil {
		return err
	}
	tb, err := r.expr(b, sc)
	if err != nil {
		return err
	}
	return r.equalityTaint(ta, tb, a, b, clause)
}

func (r *resolver) equalityTaint(ta, tb srcs, a, b *pg_query.Node, clause string) error {
	switch {
	case len(ta) == 0 && len(tb) == 0:
		return nil
	case len(ta) > 0 && len(tb) > 0:
		return r.inference(ta[0], clause+" (comparing masked values with each other)")
	}
	m, t := ta, a
	if len(tb) > 0 {
		m, t = tb, b
	}
	if !r.rules.AllowEquality || t == nil || !plainColumn(t) {
		return r.inference(m[0], clause)
	}
	r.lookup = true
	return nil
}

// plainColumn reports whether n is a column reference, possibly cast or
// a subquery's single output (IN (SELECT …) sides are not: they are
// checked as expressions).
func plainColumn(n *pg_query.Node) bool {
	for {
		if tc := n.GetTypeCast(); tc != nil {
			n = tc.Arg
			continue
		}
		if cc := n.GetCollateClause(); cc != nil {
			n = cc.Arg
			continue
		}
		break
	}
	cr := n.GetColumnRef()
	return cr != nil && !isStar(cr)
}

// columnRef resolves a column reference to its taint.
func (r *resolver) columnRef(cr *pg_query.ColumnRef, sc *scope) (srcs, error) {
	f := cr.Fields
	if len(f) == 0 {
		return nil, r.refuse("", "weir cannot resolve an empty column reference")
	}
	if isStar(cr) {
		if len(f) == 1 {
			var t srcs
			for _, it := range sc.from {
				t = union(t, it.whole())
			}
			return r.touched(t), nil
		}
		it, err := r.findRTE(f[:len(f)-1], sc)
		if err != nil {
			return nil, err
		}
		return r.touched(it.whole()), nil
	}
	var parts []string
	for _, n := range f {
		s := n.GetString_()
		if s == nil {
			return nil, r.refuse("", "weir cannot resolve this column reference")
		}
		parts = append(parts, s.Sval)
	}
	name := parts[len(parts)-1]
	if len(parts) == 1 {
		return r.bareName(name, sc)
	}
	// rel.name: the innermost level with a FROM item called rel decides
	// (PostgreSQL's refnameNamespaceItem). If that item has no column
	// name, PostgreSQL reads name(rel), a function on the whole row
	// (p.row_to_json), never an outer rel: refused below.
	rel := parts[len(parts)-2]
	for s := sc; s != nil; s = s.parent {
		var t srcs
		found, named := false, false
		for _, it := range s.named {
			if it.alias != rel {
				continue
			}
			named = true
			for _, c := range it.cols {
				if c.name == name {
					t, found = union(t, c.src), true
				}
			}
			if !found && (!it.known || it.anyName) {
				t, found = union(t, it.whole()), true
			}
			for _, c := range it.cols {
				if !found && c.name == unsureName {
					t = union(t, c.src)
					found = true
				}
			}
		}
		if found {
			return r.touched(t), nil
		}
		if named {
			break
		}
	}
	return nil, r.refuse("", "weir cannot resolve column %q in this query, so it cannot tell whether it derives from a masked column; qualify it with its table", strings.Join(parts, "."))
}

// bareName resolves an unqualified name as PostgreSQL does
// (transformColumnRef): as a column of the innermost query level that has
// one, searching every level outward, and only if no level has such a
// column as a whole-row reference to a FROM item of that name. In
// (SELECT ssn FROM orders ssn) inside a query over people, ssn is
// people.ssn, not the row of orders.
func (r *resolver) bareName(name string, sc *scope) (srcs, error) {
	var t srcs
	maybe := false
	for s := sc; s != nil; s = s.parent {
		found := false
		for _, it := range s.named {
			for _, c := range it.cols {
				if c.name == name {
					t = union(t, c.src)
					// A row-shaped function's column may not be called
					// that after all (unnest over a composite array):
					// then an outer level's column is meant.
					if it.anyName {
						maybe = true
					} else {
						found = true
					}
				}
			}
		}
		if found {
			return r.touched(t), nil
		}
		for _, it := range s.named {
			if !it.known || it.anyName {
				// An item of unknown columns may hold this one; if it
				// does not, an outer level's column or an alias is meant:
				// count all of them.
				t, maybe = union(t, it.whole()), true
			}
			for _, c := range it.cols {
				if c.name == unsureName {
					t, maybe = union(t, c.src), true
				}
			}
		}
	}
	found := maybe
	for s := sc; s != nil; s = s.parent {
		// SELECT c FROM customers c: a whole-row reference.
		for _, it := range s.named {
			if it.alias == name {
				t, found = union(t, it.whole()), true
			}
		}
	}
	if !found {
		return nil, r.refuse("", "weir cannot resolve column %q in this query, so it cannot tell whether it derives from a masked column; qualify it with its table", name)
	}
	return r.touched(t), nil
}

func (r *resolver) touched(t srcs) srcs {
	if len(t) > 0 {
		r.touches = true
	}
	return t
}

// expr returns the masked selectors an expression derives from.
func (r *resolver) expr(n *pg_query.Node, sc *scope) (srcs, error) {
	if n == nil || n.GetNode() == nil {
		return nil, nil
	}
	switch x := n.GetNode().(type) {
	case *pg_query.Node_ColumnRef:
		return r.columnRef(x.ColumnRef, sc)
	case *pg_query.Node_AConst, *pg_query.Node_ParamRef, *pg_query.Node_SqlvalueFunction:
		return nil, nil
	case *pg_query.Node_FuncCall:
		t, err := r.funcCall(x.FuncCall, sc)
		return derive(t), err
	case *pg_query.Node_SubLink:
		sl := x.SubLink
		sub := sl.Subselect.GetSelectStmt()
		if sub == nil {
			return nil, r.refuse("", "weir cannot follow this subquery")
		}
		cols, err := r.selectStmt(sub, sc)
		if err != nil {
			return nil, err
		}
		t, err := r.expr(sl.Testexpr, sc)
		if err != nil {
			return nil, err
		}
		if sl.SubLinkType != pg_query.SubLinkType_EXISTS_SUBLINK {
			for _, c := range cols {
				t = union(t, c.src)
			}
		}
		if len(sl.OperName) > 0 {
			if err := r.operator(sl.OperName); err != nil {
				return nil, err
			}
		}
		if len(t) > 0 && (sl.SubLinkType == pg_query.SubLinkType_ANY_SUBLINK || sl.SubLinkType == pg_query.SubLinkType_ALL_SUBLINK ||
			sl.SubLinkType == pg_query.SubLinkType_ROWCOMPARE_SUBLINK) &&
			!(r.rules.AllowEquality && sl.SubLinkType == pg_query.SubLinkType_ANY_SUBLINK && (len(sl.OperName) == 0 || isEqName(sl.OperName))) {
			// x < ANY (SELECT …) fetches rows until one matches: a row
			// that fails is reached depending on the masked value.
			r.oracle(t[0], "a comparison with a subquery's rows (rows are read only until one matches)")
		}
		return t, nil
	case *pg_query.Node_AExpr:
		ae := x.AExpr
		if len(ae.Name) > 0 && ae.Kind != pg_query.A_Expr_Kind_AEXPR_BETWEEN && ae.Kind != pg_query.A_Expr_Kind_AEXPR_NOT_BETWEEN &&
			ae.Kind != pg_query.A_Expr_Kind_AEXPR_BETWEEN_SYM && ae.Kind != pg_query.A_Expr_Kind_AEXPR_NOT_BETWEEN_SYM {
			if err := r.operator(ae.Name); err != nil {
				return nil, err
			}
		}
		l, err := r.expr(ae.Lexpr, sc)
		if err != nil {
			return nil, err
		}
		rt, err := r.expr(ae.Rexpr, sc)
		if err != nil {
			return nil, err
		}
		if op := ae.Name; len(rt) > 0 && len(op) == 1 {
			if s := op[0].GetString_().GetSval(); s == "/" || s == "%" {
				// 1/(ascii(ssn)-49): the division-by-zero error is an
				// oracle on the masked value (corpus M05).
				return nil, r.inference(rt[0], "a divisor (a division-by-zero error would reveal its value)")
			}
		}
		if err := r.checkAExpr(ae, l, rt); err != nil {
			return nil, err
		}
		return derive(union(slices.Clone(l), rt)), nil
	case *pg_query.Node_BoolExpr:
		return r.lazy(x.BoolExpr.Args, sc, strings.TrimSuffix(x.BoolExpr.Boolop.String(), "_EXPR"))
	case *pg_query.Node_CoalesceExpr:
		return r.lazy(x.CoalesceExpr.Args, sc, "COALESCE")
	case *pg_query.Node_CaseExpr:
		ce := x.CaseExpr
		arg, err := r.expr(ce.Arg, sc)
		if err != nil {
			return nil, err
		}
		var t srcs
		for _, w := range ce.Args {
			cw := w.GetCaseWhen()
			if cw == nil {
				return nil, r.refuse("", "weir cannot follow this CASE")
			}
			if len(arg) > 0 {
				// CASE masked WHEN v: an equality per branch.
				if err := r.equality(ce.Arg, cw.Expr, sc, "CASE"); err != nil {
					return nil, err
				}
			} else if err := r.predicate(cw.Expr, sc, "a CASE condition"); err != nil {
				return nil, err
			}
			res, err := r.expr(cw.Result, sc)
			if err != nil {
				return nil, err
			}
			t = union(t, res)
		}
		def, err := r.expr(ce.Defresult, sc)
		if err != nil {
			return nil, err
		}
		return derive(union(union(t, def), arg)), nil
	case *pg_query.Node_SelectStmt:
		return nil, r.refuse("", "weir cannot follow a query in this place")
	}
	t, err := r.children(n, sc)
	if err == nil && len(t) > 0 {
		err = r.checkNode(n, t)
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

// lazy resolves the operands of AND, OR or COALESCE, which stop
// evaluating once the result is known (see checkLazy).
func (r *resolver) lazy(args []*pg_query.Node, sc *scope, what string) (srcs, error) {
	var t srcs
	taint := make([]srcs, len(args))
	for i, a := range args {
		s, err := r.expr(a, sc)
		if err != nil {
			return nil, err
		}
		taint[i] = s
		t = union(t, s)
	}
	if len(t) > 0 {
		if err := r.checkLazy(args, taint, what); err != nil {
			return nil, err
		}
	}
	return derive(t), nil
}

// children unions the taint of every node under an expression node of a
// type without its own rule (casts, operators' wrappers, ROW, ARRAY,
// COALESCE, NULLIF, IS NULL…): anything that references a masked column
// is masked.
func (r *resolver) children(n *pg_query.Node, sc *scope) (srcs, error) {
	var t srcs
	var err error
	var visit func(m protoreflect.Message)
	visit = func(m protoreflect.Message) {
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if fd.Kind() != protoreflect.MessageKind {
				return true
			}
			each := func(mm protoreflect.Message) {
				if node, ok := mm.Interface().(*pg_query.Node); ok {
					s, e := r.expr(node, sc)
					if e != nil {
						err = e
						return
					}
					t = union(t, s)
					return
				}
				visit(mm)
			}
			if fd.IsList() {
				l := v.List()
				for i := 0; i < l.Len() && err == nil; i++ {
					each(l.Get(i).Message())
				}
			} else {
				each(v.Message())
			}
			return err == nil
		})
	}
	// n holds one message (its oneof member): the expression, whose
	// fields are visited.
	visit(n.ProtoReflect())
	return derive(t), err
}

// operator refuses operators outside the built-in set: a user operator
// runs a function weir cannot see into.
func (r *resolver) operator(list []*pg_query.Node) error {
	var buf [2]string
	parts, ok := nameParts(list, buf[:0])
	if ok && ((len(parts) == 1 && builtinOperators[parts[0]]) || (len(parts) == 2 && parts[0] == "pg_catalog" && builtinOperators[parts[1]])) {
		return nil
	}
	return r.refuse("", "operator %s is not a built-in; weir cannot see what it reads on a target with masked columns", joinName(parts))
}

// funcCall checks the function (its body must not be able to read masked
// tables behind weir's back) and unions its arguments.
func (r *resolver) funcCall(fc *pg_query.FuncCall, sc *scope) (srcs, error) {
	var buf [3]string
	parts, ok := nameParts(fc.Funcname, buf[:0])
	if !ok || len(parts) == 0 {
		return nil, r.refuse("", "weir cannot resolve this function name")
	}
	schema := ""
	if len(parts) > 1 {
		schema = joinName(parts[:len(parts)-1])
	}
	e := lookupFunc(schema, parts[len(parts)-1], len(parts) > 1)
	if e.risks&(rUnknownFunction|rDynamicSQL|rFileAccess|rNetworkAccess|rProgramExec) != 0 {
		return nil, r.refuse("", "function %s is not one weir knows to read only its arguments; on a target with masked columns weir cannot tell whether it reads them (corpus M03); call built-in functions only", joinName(parts))
	}
	var t srcs
	taint := make([]srcs, len(fc.Args))
	for i, a := range fc.Args {
		s, err := r.expr(a, sc)
		if err != nil {
			return nil, err
		}
		taint[i] = s
		t = union(t, s)
	}
	for _, o := range fc.AggOrder {
		if err := r.noMasked(o.GetSortBy().GetNode(), sc, "an aggregate's ORDER BY"); err != nil {
			return nil, err
		}
	}
	if err := r.predicate(fc.AggFilter, sc, "FILTER"); err != nil {
		return nil, err
	}
	if fc.Over != nil {
		if err := r.window(fc.Over, sc); err != nil {
			return nil, err
		}
	}
	base := parts[len(parts)-1]
	if len(t) > 0 && setReturning[base] {
		r.touches = true
		return nil, r.refuse(t[0], "masked column %s may not be passed to the set-returning function %s: how many rows it returns, or whether it returns any, would reveal the value; select the column itself (it is masked on the way out)", t[0], joinName(parts))
	}
	if len(t) > 0 && (base == "mod" || base == "div") && len(fc.Args) == 2 {
		if d, err := r.expr(fc.Args[1], sc); err != nil {
			return nil, err
		} else if len(d) > 0 {
			// mod(1, ascii(ssn)-49) divides like %: see the / rule.
			return nil, r.inference(d[0], "a divisor (a division-by-zero error would reveal its value)")
		}
	}
	if len(t) > 0 && (base == "pg_sleep" || base == "pg_sleep_for" || base == "pg_sleep_until") {
		return nil, r.inference(t[0], base+" (its duration would reveal the value)")
	}
	if len(t) > 0 && (e.write || e.risks != 0) {
		// pg_notify, set_config, setval, advisory locks…: the value would
		// leave through a side channel weir does not mask (a notification,
		// a setting, a sequence, pg_locks) (corpus M06).
		return nil, r.refuse(t[0], "masked column %s may not be passed to %s: its value would leave through a side channel weir does not mask", t[0], joinName(parts))
	}
	if len(t) > 0 {
		if err := r.checkFunc(fc, base, taint, t[0]); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// insert resolves INSERT: its source must not carry masked values into the
// table; RETURNING is its output.
func (r *resolver) insert(s *pg_query.InsertStmt) ([]col, error) {
	ws, err := r.with(s.WithClause, nil)
	if err != nil {
		return nil, err
	}
	if sel := s.SelectStmt.GetSelectStmt(); sel != nil {
		cols, err := r.selectStmt(sel, ws)
		if err != nil {
			return nil, err
		}
		for _, c := range cols {
			if len(c.src) > 0 {
				return nil, r.refuse(c.src[0], "INSERT would copy values of masked column %s into %s, where weir would no longer mask them; insert other values", c.src[0], s.Relation.GetRelname())
			}
		}
	}
	sc := &scope{parent: ws}
	t, err := r.target(s.Relation)
	if err != nil {
		return nil, err
	}
	r.writes(t)
	sc.named = append(sc.named, t)
	sc.from = append(sc.from, t)
	if oc := s.OnConflictClause; oc != nil {
		ex := &rte{alias: "excluded", known: true}
		for _, c := range t.cols {
			ex.cols = append(ex.cols, col{name: c.name}) // the proposed row: checked above
		}
		sc.named = append(sc.named, ex)
		if err := r.assignments(oc.TargetList, sc, s.Relation.GetRelname()); err != nil {
			return nil, err
		}
		if err := r.predicate(oc.WhereClause, sc, "ON CONFLICT … WHERE"); err != nil {
			return nil, err
		}
	}
	return r.returning(s.ReturningList, sc)
}

// writes marks a statement that writes a relation with masked columns as
// touching them: a constraint error prints the whole failing row
// ("Failing row contains (…)"), masked columns included, so its text must
// be withheld.
func (r *resolver) writes(t *rte) {
	if len(t.whole()) > 0 {
		r.touches = true
	}
}

func (r *resolver) assignments(list []*pg_query.Node, sc *scope, table string) error {
	for _, n := range list {
		rt := n.GetResTarget()
		if rt == nil {
			return r.refuse("", "weir cannot follow this assignment")
		}
		t, err := r.expr(rt.Val, sc)
		if err != nil {
			return err
		}
		if len(t) > 0 {
			return r.refuse(t[0], "UPDATE would copy values of masked column %s into %s.%s, where weir would no longer mask them", t[0], table, rt.Name)
		}
	}
	return nil
}

func (r *resolver) returning(list []*pg_query.Node, sc *scope) ([]col, error) {
	var out []col
	for _, n := range list {
		rt := n.GetResTarget()
		if rt == nil {
			return nil, r.refuse("", "weir cannot follow this RETURNING list")
		}
		if cr := rt.Val.GetColumnRef(); cr != nil && isStar(cr) {
			cols, err := r.star(cr, sc)
			if err != nil {
				return nil, err
			}
			out = append(out, cols...)
			continue
		}
		t, err := r.expr(rt.Val, sc)
		if err != nil {
			return nil, err
		}
		out = append(out, col{name: outputName(rt), src: t})
	}
	return out, nil
}

func (r *resolver) update(s *pg_query.UpdateStmt) ([]col, error) {
	sc, err := r.dmlScope(s.WithClause, s.Relation, s.FromClause)
	if err != nil {
		return nil, err
	}
	if err := r.assignments(s.TargetList, sc, s.Relation.GetRelname()); err != nil {
		return nil, err
	}
	if err := r.predicate(s.WhereClause, sc, "WHERE"); err != nil {
		return nil, err
	}
	return r.returning(s.ReturningList, sc)
}

func (r *resolver) delete(s *pg_query.DeleteStmt) ([]col, error) {
	sc, err := r.dmlScope(s.WithClause, s.Relation, s.UsingClause)
	if err != nil {
		return nil, err
	}
	if err := r.predicate(s.WhereClause, sc, "WHERE"); err != nil {
		return nil, err
	}
	return r.returning(s.ReturningList, sc)
}

// dmlScope is the scope of an UPDATE or DELETE: its WITH, the written
// relation (recorded as written) and the FROM/USING items after it.
func (r *resolver) dmlScope(with *pg_query.WithClause, rel *pg_query.RangeVar, from []*pg_query.Node) (*scope, error) {
	ws, err := r.with(with, nil)
	if err != nil {
		return nil, err
	}
	sc := &scope{parent: ws}
	t, err := r.target(rel)
	if err != nil {
		return nil, err
	}
	r.writes(t)
	sc.named = append(sc.named, t)
	sc.from = append(sc.from, t)
	for _, f := range from {
		it, err := r.fromItem(f, sc)
		if err != nil {
			return nil, err
		}
		sc.from = append(sc.from, it)
	}
	return sc, nil
}

// copyStmt plans COPY … TO STDOUT; COPY of masked values to a file or a
// program, or in binary format, is refused.
func (r *resolver) copyStmt(s *pg_query.CopyStmt) (MaskPlan, error) {
	if s.IsFrom {
		return MaskPlan{}, nil
	}
	var out []col
	if s.Query != nil {
		var err error
		if out, err = r.query(s.Query); err != nil {
			return MaskPlan{}, err
		}
	} else {
		sc := &scope{}
		t, err := r.target(s.Relation)
		if err != nil {
			return MaskPlan{}, err
		}
		if len(s.Attlist) == 0 {
			if !t.known {
				return MaskPlan{}, r.refuse("", "weir cannot tell the columns of %s; name them in COPY", s.Relation.GetRelname())
			}
			out = t.cols
		}
		for _, a := range s.Attlist {
			name := a.GetString_().GetSval()
			c := col{name: name}
			for _, x := range t.cols {
				if x.name == name {
					c.src = union(c.src, x.src)
				}
			}
			out = append(out, c)
		}
		if s.WhereClause != nil {
			sc.named = append(sc.named, t)
			if err := r.predicate(s.WhereClause, sc, "WHERE"); err != nil {
				return MaskPlan{}, err
			}
		}
	}
	p := MaskPlan{Copy: &CopyPlan{}, ConstDependent: true}
	masked := ""
	p.setColumns(out)
	for _, c := range out {
		if len(c.src) > 0 {
			r.touches = true
			if masked == "" {
				masked = c.src[0]
			}
		}
	}
	p.Touches, p.Lookup = r.touches, r.lookup
	if masked == "" {
		return p, nil
	}
	if s.Filename != "" || s.IsProgram {
		return MaskPlan{}, r.refuse(masked, "COPY of masked column %s to a file or program is refused; COPY … TO STDOUT masks it", masked)
	}
	for _, o := range s.Options {
		d := o.GetDefElem()
		if d == nil {
			continue
		}
		v := defString(d.Arg)
		switch d.Defname {
		case "format":
			switch strings.ToLower(v) {
			case "csv":
				p.Copy.CSV = true
			case "text":
			default:
				return MaskPlan{}, r.refuse(masked, "COPY of masked column %s in %s format cannot be masked in place; use text or CSV format", masked, v)
			}
		case "header":
			p.Copy.Header = v == "" || v == "true" || v == "on" || v == "1" || v == "match"
		case "null", "encoding", "force_quote", "freeze":
		default:
			return MaskPlan{}, r.refuse(masked, "COPY of masked column %s with option %s cannot be masked by weir; use the default delimiter, quote and escape", masked, d.Defname)
		}
	}
	return p, nil
}

func defString(n *pg_query.Node) string {
	switch x := n.GetNode().(type) {
	case *pg_query.Node_String_:
		return x.String_.Sval
	case *pg_query.Node_Boolean:
		if x.Boolean.Boolval {
			return "true"
		}
		return "false"
	case *pg_query.Node_Integer:
		return strconv.Itoa(int(x.Integer.Ival))
	}
	return ""
}
