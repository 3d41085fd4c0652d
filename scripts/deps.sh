#!/usr/bin/env bash
# Installs what weir's tests, demo and benchmarks need on a Debian 12 machine:
# the PostgreSQL server (+contrib, client tools incl. psql and pgbench),
# pgbouncer and the Azure CLI (az) from Debian; Azurite (the Azure Storage
# emulator), the TypeScript MCP SDK and the Azure Storage JS SDK from npm into
# tools/node/node_modules (versions locked in tools/node/package-lock.json).
# Idempotent: installs only what is missing, runs `apt-get update`
# only when something must be installed, and returns at once when everything
# is present. Safe without a terminal (CI).
set -euo pipefail

want=(postgresql postgresql-contrib postgresql-client pgbouncer azure-cli)

# npm tools: installed when node_modules is missing or older than the lock.
npm_tools() {
	local dir=tools/node
	if [[ -d $dir/node_modules && $dir/node_modules/.package-lock.json -nt $dir/package-lock.json ]]; then
		echo "deps: npm tools present ($dir)"
		return 0
	fi
	if ! command -v npm >/dev/null; then
		echo "deps: npm is missing; install Node.js (Debian: apt-get install nodejs npm)" >&2
		return 1
	fi
	local t0=$SECONDS
	echo "deps: npm ci in $dir"
	if ! (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error </dev/null); then
		echo "deps: FAILED: npm ci in $dir" >&2
		return 1
	fi
	touch "$dir/node_modules/.package-lock.json"
	echo "deps: npm tools installed in $((SECONDS - t0))s"
}
cd "$(dirname "$0")/.."
npm_tools

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
