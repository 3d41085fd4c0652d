// Package command is the protocol-neutral description of what one request does.
//
// Adapters (PostgreSQL, Blob, ARM, MCP…) turn their wire into Commands; the
// gateway decides, audits and masks on Commands only. A Command never carries
// a decision: it is a fact about the request, computed from the protocol's own
// grammar (for SQL, the PostgreSQL parse tree), so a policy rule means the same
// thing whichever entry path the request took.
package command

// Kind is the coarse class of a command, the first thing most rules test.
type Kind string

const (
	KindRead        Kind = "read"        // returns data, changes nothing
	KindWrite       Kind = "write"       // changes rows or objects' content
	KindDDL         Kind = "ddl"         // changes schema
	KindAdmin       Kind = "admin"       // roles, grants, server settings, maintenance
	KindTransaction Kind = "transaction" // BEGIN, COMMIT, SAVEPOINT…
	KindSession     Kind = "session"     // SET, RESET, LISTEN, PREPARE/DEALLOCATE bookkeeping…
)

// Risk names one property that policy usually wants to refuse or review on
// its own, whatever the command's kind.
type Risk string

const (
	RiskDynamicSQL      Risk = "dynamic_sql"      // DO, EXECUTE of a string, opaque bodies
	RiskFileAccess      Risk = "file_access"      // pg_read_file, lo_export, COPY to/from a server file
	RiskNetworkAccess   Risk = "network_access"   // dblink, postgres_fdw, azure_storage…
	RiskProgramExec     Risk = "program_exec"     // COPY … PROGRAM
	RiskRoleChange      Risk = "role_change"      // SET ROLE, SET SESSION AUTHORIZATION
	RiskSearchPath      Risk = "search_path"      // search_path changes
	RiskReadOnlyEscape  Risk = "read_only_escape" // SET TRANSACTION READ WRITE, default_transaction_read_only
	RiskWritableCTE     Risk = "writable_cte"     // WITH d AS (DELETE … RETURNING) SELECT …
	RiskSelectInto      Risk = "select_into"      // SELECT … INTO new_table
	RiskSettingChange   Risk = "setting_change"   // SET / set_config of any server setting
	RiskServerSignal    Risk = "server_signal"    // pg_terminate_backend, pg_cancel_backend, pg_reload_conf
	RiskUnknownFunction Risk = "unknown_function" // a function outside the known side-effect-free catalog
	RiskCopy            Risk = "copy"             // COPY in either direction (bulk data)
	RiskLock            Risk = "lock"             // explicit LOCK, SELECT … FOR UPDATE
	RiskNotify          Risk = "notify"           // NOTIFY / pg_notify: data leaves through a side channel
	// RiskMaskedLookup: an equality lookup on a masked column, admitted by
	// policy.masking.allow_equality (other uses of masked columns in
	// WHERE/JOIN/ORDER BY… are refused before policy); a rule can review it.
	RiskMaskedLookup Risk = "masked_lookup"
)

// Command is one statement or one request, as the gateway sees it.
type Command struct {
	// Protocol names the adapter that produced the command ("postgres",
	// "blob", "arm", "keyvault", "mcp").
	Protocol string
	// Verb is the statement's own name in upper case: "SELECT", "DELETE",
	// "CREATE TABLE", "COPY FROM", "EXECUTE".
	Verb string
	Kind Kind
	// Text is the statement as the client sent it (one statement, not the
	// whole message).
	Text string
	// Fingerprint identifies the statement's shape with constants removed,
	// so that "the same query with other values" can be recognised.
	Fingerprint string
	// Reads and Writes are the relations the statement reads and changes,
	// schema-qualified when the client qualified them ("public.orders"),
	// lower-cased unless quoted, as PostgreSQL resolves identifiers.
	Reads  []string
	Writes []string
	// Functions are the functions called, schema-qualified when qualified
	// in the text ("pg_catalog.pg_read_file"), lower-cased unless quoted, as
	// PostgreSQL resolves identifiers ("LOWER"(x) is not lower(x)).
	Functions []string
	// Risks are the flags raised by the statement, without duplicates.
	Risks []Risk
	// Prepared, for SQL EXECUTE, is the name of the prepared statement run;
	// the adapter resolves it to the stored body's commands (EXECUTE leaves
	// Kind empty for that; EXPLAIN ANALYZE EXECUTE and CREATE TABLE AS
	// EXECUTE are classified as opaque dynamic_sql instead). For PREPARE it is
	// the name defined (the command carries the body's classification); for
	// DEALLOCATE the name released, "*" for all (DEALLOCATE ALL, DISCARD ALL).
	Prepared string

	// HTTP adapters (Blob, ARM, Key Vault, Functions) describe a request
	// with the fields below; SQL commands leave them empty. Reads and
	// Writes then hold the resources read and changed, in the adapter's
	// canonical form (Blob: "container/blob/name"; ARM: the lower-cased
	// resource id), so one rule shape fits every protocol.

	// Method is the effective HTTP method (after any override was refused).
	Method string
	// Resource is the canonical resource the request addresses.
	Resource string
	// Operation is the protocol's own name for what the request does
	// ("GetBlob", "PutBlob", "microsoft.storage/storageaccounts/listkeys/action").
	Operation string
	// Attrs are protocol-specific facts a rule may test ("container",
	// "blob", "resource_group", "provider", "vault"…); nil when none.
	Attrs map[string]string
}

// HasRisk reports whether the command carries risk r.
func (c *Command) HasRisk(r Risk) bool {
	for _, have := range c.Risks {
		if have == r {
			return true
		}
	}
	return false
}

// Changes reports whether the command can change anything stored: data,
// schema, roles or settings persisted beyond the session.
func (c *Command) Changes() bool {
	switch c.Kind {
	case KindWrite, KindDDL, KindAdmin:
		return true
	}
	return len(c.Writes) > 0 || c.HasRisk(RiskWritableCTE) || c.HasRisk(RiskSelectInto)
}
