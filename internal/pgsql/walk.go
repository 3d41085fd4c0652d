package pgsql

import (
	"math"
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The walk visits every message of a statement's parse tree through
// protoreflect, so that a relation or a function call is found wherever the
// grammar allows it (CTE, subquery, default expression, rule action,
// EXECUTE parameter…) without a list of places to look that could fall
// behind the grammar. A handful of message types get a hook (RangeVar,
// FuncCall, statements with a target relation…); every other message is
// only descended into. The same walk hashes the tree's shape into the
// fingerprint.

// nodeKind selects the hook of a message type.
type nodeKind uint8

const (
	kGeneric nodeKind = iota
	kNode             // the Node oneof wrapper: transparent
	kList             // List: transparent, keeps the write flag for its items
	kRangeVar
	kFuncCall
	kAExpr
	kSubLink  // x op ANY/ALL (subquery): the operator
	kAConst   // constant: shape only, never its value
	kParamRef // $n: shape only
	kCTE      // CommonTableExpr
	kDML      // INSERT, UPDATE, DELETE, MERGE
	kInto     // IntoClause: SELECT INTO, CREATE TABLE AS
	kLocking  // FOR UPDATE / FOR SHARE
	kVarSet   // SET / RESET, also nested in ALTER ROLE … SET and function options
	kCopy     // COPY: the relation is written only FROM
	kObjects  // DROP, COMMENT, SECURITY LABEL: objects named by lists of strings
	kTrigger  // CREATE [EVENT] TRIGGER: the trigger function
	kSchema   // CREATE SCHEMA: its elements create objects in that schema
)

// fieldInfo is what the walk needs to know about one field of a message type.
type fieldInfo struct {
	fd     protoreflect.FieldDescriptor
	num    uint64
	kind   protoreflect.Kind
	isMsg  bool
	isList bool
	// write: relations directly under this field are written, not read.
	write bool
	// copyRel: the relation of a COPY, written only by COPY FROM.
	copyRel bool
}

// typeInfo is computed once per message type of the pg_query schema.
type typeInfo struct {
	kind   nodeKind
	seed   uint64 // hash of the type's name, mixed in for every message
	fields []fieldInfo
	md     protoreflect.MessageDescriptor
	byNum  []int16                      // field number → index in fields, -1 to skip
	with   protoreflect.FieldDescriptor // with_clause, when the type has one
	// order lists what the walk visits, in the order of the schema: the
	// fields in fields that are not in a oneof, and the oneofs.
	order []walkItem
}

// walkItem is one field, or one oneof, of a message type.
type walkItem struct {
	fd protoreflect.FieldDescriptor
	od protoreflect.OneofDescriptor
}

// writeFields lists, per statement type, the fields whose relations the
// statement changes. Every other relation in the tree is read.
var writeFields = map[string][]string{
	"InsertStmt":             {"relation"},
	"UpdateStmt":             {"relation"},
	"DeleteStmt":             {"relation"},
	"MergeStmt":              {"relation"},
	"IntoClause":             {"rel"},
	"CreateStmt":             {"relation", "inh_relations"},
	"AlterTableStmt":         {"relation"},
	"PartitionCmd":           {"name"},
	"TruncateStmt":           {"relations"},
	"LockStmt":               {"relations"},
	"RefreshMatViewStmt":     {"relation"},
	"ViewStmt":               {"view"},
	"IndexStmt":              {"relation"},
	"ReindexStmt":            {"relation"},
	"ClusterStmt":            {"relation"},
	"VacuumRelation":         {"relation"},
	"CreateTrigStmt":         {"relation"},
	"RuleStmt":               {"relation"},
	"CreatePolicyStmt":       {"table"},
	"AlterPolicyStmt":        {"table"},
	"CreateSeqStmt":          {"sequence"},
	"AlterSeqStmt":           {"sequence"},
	"RenameStmt":             {"relation"},
	"AlterObjectSchemaStmt":  {"relation"},
	"AlterObjectDependsStmt": {"relation"},
	"AlterOwnerStmt":         {"relation"},
	"CreateStatsStmt":        {"relations"},
	"GrantStmt":              {"objects"},
}

// constFields are fields that hold a constant the client chose rather than
// part of the statement's shape.
var constFields = map[string]bool{
	"NotifyStmt.payload":            true,
	"CommentStmt.comment":           true,
	"SecLabelStmt.label":            true,
	"FetchStmt.how_many":            true,
	"CopyStmt.filename":             true,
	"ParamRef.number":               true,
	"TransactionStmt.gid":           true,
	"LoadStmt.filename":             true,
	"CreateTableSpaceStmt.location": true,
}

var hookKinds = map[string]nodeKind{
	"Node":                kNode,
	"List":                kList,
	"RangeVar":            kRangeVar,
	"FuncCall":            kFuncCall,
	"A_Expr":              kAExpr,
	"SubLink":             kSubLink,
	"A_Const":             kAConst,
	"ParamRef":            kParamRef,
	"CommonTableExpr":     kCTE,
	"InsertStmt":          kDML,
	"UpdateStmt":          kDML,
	"DeleteStmt":          kDML,
	"MergeStmt":           kDML,
	"IntoClause":          kInto,
	"LockingClause":       kLocking,
	"VariableSetStmt":     kVarSet,
	"CopyStmt":            kCopy,
	"DropStmt":            kObjects,
	"CommentStmt":         kObjects,
	"SecLabelStmt":        kObjects,
	"CreateTrigStmt":      kTrigger,
	"CreateEventTrigStmt": kTrigger,
	"CreateSchemaStmt":    kSchema,
}

// typeInfos is indexed by the message's index in pg_query.proto.
var typeInfos = buildTypeInfos()

// infoOf returns the type information of a parse-tree message. Every
// message of a parse tree is a top-level message of pg_query.proto (a test
// checks it); anything else is refused, through a panic that Classify turns
// into a ClassifyError.
func infoOf(md protoreflect.MessageDescriptor) *typeInfo {
	if i := md.Index(); i < len(typeInfos) && typeInfos[i].md == md {
		return typeInfos[i]
	}
	return nil
}

func buildTypeInfos() []*typeInfo {
	msgs := pg_query.File_pg_query_proto.Messages()
	out := make([]*typeInfo, msgs.Len())
	for i := range out {
		md := msgs.Get(i)
		name := string(md.Name())
		ti := &typeInfo{kind: hookKinds[name], md: md}
		h := newHash()
		h.str(name)
		ti.seed = h.v
		writes := map[string]bool{}
		for _, f := range writeFields[name] {
			writes[f] = true
		}
		fds := md.Fields()
		maxNum := 0
		for j := 0; j < fds.Len(); j++ {
			maxNum = max(maxNum, int(fds.Get(j).Number()))
		}
		ti.byNum = make([]int16, maxNum+1)
		for j := range ti.byNum {
			ti.byNum[j] = -1
		}
		for j := 0; j < fds.Len(); j++ {
			fd := fds.Get(j)
			fname := string(fd.Name())
			if strings.HasSuffix(fname, "location") || fname == "stmt_len" || constFields[name+"."+fname] {
				continue
			}
			if fname == "with_clause" && fd.Kind() == protoreflect.MessageKind {
				ti.with = fd
				continue
			}
			if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
				if len(ti.order) == 0 || ti.order[len(ti.order)-1].od != od {
					ti.order = append(ti.order, walkItem{od: od})
				}
			} else {
				ti.order = append(ti.order, walkItem{fd: fd})
			}
			ti.byNum[fd.Number()] = int16(len(ti.fields))
			ti.fields = append(ti.fields, fieldInfo{
				fd:      fd,
				num:     uint64(fd.Number()),
				kind:    fd.Kind(),
				isMsg:   fd.Kind() == protoreflect.MessageKind,
				isList:  fd.IsList(),
				write:   writes[fname],
				copyRel: name == "CopyStmt" && fname == "relation",
			})
		}
		out[i] = ti
	}
	return out
}

// hash mixes the shape of a tree into 64 bits: FNV-1a over bytes for
// strings, a multiply-xorshift step per 64-bit word for everything else. It
// is computed inline so that the walk allocates nothing for it, and it is
// stable across processes and builds of weir as long as the parse tree's
// schema does not change (the walk visits fields in the schema's order, not
// in protoreflect's Range order, which changes between builds: see descend).
type hash struct{ v uint64 }

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
	mixMul    = 0x9e3779b97f4a7c15
	endMarker = 0xfeedface
)

func newHash() hash { return hash{v: fnvOffset} }

func (h *hash) u64(x uint64) {
	v := (h.v ^ x) * mixMul
	h.v = v ^ (v >> 29)
}

func (h *hash) str(s string) {
	h.u64(uint64(len(s)))
	v := h.v
	for i := 0; i < len(s); i++ {
		v ^= uint64(s[i])
		v *= fnvPrime
	}
	h.v = v
}

// collector accumulates what the walk finds in one statement.
type collector struct {
	h      hash
	reads  []string
	writes []string
	funcs  []string

	// funcRisks come from function calls and operators: they stand even when
	// the statement is only planned (EXPLAIN), since the planner evaluates
	// immutable functions. stmtRisks come from the statement's structure.
	funcRisks riskSet
	stmtRisks riskSet
	funcWrite bool // a called function changes stored data (nextval, lo_create…)

	dml      int // INSERT/UPDATE/DELETE/MERGE nodes, the root included
	dmlInCTE int // those inside a WITH query
	cteDepth int
	into     bool

	scope []string // CTE names visible at this point of the walk
	// schema qualifies the objects that CREATE SCHEMA's elements create.
	schema string

	// track, when set, receives what the shape cache needs to know about
	// the constants of the tree (see shape.go); nil for plain Classify.
	track *constTrack

	// State of the message whose fields visit is called for.
	ti       *typeInfo
	inWrite  bool
	copyFrom bool
}

func (c *collector) addRead(name string)  { c.reads = addUnique(c.reads, name) }
func (c *collector) addWrite(name string) { c.writes = addUnique(c.writes, name) }
func (c *collector) addFunc(name string)  { c.funcs = addUnique(c.funcs, name) }

func addUnique(list []string, s string) []string {
	for _, have := range list {
		if have == s {
			return list
		}
	}
	return append(list, s)
}

func (c *collector) cteVisible(name string) bool {
	for i := len(c.scope) - 1; i >= 0; i-- {
		if c.scope[i] == name {
			return true
		}
	}
	return false
}

// walk visits message m. write is set when m sits directly under a field
// whose relations the statement changes; it survives only the transparent
// Node and List wrappers.
func (c *collector) walk(m protoreflect.Message, write bool) {
	ti := infoOf(m.Descriptor())
	if ti == nil {
		panic("pgsql: unexpected message type " + string(m.Descriptor().FullName()))
	}
	switch ti.kind {
	case kNode, kList:
		// Transparent: the write flag passes to the wrapped messages.
		c.h.u64(ti.seed)
		c.descend(m, ti, write, false)
		return
	case kAConst:
		c.h.u64(ti.seed)
		ac := m.Interface().(*pg_query.A_Const)
		if ac.Isnull {
			c.h.u64(1)
		}
		if c.track != nil {
			c.track.add(ac)
		}
		return
	case kParamRef:
		c.h.u64(ti.seed)
		return
	}

	c.h.u64(ti.seed)
	copyFrom := false
	switch ti.kind {
	case kRangeVar:
		c.relation(m.Interface().(*pg_query.RangeVar), write)
	case kFuncCall:
		fc := m.Interface().(*pg_query.FuncCall)
		c.call(fc.Funcname, fc.Args)
	case kAExpr:
		ae := m.Interface().(*pg_query.A_Expr)
		switch ae.Kind {
		case pg_query.A_Expr_Kind_AEXPR_OP, pg_query.A_Expr_Kind_AEXPR_OP_ANY,
			pg_query.A_Expr_Kind_AEXPR_OP_ALL, pg_query.A_Expr_Kind_AEXPR_DISTINCT,
			pg_query.A_Expr_Kind_AEXPR_NOT_DISTINCT, pg_query.A_Expr_Kind_AEXPR_NULLIF,
			pg_query.A_Expr_Kind_AEXPR_IN, pg_query.A_Expr_Kind_AEXPR_LIKE,
			pg_query.A_Expr_Kind_AEXPR_ILIKE, pg_query.A_Expr_Kind_AEXPR_SIMILAR:
			c.operator(ae.Name)
		}
	case kSubLink:
		if sl := m.Interface().(*pg_query.SubLink); len(sl.OperName) > 0 {
			c.operator(sl.OperName)
		}
	case kCTE:
		c.cteDepth++
	case kDML:
		c.dml++
		if c.cteDepth > 0 {
			c.dmlInCTE++
		}
	case kInto:
		c.into = true
	case kLocking:
		c.stmtRisks |= rLock
	case kVarSet:
		r, read := varSetRisks(m.Interface().(*pg_query.VariableSetStmt))
		c.stmtRisks |= r
		if read {
			c.readConst()
		}
	case kCopy:
		copyFrom = m.Interface().(*pg_query.CopyStmt).IsFrom
	case kObjects:
		c.objects(m.Interface())
	case kTrigger:
		switch t := m.Interface().(type) {
		case *pg_query.CreateTrigStmt:
			c.call(t.Funcname, nil)
		case *pg_query.CreateEventTrigStmt:
			c.call(t.Funcname, nil)
		}
	}

	saveSchema := c.schema
	if ti.kind == kSchema {
		c.schema = m.Interface().(*pg_query.CreateSchemaStmt).Schemaname
	}
	mark := len(c.scope)
	if ti.with != nil && m.Has(ti.with) {
		c.withClause(m.Get(ti.with).Message().Interface().(*pg_query.WithClause))
	}
	c.descend(m, ti, false, copyFrom)
	c.scope = c.scope[:mark]
	c.schema = saveSchema
	if ti.kind == kCTE {
		c.cteDepth--
	}
	c.h.u64(endMarker)
}

// descend visits the populated fields of m in the order of the schema
// (through c.visit; the state it needs is on the collector).
//
// Not with m.Range: protobuf-go swaps two fields of Range's order in every
// message type in about half of all builds, chosen by a hash of the
// executable (internal/detrand), and the fingerprint, which hashes the
// fields in the order the walk visits them, must not change between builds.
func (c *collector) descend(m protoreflect.Message, ti *typeInfo, write, copyFrom bool) {
	saveTI, saveW, saveC := c.ti, c.inWrite, c.copyFrom
	c.ti, c.inWrite, c.copyFrom = ti, write, copyFrom
	for _, it := range ti.order {
		if it.od != nil {
			if fd := m.WhichOneof(it.od); fd != nil {
				c.visit(fd, m.Get(fd))
			}
			continue
		}
		if m.Has(it.fd) {
			c.visit(it.fd, m.Get(it.fd))
		}
	}
	c.ti, c.inWrite, c.copyFrom = saveTI, saveW, saveC
}

// visit visits one populated field of a message of type c.ti.
func (c *collector) visit(fd protoreflect.FieldDescriptor, v protoreflect.Value) {
	ti := c.ti
	num := int(fd.Number())
	if ti.kind == kNode {
		// One oneof member: the wrapped node.
		c.walk(v.Message(), c.inWrite)
		return
	}
	if num >= len(ti.byNum) || ti.byNum[num] < 0 {
		return // location, constant, WITH (visited first)
	}
	f := &ti.fields[ti.byNum[num]]
	c.h.u64(f.num)
	w := f.write || (f.copyRel && c.copyFrom) || (ti.kind == kList && c.inWrite)
	switch {
	case f.isList:
		l := v.List()
		n := l.Len()
		c.h.u64(uint64(n))
		for j := 0; j < n; j++ {
			if f.isMsg {
				c.walk(l.Get(j).Message(), w)
			} else {
				c.scalar(f.kind, l.Get(j))
			}
		}
	case f.isMsg:
		c.walk(v.Message(), w)
	default:
		c.scalar(f.kind, v)
	}
}

func (c *collector) scalar(k protoreflect.Kind, v protoreflect.Value) {
	switch k {
	case protoreflect.StringKind:
		c.h.str(v.String())
	case protoreflect.BoolKind:
		if v.Bool() {
			c.h.u64(1)
		} else {
			c.h.u64(0)
		}
	case protoreflect.EnumKind:
		c.h.u64(uint64(v.Enum()))
	case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Sint32Kind,
		protoreflect.Sint64Kind, protoreflect.Sfixed32Kind, protoreflect.Sfixed64Kind:
		c.h.u64(uint64(v.Int()))
	case protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind,
		protoreflect.Fixed64Kind:
		c.h.u64(v.Uint())
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		c.h.u64(math.Float64bits(v.Float()))
	case protoreflect.BytesKind:
		c.h.str(string(v.Bytes()))
	}
}

// withClause walks the CTEs of a WITH and leaves their names in scope for
// the rest of the statement; the caller pops them. In a WITH RECURSIVE every
// name is visible in every CTE; otherwise a CTE sees only the ones before it
// (a reference to a later one is to a table of that name).
func (c *collector) withClause(wc *pg_query.WithClause) {
	c.h.u64(infoOf(wc.ProtoReflect().Descriptor()).seed)
	if wc.Recursive {
		c.h.u64(1)
		for _, n := range wc.Ctes {
			if cte := n.GetCommonTableExpr(); cte != nil {
				c.scope = append(c.scope, cte.Ctename)
			}
		}
	}
	for _, n := range wc.Ctes {
		c.walk(n.ProtoReflect(), false)
		if cte := n.GetCommonTableExpr(); cte != nil && !wc.Recursive {
			c.scope = append(c.scope, cte.Ctename)
		}
	}
}

// relation records a table reference. A read of an unqualified name that a
// visible CTE defines is that CTE, not a relation; a write target never is.
func (c *collector) relation(rv *pg_query.RangeVar, write bool) {
	if rv.Relname == "" {
		return
	}
	name := rv.Relname
	switch {
	case rv.Schemaname != "":
		name = rv.Schemaname + "." + name
	case write && c.schema != "" && rv.Catalogname == "":
		name = c.schema + "." + name
	}
	if rv.Catalogname != "" {
		name = rv.Catalogname + "." + name
	}
	switch {
	case write:
		c.addWrite(name)
	case rv.Schemaname == "" && rv.Catalogname == "" && c.cteVisible(rv.Relname):
	default:
		c.addRead(name)
	}
}

// nameParts returns the strings of a qualified name list (funcname, operator
// name, DROP object) and whether every item was a String.
func nameParts(list []*pg_query.Node, buf []string) ([]string, bool) {
	for _, n := range list {
		s, ok := n.Node.(*pg_query.Node_String_)
		if !ok || s.String_ == nil {
			return buf, false
		}
		buf = append(buf, s.String_.Sval)
	}
	return buf, true
}

func joinName(parts []string) string {
	switch len(parts) {
	case 0:
		return ""
	case 1:
		return parts[0]
	}
	return strings.Join(parts, ".")
}

// call records a call of the function named by list with arguments args.
func (c *collector) call(list []*pg_query.Node, args []*pg_query.Node) {
	var buf [3]string
	parts, ok := nameParts(list, buf[:0])
	if !ok || len(parts) == 0 {
		c.funcRisks |= rUnknownFunction
		return
	}
	name := joinName(parts)
	base := parts[len(parts)-1]
	schema := ""
	if len(parts) > 1 {
		schema = joinName(parts[:len(parts)-1])
	}
	e := lookupFunc(schema, base, len(parts) > 1)
	if e.risks&rUnknownFunction == 0 {
		switch base {
		case "set_config", "nextval", "setval":
			// Their classification reads the value of constant arguments.
			c.readConst()
		}
		switch base {
		case "set_config":
			if s, ok := constString(args, 0); ok {
				e.risks |= settingRisks(s)
				v, known := constString(args, 1)
				e.risks |= desyncRisks(s, v, known)
			} else {
				// The setting is computed: assume the worst.
				e.risks |= rRoleChange | rSearchPath | rReadOnlyEscape | rDynamicSQL
			}
		case "nextval", "setval":
			if s, ok := constString(args, 0); ok {
				if rel, ok := regclassName(s); ok {
					c.addWrite(rel)
				}
			}
		}
	}
	c.funcRisks |= e.risks
	if e.write {
		c.funcWrite = true
	}
	c.addFunc(name)
}

// readConst records that the classification depends on the value of a
// constant of the text, so that the shape cache never reuses it for a text
// that differs only in constants.
func (c *collector) readConst() {
	if c.track != nil {
		c.track.valueRead = true
	}
}

// constString returns argument i when it is a string constant, possibly cast.
// Callers reading a constant this way must call readConst.
func constString(args []*pg_query.Node, i int) (string, bool) {
	if i >= len(args) || args[i] == nil {
		return "", false
	}
	n := args[i]
	for {
		tc := n.GetTypeCast()
		if tc == nil || tc.Arg == nil {
			break
		}
		n = tc.Arg
	}
	ac := n.GetAConst()
	if ac == nil || ac.Isnull {
		return "", false
	}
	sv := ac.GetSval()
	if sv == nil {
		return "", false
	}
	return sv.Sval, true
}

// regclassName folds a regclass literal ('Public.Seq', '"MySeq"') the way
// PostgreSQL does: unquoted parts lower-cased, quoted parts kept.
func regclassName(s string) (string, bool) {
	var b strings.Builder
	parts := 0
	i := 0
	for {
		parts++
		if parts > 3 {
			return "", false
		}
		if i < len(s) && s[i] == '"' {
			i++
			if i < len(s) && s[i] == '"' && (i+1 == len(s) || s[i+1] != '"') {
				return "", false // "": a zero-length name
			}
			for {
				if i >= len(s) {
					return "", false
				}
				if s[i] == '"' {
					if i+1 < len(s) && s[i+1] == '"' {
						b.WriteByte('"')
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteByte(s[i])
				i++
			}
		} else {
			start := i
			for i < len(s) && s[i] != '.' {
				ch := s[i]
				if ch == '"' || ch == ' ' {
					return "", false
				}
				if 'A' <= ch && ch <= 'Z' {
					ch += 'a' - 'A'
				}
				b.WriteByte(ch)
				i++
			}
			if i == start {
				return "", false
			}
		}
		if i == len(s) {
			return b.String(), true
		}
		if s[i] != '.' {
			return "", false
		}
		b.WriteByte('.')
		i++
	}
}

// operator checks the name of an operator: one outside the core set, or
// qualified with a schema other than pg_catalog, runs a user function.
// (BETWEEN and the like are spelled with keywords, not operator names.)
func (c *collector) operator(list []*pg_query.Node) {
	var buf [2]string
	parts, ok := nameParts(list, buf[:0])
	if ok {
		switch {
		case len(parts) == 1 && builtinOperators[parts[0]]:
			return
		case len(parts) == 2 && parts[0] == "pg_catalog" && builtinOperators[parts[1]]:
			return
		}
	}
	c.funcRisks |= rUnknownFunction
	c.addFunc("operator(" + joinName(parts) + ")")
}

// objects records the relations named by DROP, COMMENT ON and SECURITY
// LABEL ON, whose objects are lists of strings rather than RangeVars.
func (c *collector) objects(m any) {
	var (
		typ  pg_query.ObjectType
		objs []*pg_query.Node
	)
	switch s := m.(type) {
	case *pg_query.DropStmt:
		typ, objs = s.RemoveType, s.Objects
	case *pg_query.CommentStmt:
		typ, objs = s.Objtype, []*pg_query.Node{s.Object}
	case *pg_query.SecLabelStmt:
		typ, objs = s.Objtype, []*pg_query.Node{s.Object}
	}
	drop := 0 // trailing name parts that are not the relation's
	switch typ {
	case pg_query.ObjectType_OBJECT_TABLE, pg_query.ObjectType_OBJECT_VIEW,
		pg_query.ObjectType_OBJECT_MATVIEW, pg_query.ObjectType_OBJECT_INDEX,
		pg_query.ObjectType_OBJECT_SEQUENCE, pg_query.ObjectType_OBJECT_FOREIGN_TABLE:
	case pg_query.ObjectType_OBJECT_COLUMN, pg_query.ObjectType_OBJECT_TRIGGER,
		pg_query.ObjectType_OBJECT_RULE, pg_query.ObjectType_OBJECT_POLICY,
		pg_query.ObjectType_OBJECT_TABCONSTRAINT:
		drop = 1
	default:
		return
	}
	var buf [4]string
	for _, o := range objs {
		l := o.GetList()
		if l == nil {
			continue
		}
		parts, ok := nameParts(l.Items, buf[:0])
		if !ok || len(parts) <= drop {
			continue
		}
		c.addWrite(joinName(parts[:len(parts)-drop]))
	}
}

// varSetRisks classifies SET / RESET of a setting. read reports whether
// the risks depend on the value of a constant (the new value of a setting
// whose value matters).
func varSetRisks(vs *pg_query.VariableSetStmt) (r riskSet, read bool) {
	r = rSettingChange
	switch vs.Kind {
	case pg_query.VariableSetKind_VAR_RESET_ALL:
		return r | rRoleChange | rSearchPath | rReadOnlyEscape, false
	case pg_query.VariableSetKind_VAR_SET_VALUE:
		value, known := "", false
		if len(vs.Args) == 1 {
			if ac := vs.Args[0].GetAConst(); ac != nil {
				read = desyncSetting(vs.Name)
				switch v := ac.Val.(type) {
				case *pg_query.A_Const_Sval:
					value, known = v.Sval.GetSval(), true
				case *pg_query.A_Const_Ival:
					value, known = strconv.Itoa(int(v.Ival.GetIval())), true
				}
			}
		}
		r |= desyncRisks(vs.Name, value, known)
	}
	return r | settingRisks(vs.Name), read
}
