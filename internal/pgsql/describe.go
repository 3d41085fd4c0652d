package pgsql

import (
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/weir-gw/weir/internal/command"
)

// stmtClass is what the top-level statement type alone says: its verb, its
// kind before the tree's content raises it, and the risks of the statement
// itself. What the tree contains (relations, functions, nested DML) is the
// collector's.
type stmtClass struct {
	verb     string
	kind     command.Kind
	risks    riskSet
	prepared string
	// planOnly: EXPLAIN without ANALYZE; nothing but planning happens.
	planOnly bool
	// dml: the statement that runs is itself INSERT/UPDATE/DELETE/MERGE, so
	// one DML node in the tree is not "nested".
	dml bool
	// readsConst: the class depends on the value of a constant node
	// (A_Const), so the shape cache must not reuse it (see shape.go).
	readsConst bool
}

func unsupported(what string) *ClassifyError {
	return &ClassifyError{Reason: "unsupported statement type " + what}
}

// describe classifies a top-level statement node by its type. Statements
// that wrap another (EXPLAIN, PREPARE, DECLARE, CREATE TABLE AS) take the
// inner statement's class. A type not listed is a ClassifyError: weir never
// guesses.
func describe(n *pg_query.Node) (stmtClass, *ClassifyError) {
	const (
		read  = command.KindRead
		write = command.KindWrite
		ddl   = command.KindDDL
		admin = command.KindAdmin
		txn   = command.KindTransaction
		sess  = command.KindSession
	)
	if n == nil || n.Node == nil {
		return stmtClass{}, unsupported("(empty)")
	}
	switch s := n.Node.(type) {
	// Queries and data changes.
	case *pg_query.Node_SelectStmt:
		if s.SelectStmt.IntoClause != nil {
			return stmtClass{verb: "SELECT INTO", kind: ddl}, nil
		}
		return stmtClass{verb: "SELECT", kind: read}, nil
	case *pg_query.Node_InsertStmt:
		return stmtClass{verb: "INSERT", kind: write, dml: true}, nil
	case *pg_query.Node_UpdateStmt:
		return stmtClass{verb: "UPDATE", kind: write, dml: true}, nil
	case *pg_query.Node_DeleteStmt:
		return stmtClass{verb: "DELETE", kind: write, dml: true}, nil
	case *pg_query.Node_MergeStmt:
		return stmtClass{verb: "MERGE", kind: write, dml: true}, nil
	case *pg_query.Node_TruncateStmt:
		return stmtClass{verb: "TRUNCATE", kind: write}, nil
	case *pg_query.Node_RefreshMatViewStmt:
		return stmtClass{verb: "REFRESH MATERIALIZED VIEW", kind: write}, nil
	case *pg_query.Node_LockStmt:
		return stmtClass{verb: "LOCK", kind: write, risks: rLock}, nil
	case *pg_query.Node_CopyStmt:
		return describeCopy(s.CopyStmt), nil
	case *pg_query.Node_DoStmt:
		return stmtClass{verb: "DO", kind: write, risks: rDynamicSQL}, nil
	case *pg_query.Node_CallStmt:
		// Procedures are never built-in side-effect-free functions.
		return stmtClass{verb: "CALL", kind: write, risks: rUnknownFunction}, nil

	// Statements wrapping another.
	case *pg_query.Node_ExplainStmt:
		inner, err := describe(s.ExplainStmt.Query)
		if err != nil {
			return inner, err
		}
		analyze, readsConst := explainAnalyze(s.ExplainStmt.Options)
		readsConst = readsConst || inner.readsConst
		if analyze {
			if inner.verb == "EXECUTE" {
				// Runs a prepared statement that weir does not see here, and
				// adapters resolve only a plain EXECUTE: fail closed, as for
				// CREATE TABLE AS EXECUTE.
				return stmtClass{verb: "EXPLAIN", kind: command.KindWrite, risks: rDynamicSQL,
					prepared: inner.prepared, readsConst: readsConst}, nil
			}
			inner.verb = "EXPLAIN" // runs the statement: its class is the statement's
			inner.readsConst = readsConst
			return inner, nil
		}
		return stmtClass{verb: "EXPLAIN", kind: read, planOnly: true, prepared: inner.prepared, readsConst: readsConst}, nil
	case *pg_query.Node_PrepareStmt:
		inner, err := describe(s.PrepareStmt.Query)
		if err != nil {
			return inner, err
		}
		inner.verb, inner.prepared = "PREPARE", s.PrepareStmt.Name
		return inner, nil
	case *pg_query.Node_ExecuteStmt:
		// Kind stays empty: the adapter substitutes the prepared body's class.
		return stmtClass{verb: "EXECUTE", prepared: s.ExecuteStmt.Name}, nil
	case *pg_query.Node_DeallocateStmt:
		name := s.DeallocateStmt.Name
		if s.DeallocateStmt.Isall {
			name = "*"
		}
		return stmtClass{verb: "DEALLOCATE", kind: sess, prepared: name}, nil
	case *pg_query.Node_DeclareCursorStmt:
		inner, err := describe(s.DeclareCursorStmt.Query)
		if err != nil {
			return inner, err
		}
		inner.verb = "DECLARE"
		inner.prepared = s.DeclareCursorStmt.Portalname
		return inner, nil
	case *pg_query.Node_CreateTableAsStmt:
		c := stmtClass{verb: "CREATE TABLE AS", kind: ddl, risks: rSelectInto}
		switch {
		case s.CreateTableAsStmt.IsSelectInto:
			c.verb = "SELECT INTO"
		case s.CreateTableAsStmt.Objtype == pg_query.ObjectType_OBJECT_MATVIEW:
			c.verb = "CREATE MATERIALIZED VIEW"
		}
		if ex := s.CreateTableAsStmt.Query.GetExecuteStmt(); ex != nil {
			// The rows come from a prepared statement weir cannot see here.
			c.risks |= rDynamicSQL
			c.prepared = ex.Name
		}
		return c, nil
	case *pg_query.Node_FetchStmt:
		// The cursor name: protocol portals and SQL cursors share one
		// namespace, so the adapter must check whose cursor this is.
		if s.FetchStmt.Ismove {
			return stmtClass{verb: "MOVE", kind: read, prepared: s.FetchStmt.Portalname}, nil
		}
		return stmtClass{verb: "FETCH", kind: read, prepared: s.FetchStmt.Portalname}, nil
	case *pg_query.Node_ClosePortalStmt:
		name := s.ClosePortalStmt.Portalname
		if name == "" {
			name = "*" // CLOSE ALL
		}
		return stmtClass{verb: "CLOSE", kind: sess, prepared: name}, nil

	// Transactions.
	case *pg_query.Node_TransactionStmt:
		return describeTransaction(s.TransactionStmt), nil
	case *pg_query.Node_ConstraintsSetStmt:
		return stmtClass{verb: "SET CONSTRAINTS", kind: txn}, nil

	// Session state.
	case *pg_query.Node_VariableSetStmt:
		// The walk adds the setting's risks (varSetRisks).
		switch s.VariableSetStmt.Kind {
		case pg_query.VariableSetKind_VAR_RESET, pg_query.VariableSetKind_VAR_RESET_ALL:
			return stmtClass{verb: "RESET", kind: sess}, nil
		}
		return stmtClass{verb: "SET", kind: sess}, nil
	case *pg_query.Node_VariableShowStmt:
		return stmtClass{verb: "SHOW", kind: read}, nil
	case *pg_query.Node_DiscardStmt:
		if s.DiscardStmt.Target == pg_query.DiscardMode_DISCARD_ALL {
			// DISCARD ALL = SET SESSION AUTHORIZATION DEFAULT; RESET ALL;
			// DEALLOCATE ALL; …
			return stmtClass{verb: "DISCARD", kind: sess, prepared: "*",
				risks: rSettingChange | rRoleChange | rSearchPath | rReadOnlyEscape}, nil
		}
		return stmtClass{verb: "DISCARD", kind: sess}, nil
	case *pg_query.Node_ListenStmt:
		return stmtClass{verb: "LISTEN", kind: sess}, nil
	case *pg_query.Node_UnlistenStmt:
		return stmtClass{verb: "UNLISTEN", kind: sess}, nil
	case *pg_query.Node_NotifyStmt:
		return stmtClass{verb: "NOTIFY", kind: sess, risks: rNotify}, nil

	// Schema changes.
	case *pg_query.Node_CreateStmt:
		return stmtClass{verb: "CREATE TABLE", kind: ddl}, nil
	case *pg_query.Node_CreateForeignTableStmt:
		return stmtClass{verb: "CREATE FOREIGN TABLE", kind: ddl, risks: rNetworkAccess}, nil
	case *pg_query.Node_AlterTableStmt:
		c := stmtClass{verb: "ALTER " + objectName(s.AlterTableStmt.Objtype), kind: ddl}
		for _, cmd := range s.AlterTableStmt.Cmds {
			if at := cmd.GetAlterTableCmd(); at != nil && at.Subtype == pg_query.AlterTableType_AT_ChangeOwner {
				c.kind = admin
			}
		}
		return c, nil
	case *pg_query.Node_DropStmt:
		return stmtClass{verb: "DROP " + objectName(s.DropStmt.RemoveType), kind: objectKind(s.DropStmt.RemoveType)}, nil
	case *pg_query.Node_RenameStmt:
		t := s.RenameStmt.RenameType
		switch t {
		case pg_query.ObjectType_OBJECT_COLUMN, pg_query.ObjectType_OBJECT_TABCONSTRAINT,
			pg_query.ObjectType_OBJECT_ATTRIBUTE:
			t = s.RenameStmt.RelationType
		}
		return stmtClass{verb: "ALTER " + objectName(t), kind: objectKind(t)}, nil
	case *pg_query.Node_CommentStmt:
		return stmtClass{verb: "COMMENT", kind: ddl}, nil
	case *pg_query.Node_IndexStmt:
		return stmtClass{verb: "CREATE INDEX", kind: ddl}, nil
	case *pg_query.Node_ViewStmt:
		return stmtClass{verb: "CREATE VIEW", kind: ddl}, nil
	case *pg_query.Node_CreateSeqStmt:
		return stmtClass{verb: "CREATE SEQUENCE", kind: ddl}, nil
	case *pg_query.Node_AlterSeqStmt:
		return stmtClass{verb: "ALTER SEQUENCE", kind: ddl}, nil
	case *pg_query.Node_CreateSchemaStmt:
		return stmtClass{verb: "CREATE SCHEMA", kind: ddl}, nil
	case *pg_query.Node_CompositeTypeStmt, *pg_query.Node_CreateEnumStmt, *pg_query.Node_CreateRangeStmt:
		return stmtClass{verb: "CREATE TYPE", kind: ddl}, nil
	case *pg_query.Node_AlterEnumStmt, *pg_query.Node_AlterTypeStmt:
		return stmtClass{verb: "ALTER TYPE", kind: ddl}, nil
	case *pg_query.Node_CreateDomainStmt:
		return stmtClass{verb: "CREATE DOMAIN", kind: ddl}, nil
	case *pg_query.Node_AlterDomainStmt:
		return stmtClass{verb: "ALTER DOMAIN", kind: ddl}, nil
	case *pg_query.Node_DefineStmt:
		return describeDefine(s.DefineStmt), nil
	case *pg_query.Node_CreateTrigStmt:
		if s.CreateTrigStmt.Isconstraint {
			return stmtClass{verb: "CREATE CONSTRAINT TRIGGER", kind: ddl}, nil
		}
		return stmtClass{verb: "CREATE TRIGGER", kind: ddl}, nil
	case *pg_query.Node_RuleStmt:
		return stmtClass{verb: "CREATE RULE", kind: ddl}, nil
	case *pg_query.Node_CreatePolicyStmt:
		return stmtClass{verb: "CREATE POLICY", kind: ddl}, nil
	case *pg_query.Node_AlterPolicyStmt:
		return stmtClass{verb: "ALTER POLICY", kind: ddl}, nil
	case *pg_query.Node_CreateFunctionStmt:
		return describeCreateFunction(s.CreateFunctionStmt), nil
	case *pg_query.Node_AlterFunctionStmt:
		return stmtClass{verb: "ALTER " + objectName(s.AlterFunctionStmt.Objtype), kind: ddl}, nil
	case *pg_query.Node_AlterObjectSchemaStmt:
		t := s.AlterObjectSchemaStmt.ObjectType
		return stmtClass{verb: "ALTER " + objectName(t), kind: objectKind(t)}, nil
	case *pg_query.Node_AlterObjectDependsStmt:
		return stmtClass{verb: "ALTER " + objectName(s.AlterObjectDependsStmt.ObjectType), kind: ddl}, nil
	case *pg_query.Node_CreateCastStmt:
		return stmtClass{verb: "CREATE CAST", kind: ddl}, nil
	case *pg_query.Node_CreateConversionStmt:
		return stmtClass{verb: "CREATE CONVERSION", kind: ddl}, nil
	case *pg_query.Node_CreateTransformStmt:
		return stmtClass{verb: "CREATE TRANSFORM", kind: ddl}, nil
	case *pg_query.Node_CreateOpClassStmt:
		return stmtClass{verb: "CREATE OPERATOR CLASS", kind: ddl}, nil
	case *pg_query.Node_CreateOpFamilyStmt:
		return stmtClass{verb: "CREATE OPERATOR FAMILY", kind: ddl}, nil
	case *pg_query.Node_AlterOpFamilyStmt:
		return stmtClass{verb: "ALTER OPERATOR FAMILY", kind: ddl}, nil
	case *pg_query.Node_AlterOperatorStmt:
		return stmtClass{verb: "ALTER OPERATOR", kind: ddl}, nil
	case *pg_query.Node_AlterCollationStmt:
		return stmtClass{verb: "ALTER COLLATION", kind: ddl}, nil
	case *pg_query.Node_CreateStatsStmt:
		return stmtClass{verb: "CREATE STATISTICS", kind: ddl}, nil
	case *pg_query.Node_AlterStatsStmt:
		return stmtClass{verb: "ALTER STATISTICS", kind: ddl}, nil
	case *pg_query.Node_AlterTsdictionaryStmt:
		return stmtClass{verb: "ALTER TEXT SEARCH DICTIONARY", kind: ddl}, nil
	case *pg_query.Node_AlterTsconfigurationStmt:
		return stmtClass{verb: "ALTER TEXT SEARCH CONFIGURATION", kind: ddl}, nil

	// Administration: roles, privileges, server, maintenance, extensions.
	case *pg_query.Node_GrantStmt:
		if s.GrantStmt.IsGrant {
			return stmtClass{verb: "GRANT", kind: admin}, nil
		}
		return stmtClass{verb: "REVOKE", kind: admin}, nil
	case *pg_query.Node_GrantRoleStmt:
		if s.GrantRoleStmt.IsGrant {
			return stmtClass{verb: "GRANT", kind: admin}, nil
		}
		return stmtClass{verb: "REVOKE", kind: admin}, nil
	case *pg_query.Node_AlterDefaultPrivilegesStmt:
		return stmtClass{verb: "ALTER DEFAULT PRIVILEGES", kind: admin}, nil
	case *pg_query.Node_CreateRoleStmt:
		switch s.CreateRoleStmt.StmtType {
		case pg_query.RoleStmtType_ROLESTMT_USER:
			return stmtClass{verb: "CREATE USER", kind: admin}, nil
		case pg_query.RoleStmtType_ROLESTMT_GROUP:
			return stmtClass{verb: "CREATE GROUP", kind: admin}, nil
		}
		return stmtClass{verb: "CREATE ROLE", kind: admin}, nil
	case *pg_query.Node_AlterRoleStmt, *pg_query.Node_AlterRoleSetStmt:
		return stmtClass{verb: "ALTER ROLE", kind: admin}, nil
	case *pg_query.Node_DropRoleStmt:
		return stmtClass{verb: "DROP ROLE", kind: admin}, nil
	case *pg_query.Node_ReassignOwnedStmt:
		return stmtClass{verb: "REASSIGN OWNED", kind: admin}, nil
	case *pg_query.Node_DropOwnedStmt:
		return stmtClass{verb: "DROP OWNED", kind: admin}, nil
	case *pg_query.Node_AlterOwnerStmt:
		return stmtClass{verb: "ALTER " + objectName(s.AlterOwnerStmt.ObjectType), kind: admin}, nil
	case *pg_query.Node_AlterSystemStmt:
		return stmtClass{verb: "ALTER SYSTEM", kind: admin}, nil
	case *pg_query.Node_SecLabelStmt:
		return stmtClass{verb: "SECURITY LABEL", kind: admin}, nil
	case *pg_query.Node_VacuumStmt:
		if s.VacuumStmt.IsVacuumcmd {
			return stmtClass{verb: "VACUUM", kind: admin}, nil
		}
		return stmtClass{verb: "ANALYZE", kind: admin}, nil
	case *pg_query.Node_ReindexStmt:
		return stmtClass{verb: "REINDEX", kind: admin}, nil
	case *pg_query.Node_ClusterStmt:
		return stmtClass{verb: "CLUSTER", kind: admin}, nil
	case *pg_query.Node_CheckPointStmt:
		return stmtClass{verb: "CHECKPOINT", kind: admin}, nil
	case *pg_query.Node_LoadStmt:
		return stmtClass{verb: "LOAD", kind: admin, risks: rFileAccess}, nil
	case *pg_query.Node_CreatedbStmt:
		return stmtClass{verb: "CREATE DATABASE", kind: admin}, nil
	case *pg_query.Node_AlterDatabaseStmt, *pg_query.Node_AlterDatabaseSetStmt,
		*pg_query.Node_AlterDatabaseRefreshCollStmt:
		return stmtClass{verb: "ALTER DATABASE", kind: admin}, nil
	case *pg_query.Node_DropdbStmt:
		return stmtClass{verb: "DROP DATABASE", kind: admin}, nil
	case *pg_query.Node_CreateExtensionStmt:
		return stmtClass{verb: "CREATE EXTENSION", kind: admin, risks: extensionRisks(s.CreateExtensionStmt.Extname)}, nil
	case *pg_query.Node_AlterExtensionStmt, *pg_query.Node_AlterExtensionContentsStmt:
		return stmtClass{verb: "ALTER EXTENSION", kind: admin}, nil
	case *pg_query.Node_CreateFdwStmt:
		return stmtClass{verb: "CREATE FOREIGN DATA WRAPPER", kind: admin, risks: rNetworkAccess}, nil
	case *pg_query.Node_AlterFdwStmt:
		return stmtClass{verb: "ALTER FOREIGN DATA WRAPPER", kind: admin, risks: rNetworkAccess}, nil
	case *pg_query.Node_CreateForeignServerStmt:
		return stmtClass{verb: "CREATE SERVER", kind: admin, risks: rNetworkAccess}, nil
	case *pg_query.Node_AlterForeignServerStmt:
		return stmtClass{verb: "ALTER SERVER", kind: admin, risks: rNetworkAccess}, nil
	case *pg_query.Node_CreateUserMappingStmt:
		return stmtClass{verb: "CREATE USER MAPPING", kind: admin, risks: rNetworkAccess}, nil
	case *pg_query.Node_AlterUserMappingStmt:
		return stmtClass{verb: "ALTER USER MAPPING", kind: admin, risks: rNetworkAccess}, nil
	case *pg_query.Node_DropUserMappingStmt:
		return stmtClass{verb: "DROP USER MAPPING", kind: admin, risks: rNetworkAccess}, nil
	case *pg_query.Node_ImportForeignSchemaStmt:
		return stmtClass{verb: "IMPORT FOREIGN SCHEMA", kind: admin, risks: rNetworkAccess}, nil
	case *pg_query.Node_CreateEventTrigStmt:
		return stmtClass{verb: "CREATE EVENT TRIGGER", kind: admin}, nil
	case *pg_query.Node_AlterEventTrigStmt:
		return stmtClass{verb: "ALTER EVENT TRIGGER", kind: admin}, nil
	case *pg_query.Node_CreateTableSpaceStmt:
		// LOCATION is a directory of the server's file system.
		return stmtClass{verb: "CREATE TABLESPACE", kind: admin, risks: rFileAccess}, nil
	case *pg_query.Node_DropTableSpaceStmt:
		return stmtClass{verb: "DROP TABLESPACE", kind: admin}, nil
	case *pg_query.Node_AlterTableSpaceOptionsStmt:
		return stmtClass{verb: "ALTER TABLESPACE", kind: admin}, nil
	case *pg_query.Node_AlterTableMoveAllStmt:
		return stmtClass{verb: "ALTER " + objectName(s.AlterTableMoveAllStmt.Objtype), kind: admin}, nil
	case *pg_query.Node_CreatePublicationStmt:
		return stmtClass{verb: "CREATE PUBLICATION", kind: admin}, nil
	case *pg_query.Node_AlterPublicationStmt:
		return stmtClass{verb: "ALTER PUBLICATION", kind: admin}, nil
	case *pg_query.Node_CreateSubscriptionStmt:
		return stmtClass{verb: "CREATE SUBSCRIPTION", kind: admin, risks: rNetworkAccess}, nil
	case *pg_query.Node_AlterSubscriptionStmt:
		return stmtClass{verb: "ALTER SUBSCRIPTION", kind: admin, risks: rNetworkAccess}, nil
	case *pg_query.Node_DropSubscriptionStmt:
		return stmtClass{verb: "DROP SUBSCRIPTION", kind: admin, risks: rNetworkAccess}, nil
	case *pg_query.Node_CreatePlangStmt:
		return stmtClass{verb: "CREATE LANGUAGE", kind: admin}, nil
	case *pg_query.Node_CreateAmStmt:
		return stmtClass{verb: "CREATE ACCESS METHOD", kind: admin}, nil
	}
	name := strings.TrimPrefix(typeNameOf(n), "Node_")
	return stmtClass{}, unsupported(name)
}

func typeNameOf(n *pg_query.Node) string {
	m := n.ProtoReflect()
	if fd := m.WhichOneof(m.Descriptor().Oneofs().ByName("node")); fd != nil {
		return string(fd.Message().Name())
	}
	return "(unknown)"
}

func describeCopy(cs *pg_query.CopyStmt) stmtClass {
	c := stmtClass{verb: "COPY TO", kind: command.KindRead, risks: rCopy}
	if cs.IsFrom {
		c.verb, c.kind = "COPY FROM", command.KindWrite
	}
	switch {
	case cs.IsProgram:
		c.risks |= rProgramExec
	case cs.Filename != "":
		c.risks |= rFileAccess
		// azure_storage and similar extensions accept URLs as COPY targets.
		if strings.Contains(cs.Filename, "://") {
			c.risks |= rNetworkAccess
		}
	}
	return c
}

func describeTransaction(ts *pg_query.TransactionStmt) stmtClass {
	c := stmtClass{kind: command.KindTransaction}
	switch ts.Kind {
	case pg_query.TransactionStmtKind_TRANS_STMT_BEGIN:
		c.verb = "BEGIN"
	case pg_query.TransactionStmtKind_TRANS_STMT_START:
		c.verb = "START TRANSACTION"
	case pg_query.TransactionStmtKind_TRANS_STMT_COMMIT:
		c.verb = "COMMIT"
	case pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK:
		c.verb = "ROLLBACK"
	case pg_query.TransactionStmtKind_TRANS_STMT_SAVEPOINT:
		c.verb = "SAVEPOINT"
	case pg_query.TransactionStmtKind_TRANS_STMT_RELEASE:
		c.verb = "RELEASE"
	case pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK_TO:
		c.verb = "ROLLBACK TO SAVEPOINT"
	case pg_query.TransactionStmtKind_TRANS_STMT_PREPARE:
		c.verb = "PREPARE TRANSACTION"
	case pg_query.TransactionStmtKind_TRANS_STMT_COMMIT_PREPARED:
		c.verb = "COMMIT PREPARED"
	case pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK_PREPARED:
		c.verb = "ROLLBACK PREPARED"
	default:
		c.verb = "TRANSACTION"
	}
	for _, o := range ts.Options {
		d := o.GetDefElem()
		if d == nil || d.Defname != "transaction_read_only" {
			continue
		}
		// READ ONLY is 1; READ WRITE is 0; anything else is not understood.
		ac := d.Arg.GetAConst()
		if ac != nil {
			// The grammar makes this constant from keywords, but weir does
			// not rely on that: a value read is a value read.
			c.readsConst = true
		}
		if ac == nil || ac.GetIval() == nil || ac.GetIval().Ival == 0 {
			c.risks |= rReadOnlyEscape
		}
	}
	return c
}

// explainAnalyze reports whether EXPLAIN options ask to run the statement.
// An ANALYZE option whose value is not clearly false counts as true.
// readsConst reports whether the answer read the value of a constant node.
func explainAnalyze(opts []*pg_query.Node) (analyze, readsConst bool) {
	for _, o := range opts {
		d := o.GetDefElem()
		if d == nil || !strings.EqualFold(d.Defname, "analyze") {
			continue
		}
		if d.Arg.GetAConst() != nil {
			readsConst = true
		}
		if !defFalse(d.Arg) {
			return true, readsConst
		}
	}
	return false, readsConst
}

// defFalse reports whether a DefElem argument is a boolean false, as
// PostgreSQL's defGetBoolean reads it. No argument means true.
func defFalse(arg *pg_query.Node) bool {
	if arg == nil {
		return false
	}
	var s string
	switch v := arg.Node.(type) {
	case *pg_query.Node_String_:
		s = v.String_.GetSval()
	case *pg_query.Node_Integer:
		return v.Integer.GetIval() == 0
	case *pg_query.Node_Boolean:
		return !v.Boolean.GetBoolval()
	case *pg_query.Node_AConst:
		switch c := v.AConst.Val.(type) {
		case *pg_query.A_Const_Ival:
			return c.Ival.GetIval() == 0
		case *pg_query.A_Const_Boolval:
			return !c.Boolval.GetBoolval()
		case *pg_query.A_Const_Sval:
			s = c.Sval.GetSval()
		default:
			return false
		}
	default:
		return false
	}
	switch strings.ToLower(s) {
	case "false", "off", "no", "0", "f", "n", "of", "fa", "fal", "fals":
		return true
	}
	return false
}

func describeCreateFunction(cf *pg_query.CreateFunctionStmt) stmtClass {
	c := stmtClass{verb: "CREATE FUNCTION", kind: command.KindDDL, risks: rDynamicSQL}
	if cf.IsProcedure {
		c.verb = "CREATE PROCEDURE"
	}
	// A function named like a built-in shadows it for every caller whose
	// search_path puts its schema first (CVE-2018-1058).
	var buf [3]string
	if parts, ok := nameParts(cf.Funcname, buf[:0]); ok && len(parts) > 0 && isBuiltinName(parts[len(parts)-1]) {
		c.risks |= rSearchPath
	}
	return c
}

func describeDefine(ds *pg_query.DefineStmt) stmtClass {
	c := stmtClass{verb: "CREATE " + objectName(ds.Kind), kind: command.KindDDL}
	var buf [3]string
	parts, ok := nameParts(ds.Defnames, buf[:0])
	if !ok || len(parts) == 0 {
		return c
	}
	last := parts[len(parts)-1]
	switch ds.Kind {
	case pg_query.ObjectType_OBJECT_OPERATOR:
		if builtinOperators[last] {
			c.risks |= rSearchPath
		}
	case pg_query.ObjectType_OBJECT_AGGREGATE:
		if isBuiltinName(last) {
			c.risks |= rSearchPath
		}
	}
	return c
}

func extensionRisks(name string) riskSet {
	switch name {
	case "dblink", "postgres_fdw", "azure_storage", "mysql_fdw", "oracle_fdw",
		"tds_fdw", "mongo_fdw", "redis_fdw", "http", "pgsql_http", "pg_net":
		return rNetworkAccess
	case "adminpack", "file_fdw", "lo":
		return rFileAccess
	case "plpython3u", "plpythonu", "plperlu", "pltclu", "plsh", "pllua_u", "plv8u":
		return rProgramExec
	}
	return 0
}

// objectKind: objects of the cluster or its security are admin; the rest of
// the schema is ddl.
func objectKind(t pg_query.ObjectType) command.Kind {
	switch t {
	case pg_query.ObjectType_OBJECT_ACCESS_METHOD, pg_query.ObjectType_OBJECT_DATABASE,
		pg_query.ObjectType_OBJECT_EVENT_TRIGGER, pg_query.ObjectType_OBJECT_EXTENSION,
		pg_query.ObjectType_OBJECT_FDW, pg_query.ObjectType_OBJECT_FOREIGN_SERVER,
		pg_query.ObjectType_OBJECT_LANGUAGE, pg_query.ObjectType_OBJECT_PUBLICATION,
		pg_query.ObjectType_OBJECT_PUBLICATION_NAMESPACE, pg_query.ObjectType_OBJECT_PUBLICATION_REL,
		pg_query.ObjectType_OBJECT_ROLE, pg_query.ObjectType_OBJECT_SUBSCRIPTION,
		pg_query.ObjectType_OBJECT_TABLESPACE, pg_query.ObjectType_OBJECT_USER_MAPPING,
		pg_query.ObjectType_OBJECT_PARAMETER_ACL, pg_query.ObjectType_OBJECT_DEFACL:
		return command.KindAdmin
	}
	return command.KindDDL
}

// objectNames spells object types the way SQL does.
var objectNames = map[pg_query.ObjectType]string{
	pg_query.ObjectType_OBJECT_ACCESS_METHOD:         "ACCESS METHOD",
	pg_query.ObjectType_OBJECT_AMOP:                  "OPERATOR FAMILY",
	pg_query.ObjectType_OBJECT_AMPROC:                "OPERATOR FAMILY",
	pg_query.ObjectType_OBJECT_DEFACL:                "DEFAULT PRIVILEGES",
	pg_query.ObjectType_OBJECT_DOMCONSTRAINT:         "DOMAIN",
	pg_query.ObjectType_OBJECT_EVENT_TRIGGER:         "EVENT TRIGGER",
	pg_query.ObjectType_OBJECT_FDW:                   "FOREIGN DATA WRAPPER",
	pg_query.ObjectType_OBJECT_FOREIGN_SERVER:        "SERVER",
	pg_query.ObjectType_OBJECT_FOREIGN_TABLE:         "FOREIGN TABLE",
	pg_query.ObjectType_OBJECT_LARGEOBJECT:           "LARGE OBJECT",
	pg_query.ObjectType_OBJECT_MATVIEW:               "MATERIALIZED VIEW",
	pg_query.ObjectType_OBJECT_OPCLASS:               "OPERATOR CLASS",
	pg_query.ObjectType_OBJECT_OPFAMILY:              "OPERATOR FAMILY",
	pg_query.ObjectType_OBJECT_PARAMETER_ACL:         "PARAMETER",
	pg_query.ObjectType_OBJECT_PUBLICATION_NAMESPACE: "PUBLICATION",
	pg_query.ObjectType_OBJECT_PUBLICATION_REL:       "PUBLICATION",
	pg_query.ObjectType_OBJECT_STATISTIC_EXT:         "STATISTICS",
	pg_query.ObjectType_OBJECT_TABCONSTRAINT:         "TABLE",
	pg_query.ObjectType_OBJECT_TSCONFIGURATION:       "TEXT SEARCH CONFIGURATION",
	pg_query.ObjectType_OBJECT_TSDICTIONARY:          "TEXT SEARCH DICTIONARY",
	pg_query.ObjectType_OBJECT_TSPARSER:              "TEXT SEARCH PARSER",
	pg_query.ObjectType_OBJECT_TSTEMPLATE:            "TEXT SEARCH TEMPLATE",
	pg_query.ObjectType_OBJECT_USER_MAPPING:          "USER MAPPING",
	pg_query.ObjectType_OBJECT_TYPE_UNDEFINED:        "OBJECT",
}

func init() {
	for v := range pg_query.ObjectType_name {
		t := pg_query.ObjectType(v)
		if _, ok := objectNames[t]; !ok {
			objectNames[t] = strings.ReplaceAll(strings.TrimPrefix(t.String(), "OBJECT_"), "_", " ")
		}
	}
}

func objectName(t pg_query.ObjectType) string {
	if s, ok := objectNames[t]; ok {
		return s
	}
	return "OBJECT"
}
