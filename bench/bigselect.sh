#!/usr/bin/env bash
# A large SELECT through weir with masking on, against the same result read
# from PostgreSQL directly (issue 3): throughput ratio and weir's peak RSS.
#
#   bench/bigselect.sh                    # 1 GiB result
#   SIZE_MB=256 bench/bigselect.sh        # smaller
#   PGBENCH=1 bench/bigselect.sh          # also pgbench -S with masking columns configured
#   RECORD=0 bench/bigselect.sh           # print, do not append to bench/RESULTS.md
#   KEEP=1 bench/bigselect.sh             # keep the work directory (logs)
#   DETECTORS=none bench/bigselect.sh     # column masking only, no content detectors
#
# The table big(id, email, note, amount, created_at) is filled until its
# text result is about SIZE_MB MiB. weir masks big.email by column lineage
# and runs every detector over every other value. Each result is read
# three ways, each fully, output discarded:
#   select   psql -c 'SELECT * FROM big'            (one result, buffered by psql)
#   cursor   psql with FETCH_COUNT=50000            (DECLARE/FETCH through weir)
#   copy     psql -c '\copy (SELECT * FROM big) TO STDOUT' (COPY data)
# weir's peak RSS is VmHWM of the weir process after all runs. All
# processes share this machine's cores and talk over loopback; everything
# started here is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

SIZE_MB=${SIZE_MB:-1024}
RECORD=${RECORD:-1}
PG_PORT=${PG_PORT:-56442}
WEIR_PORT=${WEIR_PORT:-56444}
DETECTORS=${DETECTORS:-all}
CMDLINE="SIZE_MB=$SIZE_MB${PGBENCH:+ PGBENCH=$PGBENCH} DETECTORS=$DETECTORS bench/bigselect.sh"

NAME=bigselect
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[[ -n $BIN && -x $BIN/initdb ]] || die "PostgreSQL server binaries not found (scripts/deps.sh)"
for p in "$PG_PORT" "$WEIR_PORT"; do
	port_in_use "$p" && die "port $p is already in use (set PG_PORT/WEIR_PORT)"
done

WORK=$(mktemp -d /tmp/weir-bigselect.XXXXXX)
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
	if [[ -f $PGDATA/postmaster.pid ]]; then
		as_pg "$BIN/pg_ctl" -D "$PGDATA" -m immediate -w -t 30 stop >/dev/null 2>&1
	fi
	if [[ ${KEEP:-} == 1 ]]; then say "kept $WORK"; else rm -rf "$WORK"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PW=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')

say "PostgreSQL on 127.0.0.1:$PG_PORT"
is_root && chown postgres:postgres "$WORK"
as_pg "$BIN/initdb" -D "$PGDATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
	--encoding=UTF8 --no-locale --no-sync >"$WORK/initdb.log" 2>&1 || die "initdb failed"
as_pg tee -a "$PGDATA/postgresql.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$WORK'
shared_buffers = 512MB
fsync = off
synchronous_commit = off
full_page_writes = off
max_wal_size = 8GB
password_encryption = 'scram-sha-256'
EOF
as_pg "$BIN/pg_ctl" -D "$PGDATA" -l "$WORK/postgresql.log" -w -t 60 start >/dev/null || die "PostgreSQL did not start"

# One row is about 100 bytes of text result.
ROWS=$((SIZE_MB * 1024 * 1024 / 100))
say "filling big with $ROWS rows"
psql -X -q -v ON_ERROR_STOP=1 -h "$WORK" -p "$PG_PORT" -U postgres -d postgres <<EOF
CREATE ROLE bench LOGIN PASSWORD '$PW';
CREATE DATABASE bench OWNER bench;
\c bench
SET ROLE bench;
CREATE TABLE big (id bigint, email text, note text, amount int, created_at timestamptz);
INSERT INTO big SELECT g, 'user' || g || '@example.com', 'order ' || md5(g::text), g % 100000, '2026-01-01'::timestamptz + g * interval '1 second'
  FROM generate_series(1, $ROWS) g;
VACUUM ANALYZE big;
EOF
if [[ ${PGBENCH:-} == 1 ]]; then
	PGPASSWORD=$PW PGSSLMODE=disable pgbench -h 127.0.0.1 -p "$PG_PORT" -U bench -i -s 10 -q bench >"$WORK/pgbench-init.log" 2>&1 || die "pgbench -i failed"
fi

say "building bin/weir"
mkdir -p bin
go build -o bin/weir ./cmd/weir
WEIR=$ROOT/bin/weir
cat >"$WORK/weir.yaml" <<EOF
data_dir: $WORK/weir-data
listen:
  postgres: 127.0.0.1:$WEIR_PORT
tls:
  allow_plaintext_loopback: true
targets:
  - name: bench
    kind: postgres
    address: 127.0.0.1:$PG_PORT
    database: bench
    username: bench
    password_env: BENCH_PG_PASSWORD
    sslmode: disable
agents:
  - name: bench
    targets: [bench]
    max_ttl: 8h
policy:
  rules:
    - name: reads
      when: 'command.kind in ["read", "transaction"] || (command.kind == "session" && !("setting_change" in command.risks))'
      action: allow
  masking:
    columns: [big.email, pgbench_accounts.filler]
    format: partial
EOF
if [[ $DETECTORS == none ]]; then
	echo "    detectors: []" >>"$WORK/weir.yaml"
fi
BENCH_PG_PASSWORD=$PW setsid "$WEIR" serve --config "$WORK/weir.yaml" </dev/null >"$WORK/weir.log" 2>&1 &
WEIR_PID=$!
for i in $(seq 1 150); do
	kill -0 "$WEIR_PID" 2>/dev/null || die "weir exited: $(tail -n 3 "$WORK/weir.log")"
	port_in_use "$WEIR_PORT" && break
	((i == 150)) && die "weir did not listen"
	sleep 0.2
done
TOKEN=$(BENCH_PG_PASSWORD=$PW "$WEIR" token issue --config "$WORK/weir.yaml" --agent bench --ttl 2h | tr -d '[:space:]')

export PGUSER=bench PGDATABASE=bench PGHOST=127.0.0.1 PGSSLMODE=disable PGCONNECT_TIMEOUT=10
# Check masking is on before measuring anything.
sample=$(PGPASSWORD=$TOKEN psql -X -At -p "$WEIR_PORT" -c "SELECT email FROM big WHERE id = 7") || die "query through weir failed"
[[ $sample == *"@example.com" || $sample == "" ]] && die "email not masked through weir: $sample"
say "masked sample: $sample"

# measure NAME PORT PASSWORD -> "seconds bytes"
measure() {
	local how=$1 port=$2 pw=$3 start end bytes
	start=$(date +%s.%N)
	case $how in
	select) bytes=$(PGPASSWORD=$pw psql -X -At -p "$port" -c "SELECT * FROM big" | wc -c) ;;
	cursor) bytes=$(PGPASSWORD=$pw psql -X -At -v FETCH_COUNT=50000 -p "$port" -c "SELECT * FROM big" | wc -c) ;;
	copy) bytes=$(PGPASSWORD=$pw psql -X -At -p "$port" -c '\copy (SELECT * FROM big) TO STDOUT' | wc -c) ;;
	esac
	end=$(date +%s.%N)
	awk -v s="$start" -v e="$end" -v b="$bytes" 'BEGIN{printf "%.2f %d\n", e-s, b}'
}

rows=()
for how in select cursor copy; do
	read -r dt db < <(measure "$how" "$PG_PORT" "$PW")
	read -r wt wb < <(measure "$how" "$WEIR_PORT" "$TOKEN")
	say "  $how: direct ${dt}s ($db bytes), weir ${wt}s ($wb bytes)"
	rows+=("| $how | $(awk -v b="$db" 'BEGIN{printf "%.0f", b/1048576}') | $dt | $wt | $(awk -v b="$db" -v t="$dt" 'BEGIN{printf "%.0f", b/1048576/t}') | $(awk -v b="$wb" -v t="$wt" 'BEGIN{printf "%.0f", b/1048576/t}') | $(awk -v a="$dt" -v b="$wt" 'BEGIN{printf "%.2f", a/b}') |")
done
RSS=$(awk '/^VmHWM/{printf "%.0f", $2/1024}' "/proc/$WEIR_PID/status")
say "weir peak RSS (VmHWM): $RSS MiB"

pgb=""
if [[ ${PGBENCH:-} == 1 ]]; then
	for mode in simple prepared; do
		d=$(PGPASSWORD=$PW pgbench -p "$PG_PORT" -n -S -M $mode -c 8 -j 2 -T 10 2>/dev/null | awk '/^tps = /{printf "%.0f", $3}')
		w=$(PGPASSWORD=$TOKEN pgbench -p "$WEIR_PORT" -n -S -M $mode -c 8 -j 2 -T 10 2>/dev/null | awk '/^tps = /{printf "%.0f", $3}')
		say "  pgbench -M $mode -c 8: direct $d tps, weir (masking columns configured) $w tps"
		pgb+="| pgbench -S -M $mode -c 8 -j 2 -T 10 | $d | $w | $(awk -v a="$w" -v b="$d" 'BEGIN{printf "%.2f", a/b}') |"$'\n'
	done
	RSS=$(awk '/^VmHWM/{printf "%.0f", $2/1024}' "/proc/$WEIR_PID/status")
fi

commit=$(git rev-parse --short HEAD 2>/dev/null || echo "no commit")
if [[ -n $(git status --porcelain -- internal cmd 2>/dev/null | head -n 1) ]]; then commit="$commit (+ uncommitted changes)"; fi
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
report=$(
	cat <<EOF
## $(date -u '+%Y-%m-%d %H:%M UTC') — large SELECT with masking (issue 3), commit $commit

- command: \`$CMDLINE\`
- machine: $(nproc) cores ($cpu); $("$BIN/postgres" --version), fsync=off; client psql, all over 127.0.0.1, plaintext
- weir: \`policy.masking.columns: [big.email]\` (lineage; partial format); detectors: $DETECTORS (all: every detector over every other value); $ROWS rows of (id, email, note, amount, created_at)
- **weir peak RSS (VmHWM) over all runs: $RSS MiB** (target < 100 MiB)

| read | MiB of text | direct s | weir s | direct MiB/s | weir MiB/s | weir/direct throughput |
|---|---|---|---|---|---|---|
$(printf '%s\n' "${rows[@]}")
EOF
)
if [[ -n $pgb ]]; then
	report+=$'\n\n'"| pgbench (masking columns configured: pgbench_accounts.filler) | direct tps | weir tps | weir/direct |"$'\n'"|---|---|---|---|"$'\n'"${pgb%$'\n'}"
fi
echo
echo "$report"
if [[ $RECORD == 1 ]]; then
	printf '\n%s\n' "$report" >>bench/RESULTS.md
	say "appended to bench/RESULTS.md"
fi
