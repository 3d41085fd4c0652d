package pgsql

import "strings"

// funcEffect is what weir knows about a built-in function: the risks a call
// raises and whether it changes stored data (nextval, lo_create…). A function
// in the catalog with a zero effect is side-effect free.
type funcEffect struct {
	risks riskSet
	write bool
}

// Names of functions are compared exactly as the parser folded them, so
// "LOWER"(x), which PostgreSQL resolves to a different (user) function than
// lower(x), is not mistaken for the built-in.

// safeFuncs lists built-in pg_catalog functions without side effects beyond
// returning a value. Being generous here only lowers review noise; being
// wrong lets a side effect through, so when in doubt a name stays out and is
// reported as RiskUnknownFunction.
var safeFuncs = []string{
	// aggregates and window functions
	"count", "sum", "avg", "min", "max", "array_agg", "string_agg", "bool_and",
	"bool_or", "every", "bit_and", "bit_or", "bit_xor", "json_agg", "jsonb_agg",
	"json_agg_strict", "jsonb_agg_strict", "json_object_agg", "jsonb_object_agg",
	"json_object_agg_strict", "jsonb_object_agg_strict", "json_object_agg_unique",
	"jsonb_object_agg_unique", "json_object_agg_unique_strict",
	"jsonb_object_agg_unique_strict", "xmlagg", "stddev", "stddev_pop",
	"stddev_samp", "variance", "var_pop", "var_samp", "corr", "covar_pop",
	"covar_samp", "regr_avgx", "regr_avgy", "regr_count", "regr_intercept",
	"regr_r2", "regr_slope", "regr_sxx", "regr_sxy", "regr_syy", "mode",
	"percentile_cont", "percentile_disc", "rank", "dense_rank", "percent_rank",
	"cume_dist", "row_number", "ntile", "lag", "lead", "first_value",
	"last_value", "nth_value", "any_value", "range_agg", "range_intersect_agg",
	"grouping",

	// strings
	"lower", "upper", "initcap", "length", "char_length", "character_length",
	"octet_length", "bit_length", "substr", "substring", "position", "strpos",
	"btrim", "ltrim", "rtrim", "trim", "lpad", "rpad", "replace", "translate",
	"repeat", "reverse", "left", "right", "split_part", "concat", "concat_ws",
	"format", "quote_ident", "quote_literal", "quote_nullable", "regexp_match",
	"regexp_matches", "regexp_replace", "regexp_split_to_array",
	"regexp_split_to_table", "regexp_count", "regexp_instr", "regexp_like",
	"regexp_substr", "ascii", "chr", "md5", "sha224", "sha256", "sha384",
	"sha512", "encode", "decode", "to_hex", "to_bin", "to_oct", "starts_with",
	"string_to_array", "string_to_table", "array_to_string", "overlay",
	"unistr", "normalize", "is_normalized", "to_ascii", "convert",
	"convert_from", "convert_to", "parse_ident", "crc32", "crc32c",
	"similar_to_escape", "similar_escape", "like_escape", "text", "casefold",
	"get_bit", "set_bit", "get_byte", "set_byte", "bit_count", "ascii",
	"pg_collation_for",

	// numbers
	"abs", "ceil", "ceiling", "floor", "round", "trunc", "sqrt", "cbrt",
	"power", "pow", "exp", "ln", "log", "log10", "mod", "sign", "pi",
	"degrees", "radians", "sin", "cos", "tan", "cot", "asin", "acos", "atan",
	"atan2", "sind", "cosd", "tand", "cotd", "asind", "acosd", "atand",
	"atan2d", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "random",
	"random_normal", "div", "gcd", "lcm", "factorial", "width_bucket",
	"scale", "min_scale", "trim_scale", "erf", "erfc", "greatest", "least",
	"to_char", "to_number", "to_date", "to_timestamp", "numeric", "int2",
	"int4", "int8", "float4", "float8", "bool", "int", "integer", "bigint",
	"smallint", "real",

	// date and time
	"now", "clock_timestamp", "statement_timestamp", "transaction_timestamp",
	"timeofday", "date_part", "date_trunc", "date_bin", "extract", "age",
	"make_date", "make_time", "make_timestamp", "make_timestamptz",
	"make_interval", "justify_days", "justify_hours", "justify_interval",
	"isfinite", "date_add", "date_subtract", "timezone", "overlaps", "date",
	"time", "timestamp", "timestamptz", "interval", "timetz",

	// conditional and comparison
	"coalesce", "nullif", "num_nulls", "num_nonnulls",

	// json and jsonb
	"to_json", "to_jsonb", "array_to_json", "row_to_json", "json_build_array",
	"json_build_object", "jsonb_build_array", "jsonb_build_object",
	"json_object", "jsonb_object", "json_array_length", "jsonb_array_length",
	"json_each", "json_each_text", "jsonb_each", "jsonb_each_text",
	"json_extract_path", "json_extract_path_text", "jsonb_extract_path",
	"jsonb_extract_path_text", "json_object_keys", "jsonb_object_keys",
	"json_populate_record", "json_populate_recordset", "jsonb_populate_record",
	"jsonb_populate_record_valid", "jsonb_populate_recordset",
	"json_to_record", "json_to_recordset", "jsonb_to_record",
	"jsonb_to_recordset", "json_array_elements", "json_array_elements_text",
	"jsonb_array_elements", "jsonb_array_elements_text", "json_typeof",
	"jsonb_typeof", "json_strip_nulls", "jsonb_strip_nulls", "jsonb_set",
	"jsonb_set_lax", "jsonb_insert", "jsonb_pretty", "jsonb_path_query",
	"jsonb_path_query_array", "jsonb_path_query_first", "jsonb_path_exists",
	"jsonb_path_match", "jsonb_path_query_tz", "jsonb_path_query_array_tz",
	"jsonb_path_query_first_tz", "jsonb_path_exists_tz",
	"jsonb_path_match_tz", "json", "jsonb",

	// arrays and ranges
	"array_length", "array_lower", "array_upper", "array_ndims", "array_dims",
	"cardinality", "array_append", "array_prepend", "array_cat",
	"array_position", "array_positions", "array_remove", "array_replace",
	"array_fill", "array_sample", "array_shuffle", "trim_array", "unnest",
	"generate_series", "generate_subscripts", "isempty", "lower_inc",
	"upper_inc", "lower_inf", "upper_inf", "range_merge", "multirange",

	// text search (ts_stat and ts_rewrite run SQL text: see knownFuncs)
	"to_tsvector", "to_tsquery", "plainto_tsquery", "phraseto_tsquery",
	"websearch_to_tsquery", "ts_rank", "ts_rank_cd", "ts_headline",
	"setweight", "strip", "numnode", "querytree", "tsvector_to_array",
	"array_to_tsvector", "ts_delete", "ts_filter", "get_current_ts_config",

	// xml values (the *_to_xml family runs SQL text: see knownFuncs)
	"xpath", "xpath_exists", "xml_is_well_formed", "xml_is_well_formed_document",
	"xml_is_well_formed_content", "xmlcomment", "xmltext",

	// network addresses, uuids, misc types
	"host", "hostmask", "masklen", "netmask", "network", "broadcast", "family",
	"abbrev", "set_masklen", "inet_same_family", "inet_merge",
	"gen_random_uuid", "uuidv4", "uuidv7", "uuid_extract_timestamp",
	"uuid_extract_version",

	// session and system information (read-only)
	"version", "current_database", "current_catalog", "current_schema",
	"current_schemas", "current_user", "current_role", "session_user",
	"system_user", "user", "current_setting", "pg_backend_pid",
	"inet_client_addr", "inet_client_port", "inet_server_addr",
	"inet_server_port", "pg_postmaster_start_time", "pg_conf_load_time",
	"pg_current_xact_id", "pg_current_xact_id_if_assigned", "txid_current",
	"txid_current_if_assigned", "pg_current_snapshot", "pg_typeof",
	"pg_column_size", "pg_column_compression", "pg_size_pretty",
	"pg_size_bytes", "pg_database_size", "pg_relation_size", "pg_table_size",
	"pg_indexes_size", "pg_total_relation_size", "pg_get_viewdef",
	"pg_get_functiondef", "pg_get_function_arguments",
	"pg_get_function_result", "pg_get_indexdef", "pg_get_constraintdef",
	"pg_get_triggerdef", "pg_get_ruledef", "pg_get_expr", "pg_get_userbyid",
	"pg_get_keywords", "pg_get_serial_sequence", "has_table_privilege",
	"has_column_privilege", "has_any_column_privilege",
	"has_database_privilege", "has_function_privilege",
	"has_schema_privilege", "has_sequence_privilege",
	"has_tablespace_privilege", "has_type_privilege", "has_language_privilege",
	"has_parameter_privilege", "has_server_privilege",
	"has_foreign_data_wrapper_privilege", "pg_has_role", "pg_table_is_visible",
	"pg_type_is_visible", "pg_function_is_visible", "format_type",
	"obj_description", "col_description", "shobj_description",
	"pg_is_in_recovery", "to_regclass", "to_regtype", "to_regproc",
	"to_regprocedure", "to_regoper", "to_regoperator", "to_regnamespace",
	"to_regrole", "to_regcollation", "to_regtypemod", "pg_encoding_to_char",
	"pg_char_to_encoding", "pg_client_encoding", "pg_jit_available",
	"pg_listening_channels", "pg_notification_queue_usage",
	"pg_is_other_temp_schema", "pg_my_temp_schema", "pg_trigger_depth",
	"pg_blocking_pids", "pg_input_is_valid", "pg_input_error_info",
	"pg_sleep", "pg_sleep_for", "pg_sleep_until", "currval", "lastval",
	"row", "pg_get_partkeydef", "pg_tablespace_location", "pg_relation_filenode",
	"pg_relation_filepath", "pg_visible_in_snapshot", "pg_snapshot_xmin",
	"pg_snapshot_xmax", "pg_xact_status", "pg_get_statisticsobjdef",
	"pg_options_to_table", "pg_index_column_has_property",
	"pg_index_has_property", "pg_indexam_has_property", "pg_describe_object",
	"pg_identify_object", "pg_get_object_address", "pg_safe_snapshot_blocking_pids",
	"pg_stat_clear_snapshot",
}

// knownFuncs is the catalog: safe functions with a zero effect, plus the
// built-ins known to have side effects, with the risks they raise.
var knownFuncs = buildKnownFuncs()

func buildKnownFuncs() map[string]funcEffect {
	m := make(map[string]funcEffect, len(safeFuncs)+64)
	for _, f := range safeFuncs {
		m[f] = funcEffect{}
	}
	add := func(e funcEffect, names ...string) {
		for _, n := range names {
			m[n] = e
		}
	}
	file := funcEffect{risks: rFileAccess}
	fileWrite := funcEffect{risks: rFileAccess, write: true}
	add(file, "pg_read_file", "pg_read_binary_file", "pg_stat_file",
		"pg_current_logfile", "pg_logdir_ls", "loread", "lo_get", "lo_open",
		"lo_close", "lo_lseek", "lo_lseek64", "lo_tell", "lo_tell64")
	add(fileWrite, "lo_import", "lo_export", "lo_create", "lo_creat",
		"lo_unlink", "lo_put", "lo_from_bytea", "lo_truncate", "lo_truncate64",
		"lowrite", "pg_file_write", "pg_file_rename", "pg_file_unlink",
		"pg_file_sync")
	add(funcEffect{risks: rServerSignal}, "pg_terminate_backend",
		"pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile",
		"pg_rotate_logfile_old", "pg_promote", "pg_switch_wal",
		"pg_create_restore_point", "pg_log_backend_memory_contexts",
		"pg_backup_start", "pg_backup_stop", "pg_wal_replay_pause",
		"pg_wal_replay_resume", "pg_create_physical_replication_slot",
		"pg_create_logical_replication_slot", "pg_drop_replication_slot",
		"pg_replication_slot_advance", "pg_copy_physical_replication_slot",
		"pg_copy_logical_replication_slot", "pg_logical_emit_message",
		"pg_sync_replication_slots", "pg_stat_reset", "pg_stat_reset_shared",
		"pg_stat_reset_single_table_counters",
		"pg_stat_reset_single_function_counters", "pg_stat_reset_slru",
		"pg_stat_reset_replication_slot", "pg_stat_reset_subscription_stats",
		"pg_stat_reset_backend_stats")
	add(funcEffect{risks: rFileAccess}, "pg_ls_dir", "pg_ls_logdir",
		"pg_ls_waldir", "pg_ls_tmpdir", "pg_ls_archive_statusdir",
		"pg_ls_replslotdir", "pg_ls_logicalmapdir", "pg_ls_logicalsnapdir",
		"pg_ls_summariesdir")
	add(funcEffect{risks: rLock}, "pg_advisory_lock", "pg_advisory_lock_shared",
		"pg_advisory_unlock", "pg_advisory_unlock_shared",
		"pg_advisory_unlock_all", "pg_advisory_xact_lock",
		"pg_advisory_xact_lock_shared", "pg_try_advisory_lock",
		"pg_try_advisory_lock_shared", "pg_try_advisory_xact_lock",
		"pg_try_advisory_xact_lock_shared")
	add(funcEffect{risks: rNotify}, "pg_notify")
	add(funcEffect{risks: rDynamicSQL}, "query_to_xml", "query_to_xmlschema",
		"query_to_xml_and_xmlschema", "cursor_to_xml", "cursor_to_xmlschema",
		"table_to_xml", "table_to_xmlschema", "table_to_xml_and_xmlschema",
		"schema_to_xml", "schema_to_xmlschema", "schema_to_xml_and_xmlschema",
		"database_to_xml", "database_to_xmlschema",
		"database_to_xml_and_xmlschema", "ts_stat", "ts_rewrite")
	add(funcEffect{write: true}, "nextval", "setval")
	add(funcEffect{risks: rSettingChange}, "set_config") // refined by the first argument
	add(funcEffect{risks: rNetworkAccess}, "blob_get", "blob_put", "blob_list",
		"account_add", "account_remove", "account_list", "account_user_add",
		"account_user_remove")
	return m
}

// funcPrefixes name families of dangerous functions (extensions, future
// built-ins) by prefix. They apply only after an exact lookup in knownFuncs
// failed, and since anyone may create a function called pg_ls_anything, a
// prefix match adds its risks to RiskUnknownFunction rather than replacing it.
var funcPrefixes = [...]struct {
	prefix string
	effect funcEffect
}{
	{"pg_ls_", funcEffect{risks: rFileAccess}},
	{"pg_file_", funcEffect{risks: rFileAccess, write: true}},
	{"lo_", funcEffect{risks: rFileAccess, write: true}},
	{"dblink", funcEffect{risks: rNetworkAccess}},
	{"postgres_fdw", funcEffect{risks: rNetworkAccess}},
	{"pg_read_", funcEffect{risks: rFileAccess}},
	{"pg_advisory", funcEffect{risks: rLock}},
	{"pg_try_advisory", funcEffect{risks: rLock}},
	{"pg_stat_reset", funcEffect{risks: rServerSignal}},
	{"pg_replication_origin_", funcEffect{risks: rServerSignal}},
	{"pg_logical_slot_", funcEffect{risks: rServerSignal}},
	{"query_to_xml", funcEffect{risks: rDynamicSQL}},
	{"cursor_to_xml", funcEffect{risks: rDynamicSQL}},
	{"table_to_xml", funcEffect{risks: rDynamicSQL}},
	{"schema_to_xml", funcEffect{risks: rDynamicSQL}},
	{"database_to_xml", funcEffect{risks: rDynamicSQL}},
}

// networkSchemas are extension schemas whose every function reaches
// outside the database.
var networkSchemas = [...]string{"dblink", "postgres_fdw", "azure_storage"}

// lookupFunc classifies a call of function name, qualified with schema when
// qualified is set (schema "" then never matches pg_catalog). A function weir
// does not know raises RiskUnknownFunction, plus what its schema or name
// family implies.
func lookupFunc(schema, name string, qualified bool) funcEffect {
	if qualified && schema != "pg_catalog" {
		for _, s := range networkSchemas {
			if schema == s {
				return funcEffect{risks: rNetworkAccess | rUnknownFunction}
			}
		}
		return funcEffect{risks: rUnknownFunction}
	}
	if e, ok := knownFuncs[name]; ok {
		return e
	}
	for _, p := range funcPrefixes {
		if strings.HasPrefix(name, p.prefix) {
			e := p.effect
			e.risks |= rUnknownFunction
			return e
		}
	}
	return funcEffect{risks: rUnknownFunction}
}

// isBuiltinName reports whether a function or aggregate of that name exists
// among the built-ins weir knows: defining one elsewhere shadows it for
// callers whose search_path puts that schema first (CVE-2018-1058).
func isBuiltinName(name string) bool {
	_, ok := knownFuncs[name]
	return ok
}

// builtinOperators are the operator names of the core types. An operator
// outside this set, or qualified with a schema other than pg_catalog, calls
// a user function.
var builtinOperators = map[string]bool{}

func init() {
	for _, op := range []string{
		"+", "-", "*", "/", "%", "^", "|/", "||/", "!", "!!", "@", "&", "|",
		"#", "~", "<<", ">>", "=", "<>", "!=", "<", ">", "<=", ">=", "||", "~~",
		"~~*", "!~~", "!~~*", "~*", "!~", "!~*", "@>", "<@", "&&", "->", "->>",
		"#>", "#>>", "?", "?|", "?&", "@?", "@@", "@@@", "#-", "<->", "<<|",
		"|>>", "&<", "&>", "&<|", "|&>", "<<=", ">>=", "-|-", "?#", "?-", "?-|",
		"?||", "~=", "<^", ">^", "##", "^@", "<#>", "<=>", "@-@", "#<", "#>=",
		"#<=", "#<>", "#=", "#>",
	} {
		builtinOperators[op] = true
	}
}

// Settings whose change weir reports with a risk of their own. Setting
// names are case-insensitive in PostgreSQL.
func settingRisks(name string) riskSet {
	switch strings.ToLower(name) {
	case "role", "session_authorization":
		return rRoleChange
	case "search_path":
		return rSearchPath
	case "transaction_read_only", "default_transaction_read_only",
		"transaction", "session characteristics":
		return rReadOnlyEscape
	}
	return 0
}

// desyncRisks covers the settings that change how the server splits and
// reads the text of later messages: weir parses text as UTF-8 with
// standard_conforming_strings on, as PostgreSQL does by default. With
// another client_encoding (SJIS, GBK…, whose multi-byte characters may end
// in a backslash) or with backslash escapes in plain literals, a literal
// weir reads as one string can hide a statement boundary for the server
// (CVE-2006-2313/2314). That is text weir cannot classify reliably, hence
// RiskDynamicSQL. known is false when the new value is not a constant.
func desyncRisks(name, value string, known bool) riskSet {
	switch strings.ToLower(name) {
	case "client_encoding":
		if known && isUTF8Name(value) {
			return 0
		}
		return rDynamicSQL
	case "standard_conforming_strings":
		if known && isTrueSetting(value) {
			return 0
		}
		return rDynamicSQL
	}
	return 0
}

// desyncSetting reports whether desyncRisks reads the value of setting name.
func desyncSetting(name string) bool {
	switch strings.ToLower(name) {
	case "client_encoding", "standard_conforming_strings":
		return true
	}
	return false
}

// isUTF8Name matches encoding names as PostgreSQL compares them: case and
// punctuation ignored.
func isUTF8Name(s string) bool {
	var b [8]byte
	n := 0
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case 'A' <= ch && ch <= 'Z':
			ch += 'a' - 'A'
		case 'a' <= ch && ch <= 'z', '0' <= ch && ch <= '9':
		default:
			continue
		}
		if n == len(b) {
			return false
		}
		b[n] = ch
		n++
	}
	switch string(b[:n]) {
	case "utf8", "unicode":
		return true
	}
	return false
}

// isTrueSetting reports whether s is a boolean true as parse_bool reads it.
func isTrueSetting(s string) bool {
	s = strings.ToLower(strings.TrimSpace(s))
	switch {
	case s == "on", s == "1":
		return true
	case s != "" && strings.HasPrefix("true", s), s != "" && strings.HasPrefix("yes", s):
		return true
	}
	return false
}

// setReturning are the built-ins weir lets through that return a set (a
// test checks the list against pg_proc.proretset). The number of rows
// such a function returns depends on its arguments: over a masked value
// (generate_series(1, ascii(ssn)), regexp_matches(ssn, '^1')) the count
// of rows, or whether there are any, reads the value although every
// column it returns is masked.
var setReturning = map[string]bool{
	"unnest": true, "generate_series": true, "generate_subscripts": true,
	"regexp_matches": true, "regexp_split_to_table": true, "string_to_table": true,
	"json_each": true, "json_each_text": true, "jsonb_each": true, "jsonb_each_text": true,
	"json_object_keys": true, "jsonb_object_keys": true,
	"json_array_elements": true, "json_array_elements_text": true,
	"jsonb_array_elements": true, "jsonb_array_elements_text": true,
	"json_populate_recordset": true, "jsonb_populate_recordset": true,
	"json_to_recordset": true, "jsonb_to_recordset": true,
	"jsonb_path_query": true, "jsonb_path_query_tz": true,
	"pg_options_to_table": true, "pg_get_keywords": true, "aclexplode": true,
	"ts_stat": true, "ts_parse": true, "ts_debug": true, "ts_token_type": true,
	"pg_listening_channels": true,
}
