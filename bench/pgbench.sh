#!/usr/bin/env bash
# Read-only pgbench through three paths to the same throwaway PostgreSQL:
#   (a) PostgreSQL directly, (b) pgbouncer (pool_mode=session), (c) weir.
#
#   bench/pgbench.sh                      # 15 s per run
#   DURATION=5 bench/pgbench.sh           # quicker
#   WEIR_BIN=/path/to/weir bench/pgbench.sh   # use this binary instead of building ./cmd/weir
#   KEEP=1 bench/pgbench.sh               # keep the work directory (logs) afterwards
#   MODES=prepared CLIENTS=8 PATHS=weir RECORD=0 bench/pgbench.sh   # one cell, not recorded (profiling)
#   WEIR_CPUPROFILE=/tmp/weir.prof ...    # weir writes a CPU profile when it stops
#
# For each of -M simple / -M prepared and -c 1 / -c 8 (-j = min(c, 2)) it runs
# `pgbench -n -S -T $DURATION` against each path, prints a markdown table and
# appends it, with the machine, commit and command, to bench/RESULTS.md.
# One extra row runs weir with TLS (PGSSLMODE=require). Everything (servers,
# clients) shares this machine's cores and talks over loopback. All processes
# started here are stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

DURATION=${DURATION:-15}
MODES=${MODES:-simple prepared}
CLIENTS=${CLIENTS:-1 8}
PATHS=${PATHS:-direct pgbouncer weir}
RECORD=${RECORD:-1}
SCALE=${SCALE:-10}
PG_PORT=${PG_PORT:-56432}
PGB_PORT=${PGB_PORT:-56433}
WEIR_PORT=${WEIR_PORT:-56434}
CMDLINE="DURATION=$DURATION SCALE=$SCALE bench/pgbench.sh${*:+ $*}"

NAME=bench
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

if [[ ${SKIP_DEPS:-} != 1 ]]; then
	scripts/deps.sh >&2
fi

BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[[ -n $BIN && -x $BIN/initdb ]] || die "PostgreSQL server binaries not found (scripts/deps.sh)"
PGBENCH=$BIN/pgbench
[[ -x $PGBENCH ]] || PGBENCH=$(command -v pgbench) || die "pgbench not found"
PGBOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
[[ -x $PGBOUNCER ]] || die "pgbouncer not found (scripts/deps.sh)"
if is_root; then
	id postgres >/dev/null 2>&1 || die "running as root, but the OS user 'postgres' does not exist"
fi

for p in "$PG_PORT" "$PGB_PORT" "$WEIR_PORT"; do
	port_in_use "$p" && die "port $p is already in use; stop whatever listens there (or set PG_PORT/PGB_PORT/WEIR_PORT)"
done

WORK=$(mktemp -d /tmp/weir-bench.XXXXXX)
chmod 755 "$WORK"
PGDATA=$WORK/pg
WEIR_PID=
cleanup() {
	local rc=$?
	set +e
	if [[ -n $WEIR_PID ]] && kill -0 "$WEIR_PID" 2>/dev/null; then
		kill -TERM "$WEIR_PID"
		for _ in $(seq 1 50); do kill -0 "$WEIR_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$WEIR_PID" 2>/dev/null
	fi
	if [[ -s $WORK/pgbouncer.pid ]]; then
		local p
		p=$(cat "$WORK/pgbouncer.pid")
		kill -TERM "$p" 2>/dev/null
		for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null
	fi
	if [[ -f $PGDATA/postmaster.pid ]]; then
		as_pg "$BIN/pg_ctl" -D "$PGDATA" -m immediate -w -t 30 stop >/dev/null 2>&1
	fi
	if [[ ${KEEP:-} == 1 ]]; then
		say "kept $WORK"
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

BENCH_PW=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')

# ------------------------------------------------------------- PostgreSQL
say "PostgreSQL: initdb + start on 127.0.0.1:$PG_PORT ($("$BIN/postgres" --version))"
is_root && chown postgres:postgres "$WORK"
as_pg "$BIN/initdb" -D "$PGDATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
	--encoding=UTF8 --no-locale --no-sync >"$WORK/initdb.log" 2>&1 || {
	cat "$WORK/initdb.log" >&2
	die "initdb failed"
}
as_pg tee -a "$PGDATA/postgresql.conf" >/dev/null <<EOF
# --- bench/pgbench.sh ---
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$WORK'
max_connections = 100
shared_buffers = 512MB
fsync = off
synchronous_commit = off
full_page_writes = off
max_wal_size = 4GB
checkpoint_timeout = 30min
password_encryption = 'scram-sha-256'
EOF
as_pg "$BIN/pg_ctl" -D "$PGDATA" -l "$WORK/postgresql.log" -w -t 60 start >/dev/null || {
	tail -n 20 "$WORK/postgresql.log" >&2
	die "PostgreSQL did not start"
}
psql -X -q -v ON_ERROR_STOP=1 -h "$WORK" -p "$PG_PORT" -U postgres -d postgres <<EOF
SET log_statement = 'none';
CREATE ROLE bench LOGIN PASSWORD '$BENCH_PW';
CREATE DATABASE bench OWNER bench;
EOF
export PGPASSWORD=$BENCH_PW PGUSER=bench PGDATABASE=bench PGHOST=127.0.0.1 PGCONNECT_TIMEOUT=10
say "pgbench -i -s $SCALE"
PGSSLMODE=disable PGPORT=$PG_PORT "$PGBENCH" -i -s "$SCALE" -q >"$WORK/init.log" 2>&1 || {
	cat "$WORK/init.log" >&2
	die "pgbench -i failed"
}

# ------------------------------------------------------------- pgbouncer
say "pgbouncer: start on 127.0.0.1:$PGB_PORT (pool_mode=session)"
cat >"$WORK/pgbouncer.ini" <<EOF
[databases]
bench = host=127.0.0.1 port=$PG_PORT dbname=bench

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = md5
auth_file = $WORK/userlist.txt
pool_mode = session
max_client_conn = 200
default_pool_size = 20
logfile = $WORK/pgbouncer.log
pidfile = $WORK/pgbouncer.pid
ignore_startup_parameters = extra_float_digits
EOF
echo "\"bench\" \"$BENCH_PW\"" >"$WORK/userlist.txt"
chmod 600 "$WORK/userlist.txt"
is_root && chown postgres:postgres "$WORK/pgbouncer.ini" "$WORK/userlist.txt"
as_pg "$PGBOUNCER" -d "$WORK/pgbouncer.ini" >"$WORK/pgbouncer.out" 2>&1 || {
	cat "$WORK/pgbouncer.out" "$WORK/pgbouncer.log" >&2 2>/dev/null
	die "pgbouncer did not start"
}
for i in $(seq 1 50); do
	PGSSLMODE=disable psql -X -q -p "$PGB_PORT" -tAc "SELECT 1" >/dev/null 2>&1 && break
	((i == 50)) && {
		tail -n 20 "$WORK/pgbouncer.log" >&2
		die "pgbouncer does not answer"
	}
	sleep 0.1
done
PGB_VERSION=$("$PGBOUNCER" --version | head -n 1)

# ------------------------------------------------------------- weir
WEIR_SKIP=
WEIR=${WEIR_BIN:-}
if [[ -z $WEIR ]]; then
	if [[ ! -d cmd/weir ]]; then
		WEIR_SKIP="cmd/weir does not exist yet"
	else
		say "building bin/weir"
		mkdir -p bin
		if go build -o bin/weir ./cmd/weir 2>"$WORK/build.log"; then
			WEIR=$ROOT/bin/weir
		else
			WEIR_SKIP="go build ./cmd/weir failed: $(head -n 3 "$WORK/build.log" | tr '\n' ' ')"
		fi
	fi
fi
if [[ -z $WEIR_SKIP ]]; then
	cat >"$WORK/weir.yaml" <<EOF
data_dir: $WORK/weir-data
listen:
  postgres: 127.0.0.1:$WEIR_PORT
tls:
  cert_file: ""
  key_file: ""
  allow_plaintext_loopback: true
targets:
  - name: bench
    kind: postgres
    address: 127.0.0.1:$PG_PORT
    database: bench
    username: bench
    password_env: BENCH_PG_PASSWORD
    sslmode: disable
    labels: {env: bench}
agents:
  - name: bench
    targets: [bench]
    max_ttl: 8h
policy:
  rules:
    - name: reads
      when: 'command.kind in ["read", "transaction"] || (command.kind == "session" && !("setting_change" in command.risks))'
      action: allow
EOF
	say "weir: start on 127.0.0.1:$WEIR_PORT"
	BENCH_PG_PASSWORD=$BENCH_PW setsid "$WEIR" serve --config "$WORK/weir.yaml" </dev/null >"$WORK/weir.log" 2>&1 &
	WEIR_PID=$!
	for i in $(seq 1 150); do
		if ! kill -0 "$WEIR_PID" 2>/dev/null; then
			WEIR_SKIP="weir exited during startup: $(tail -n 3 "$WORK/weir.log" | tr '\n' ' ')"
			WEIR_PID=
			break
		fi
		port_in_use "$WEIR_PORT" && break
		((i == 150)) && WEIR_SKIP="weir did not listen on 127.0.0.1:$WEIR_PORT within 30s"
		sleep 0.2
	done
fi
if [[ -z $WEIR_SKIP ]]; then
	if WEIR_TOKEN=$(BENCH_PG_PASSWORD=$BENCH_PW "$WEIR" token issue --config "$WORK/weir.yaml" --agent bench --ttl 2h 2>"$WORK/token.err"); then
		WEIR_TOKEN=$(echo "$WEIR_TOKEN" | tr -d '[:space:]')
		if ! out=$(PGPASSWORD=$WEIR_TOKEN PGSSLMODE=disable psql -X -p "$WEIR_PORT" -tAc "SELECT count(*) FROM pgbench_branches" 2>&1); then
			WEIR_SKIP="a query through weir failed: $(echo "$out" | head -n 2 | tr '\n' ' ')"
		fi
	else
		WEIR_SKIP="weir token issue failed: $(head -n 2 "$WORK/token.err" | tr '\n' ' ')"
	fi
fi
if [[ -n $WEIR_SKIP ]]; then
	say "SKIPPING weir: $WEIR_SKIP"
fi

# ------------------------------------------------------------- runs
# run NAME PORT SSLMODE PASSWORD MODE CLIENTS -> "tps latency_ms" or "fail fail"
run() {
	local name=$1 port=$2 ssl=$3 pw=$4 mode=$5 c=$6
	local j=$((c < 2 ? c : 2))
	local log=$WORK/run-$name-$mode-c$c.log
	if PGPASSWORD=$pw PGSSLMODE=$ssl "$PGBENCH" -p "$port" -n -S -M "$mode" -c "$c" -j "$j" -T "$DURATION" >"$log" 2>&1; then
		local tps lat
		tps=$(awk '/^tps = /{printf "%.0f", $3; exit}' "$log")
		lat=$(awk '/^latency average = /{printf "%.3f", $4; exit}' "$log")
		say "  $name -M $mode -c $c: $tps tps, $lat ms"
		echo "${tps:-fail} ${lat:-fail}"
	else
		say "  $name -M $mode -c $c: FAILED: $(grep -v '^pgbench (' "$log" | head -n 3 | tr '\n' ' ')"
		echo "fail fail"
	fi
}
ratio() {
	if [[ $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ && $2 -gt 0 ]]; then
		awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'
	else
		echo "—"
	fi
}

say "warm-up (3 s, direct, not recorded)"
PGSSLMODE=disable "$PGBENCH" -p "$PG_PORT" -n -S -c 2 -j 2 -T 3 >/dev/null 2>&1 || true

rows=()
want() { [[ " $PATHS " == *" $1 "* ]]; }
for mode in $MODES; do
	for c in $CLIENTS; do
		d_tps=- d_lat=- b_tps=- b_lat=- w_tps=- w_lat=-
		if want direct; then read -r d_tps d_lat < <(run direct "$PG_PORT" disable "$BENCH_PW" "$mode" "$c"); fi
		if want pgbouncer; then read -r b_tps b_lat < <(run pgbouncer "$PGB_PORT" disable "$BENCH_PW" "$mode" "$c"); fi
		if ! want weir; then
			:
		elif [[ -z $WEIR_SKIP ]]; then
			read -r w_tps w_lat < <(run weir "$WEIR_PORT" disable "$WEIR_TOKEN" "$mode" "$c")
		else
			w_tps=skipped w_lat=—
		fi
		rows+=("| $mode | $c | $d_tps | $b_tps | $w_tps | $(ratio "$w_tps" "$b_tps") | $(ratio "$w_tps" "$d_tps") | $d_lat | $b_lat | $w_lat |")
	done
done
if [[ -z $WEIR_SKIP ]] && want weir && [[ $MODES == "simple prepared" ]]; then
	read -r t_tps t_lat < <(run weir-tls "$WEIR_PORT" require "$WEIR_TOKEN" simple 8)
	rows+=("| simple, weir over TLS (PGSSLMODE=require) | 8 | — | — | $t_tps | — | — | — | — | $t_lat |")
fi

table=$(
	echo "| mode | clients | direct tps | pgbouncer tps | weir tps | weir/pgbouncer | weir/direct | direct latency ms | pgbouncer latency ms | weir latency ms |"
	echo "|---|---|---|---|---|---|---|---|---|---|"
	printf '%s\n' "${rows[@]}"
)

commit=$(git rev-parse --short HEAD 2>/dev/null || echo "no commit yet")
if [[ -n $(git status --porcelain 2>/dev/null | head -n 1) ]]; then commit="$commit (+ uncommitted changes)"; fi
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
mem=$(free -g | awk '/^Mem:/{print $2 " GiB total, " $7 " GiB available"}')
if [[ -n $WEIR_SKIP ]]; then
	weir_note="weir: skipped ($WEIR_SKIP)"
else
	weir_note="weir: $WEIR (plaintext loopback, tls.allow_plaintext_loopback; one row over TLS)"
fi

report=$(
	cat <<EOF
## $(date -u '+%Y-%m-%d %H:%M UTC') — commit $commit

- command: \`$CMDLINE\`
- machine: $(nproc) cores ($cpu), memory $mem (\`free -g\`)
- $("$BIN/postgres" --version), fsync=off, shared_buffers=512MB; $PGB_VERSION, pool_mode=session, auth_type=md5; $weir_note
- workload: \`pgbench -n -S -M MODE -c C -j min(C,2) -T $DURATION\`, scale $SCALE, all processes on this machine over 127.0.0.1; tps excludes initial connection time

$table
EOF
)

echo
echo "$report"
if [[ $RECORD != 1 ]]; then
	say "RECORD=$RECORD: not appending to bench/RESULTS.md"
	exit 0
fi
if [[ ! -f bench/RESULTS.md ]]; then
	cat >bench/RESULTS.md <<'EOF'
# Benchmark results

Appended by `bench/pgbench.sh` (newest last). Read-only pgbench (`-S`) against
the same throwaway PostgreSQL directly, through pgbouncer (session pooling) and
through weir. Numbers from different machines or runs are not comparable with
each other; the ratios within one run are what matters.
EOF
fi
printf '\n%s\n' "$report" >>bench/RESULTS.md
say "appended to bench/RESULTS.md"
