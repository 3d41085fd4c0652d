#!/usr/bin/env bash
# Installs what weir's tests, demo and benchmarks need on a Debian 12 machine:
# the PostgreSQL server (+contrib, client tools incl. psql and pgbench) and
# pgbouncer. Idempotent: installs only what is missing, runs `apt-get update`
# only when something must be installed, and returns at once when everything
# is present. Safe without a terminal (CI).
set -euo pipefail

want=(postgresql postgresql-contrib postgresql-client pgbouncer)

missing=()
for p in "${want[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if ((${#missing[@]} == 0)); then
	echo "deps: all present (${want[*]})"
	exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
	if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
		SUDO=(sudo -n)
	else
		echo "deps: missing ${missing[*]}; run this script as root (or with passwordless sudo) to install them" >&2
		exit 1
	fi
else
	SUDO=()
fi

echo "deps: installing ${missing[*]}"
start=$SECONDS
export DEBIAN_FRONTEND=noninteractive

# Don't let package scripts start the system PostgreSQL cluster (port 5432) or
# pgbouncer (port 6432, the port weir's demo uses): tests start their own.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [[ ! -e $policy ]]; then
	printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
	"${SUDO[@]}" chmod 755 "$policy"
	made_policy=1
fi
cleanup() { if ((made_policy)); then "${SUDO[@]}" rm -f "$policy"; fi; }
trap cleanup EXIT

log=$(mktemp /tmp/weir-deps.XXXXXX.log)
run() {
	if ! "${SUDO[@]}" "$@" </dev/null >>"$log" 2>&1; then
		echo "deps: FAILED: $*" >&2
		tail -n 40 "$log" >&2
		exit 1
	fi
}
run apt-get update -q
run apt-get install -y -q --no-install-recommends \
	-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
	"${missing[@]}"
rm -f "$log"

for p in "${missing[@]}"; do
	dpkg-query -W -f='deps: installed ${Package} ${Version}\n' "$p"
done
echo "deps: done in $((SECONDS - start))s"
