#!/usr/bin/env bash
# THE test command: installs what the tests need (scripts/deps.sh), then runs
# `go vet ./...` and `go test -count=1 ./...`. Exits non-zero on any failure.
#
#   RACE=0 scripts/test.sh          # without the race detector (it is on by default)
#   GOTESTFLAGS="-run Foo -v" scripts/test.sh
#   SKIP_DEPS=1 scripts/test.sh     # don't run scripts/deps.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	export PATH=$PATH:/usr/local/go/bin
fi

step() {
	local name=$1
	shift
	local t0=$SECONDS
	echo "== $name"
	if "$@"; then
		echo "== $name: ok ($((SECONDS - t0))s)"
	else
		local rc=$?
		echo "== $name: FAILED (exit $rc, $((SECONDS - t0))s)" >&2
		exit "$rc"
	fi
}

if [[ ${SKIP_DEPS:-} != 1 ]]; then
	step deps scripts/deps.sh
fi

flags=(-count=1)
if [[ ${RACE:-1} == 1 ]]; then
	flags+=(-race)
fi
# shellcheck disable=SC2206
flags+=(${GOTESTFLAGS:-})

step "go vet" go vet ./...
step "go test ${flags[*]}" go test "${flags[@]}" ./...
