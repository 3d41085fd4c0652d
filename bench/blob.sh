#!/usr/bin/env bash
# 1 GB upload and download through weir's Blob front end vs directly
# against Azurite, with the same client (the az CLI, connection strings).
#
#   bench/blob.sh                    # 1 GiB, recorded in bench/RESULTS.md
#   SIZE_MB=256 RECORD=0 bench/blob.sh   # quicker, not recorded
#   ROUNDS=5 bench/blob.sh           # more rounds (default 3; medians reported)
#   CLIENTS=az bench/blob.sh         # only the az CLI (default: go az)
#   KEEP=1 bench/blob.sh             # keep the work directory (logs)
#
# It starts Azurite (tools/node) and `weir serve` (plaintext loopback) on
# fixed ports, issues a connection string for target `lake`, and times on
# each path: a Go azblob SDK client (UploadStream of 8 MiB blocks, 2 at a
# time, from a random generator; DownloadStream to nowhere), and
# `az storage blob upload|download` of a random file (sha256 checked).
# The data is binary, so weir passes it unmasked. weir's peak RSS is VmHWM from
# /proc/PID/status after the runs. Everything shares this machine's cores.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SIZE_MB=${SIZE_MB:-1024}
RECORD=${RECORD:-1}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-go az}
AZ_PORT=${AZ_PORT:-56510}
WEIR_PORT=${WEIR_PORT:-56511}
CMDLINE="SIZE_MB=$SIZE_MB ROUNDS=$ROUNDS CLIENTS=\"$CLIENTS\" bench/blob.sh"
NAME=bench
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

WORK=$(mktemp -d /tmp/weir-blob-bench.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [[ -z "${KEEP:-}" ]]; then rm -rf "$WORK"; else say "kept $WORK"; fi
}
trap cleanup EXIT

KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
DIRECT="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$KEY;BlobEndpoint=http://127.0.0.1:$AZ_PORT/devstoreaccount1"
export AZURE_CONFIG_DIR=$WORK/az AZURE_CORE_COLLECT_TELEMETRY=0 AZURE_CORE_ONLY_SHOW_ERRORS=1
export BENCH_BLOB_KEY=$KEY

go build -o "$WORK/weir" ./cmd/weir
# The Go client is built inside this module (it uses its azblob).
mkdir -p "$WORK/goclient.src"
cat >"$WORK/goclient.src/main.go" <<'GO'
package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
)

// goclient CONNECTION-STRING BLOB SIZE_MB: upload then download, print seconds.
func main() {
	c, err := azblob.NewClientFromConnectionString(os.Args[1], nil)
	if err != nil {
		panic(err)
	}
	mb, _ := strconv.Atoi(os.Args[3])
	size := int64(mb) << 20
	ctx := context.Background()
	s := time.Now()
	src := io.LimitReader(rand.NewChaCha8([32]byte{1}), size)
	if _, err := c.UploadStream(ctx, "big", os.Args[2], src, &azblob.UploadStreamOptions{BlockSize: 8 << 20, Concurrency: 2}); err != nil {
		panic(err)
	}
	up := time.Since(s).Seconds()
	s = time.Now()
	resp, err := c.DownloadStream(ctx, "big", os.Args[2], nil)
	if err != nil {
		panic(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n != size {
		panic(fmt.Sprint(n, err))
	}
	fmt.Printf("%.3f %.3f\n", up, time.Since(s).Seconds())
}
GO
go build -o "$WORK/goclient" "$WORK/goclient.src/main.go"
mkdir -p "$WORK/azurite"
tools/node/node_modules/.bin/azurite-blob --blobHost 127.0.0.1 --blobPort "$AZ_PORT" --location "$WORK/azurite" \
	--skipApiVersionCheck --loose --silent >"$WORK/azurite.log" 2>&1 &
PIDS+=($!)
cat >"$WORK/weir.yaml" <<YAML
data_dir: $WORK/data
listen:
  postgres: 127.0.0.1:0
  http: 127.0.0.1:$WEIR_PORT
tls:
  allow_plaintext_loopback: true
targets:
  - name: lake
    kind: azure-blob
    endpoint: http://127.0.0.1:$AZ_PORT/devstoreaccount1
    account: devstoreaccount1
    account_key_env: BENCH_BLOB_KEY
agents:
  - name: ci-bot
    targets: [lake]
    max_ttl: 2h
policy:
  rules:
    - name: bench
      when: 'command.protocol == "blob" && command.kind in ["read", "write"] && !("mints_credential" in command.risks)'
      action: allow
YAML
"$WORK/weir" serve --config "$WORK/weir.yaml" --log-level warn >"$WORK/weir.log" 2>&1 &
WEIR_PID=$!
PIDS+=($WEIR_PID)
for _ in $(seq 100); do
	(exec 3<>/dev/tcp/127.0.0.1/$WEIR_PORT) 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/$AZ_PORT) 2>/dev/null && break
	sleep 0.2
done
CS=$("$WORK/weir" token issue --config "$WORK/weir.yaml" --agent ci-bot --ttl 2h --format connection-string --target lake 2>/dev/null)

az storage container create -n big --connection-string "$DIRECT" >/dev/null
say "writing a ${SIZE_MB} MiB random file"
head -c "$((SIZE_MB << 20))" /dev/urandom >"$WORK/in.bin"
SUM=$(sha256sum <"$WORK/in.bin" | cut -d' ' -f1)

secs() { local s=$(date +%s.%N); "$@" >/dev/null 2>>"$WORK/az.log" || { cat "$WORK/az.log" >&2; exit 1; }; echo "$(date +%s.%N) - $s" | bc; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
declare -A T
# The machine is shared: paths alternate within each round and the median
# of the rounds is reported, so a burst of other load hits both paths.
for round in $(seq "$ROUNDS"); do
	for client in $CLIENTS; do
		for path in direct weir; do
			cs=$DIRECT; [[ $path == weir ]] && cs=$CS
			say "round $round, $client, $path"
			if [[ $client == go ]]; then
				read -r up down < <("$WORK/goclient" "$cs" "$path-go.bin" "$SIZE_MB")
				T[$client.$path.up]+=" $up"
				T[$client.$path.down]+=" $down"
				continue
			fi
			T[$client.$path.up]+=" $(secs az storage blob upload -c big -n "$path.bin" -f "$WORK/in.bin" --overwrite --connection-string "$cs")"
			rm -f "$WORK/out.bin"
			T[$client.$path.down]+=" $(secs az storage blob download -c big -n "$path.bin" -f "$WORK/out.bin" --connection-string "$cs")"
			got=$(sha256sum <"$WORK/out.bin" | cut -d' ' -f1)
			[[ $got == "$SUM" ]] || { say "ERROR: $path download differs from the upload"; exit 1; }
		done
	done
done
for k in "${!T[@]}"; do T[$k]=$(median ${T[$k]}); done
HWM=$(awk '/VmHWM/ {print $2}' /proc/$WEIR_PID/status)
CPU=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / hz}' /proc/$WEIR_PID/stat)
mbps() { printf '%.1f' "$(echo "$SIZE_MB / $1" | bc -l)"; }
ratio() { printf '%.2f' "$(echo "$1 / $2" | bc -l)"; }
TABLE="| client | transfer (median of $ROUNDS) | direct MiB/s | weir MiB/s | weir/direct |
|---|---|---|---|---|"
for client in $CLIENTS; do
	name="az CLI"; [[ $client == go ]] && name="Go azblob SDK"
	TABLE+="
| $name | upload ${SIZE_MB} MiB | $(mbps ${T[$client.direct.up]}) | $(mbps ${T[$client.weir.up]}) | $(ratio ${T[$client.direct.up]} ${T[$client.weir.up]}) |
| $name | download ${SIZE_MB} MiB | $(mbps ${T[$client.direct.down]}) | $(mbps ${T[$client.weir.down]}) | $(ratio ${T[$client.direct.down]} ${T[$client.weir.down]}) |"
done
TABLE+="

weir peak RSS (VmHWM) over all runs: **$((HWM / 1024)) MiB**; weir CPU time: ${CPU} s for $((2 * ROUNDS * SIZE_MB * $(echo $CLIENTS | wc -w))) MiB through it"
echo "$TABLE"
if [[ $RECORD == 1 ]]; then
	{
		echo
		echo "## $(date -u '+%Y-%m-%d %H:%M') UTC — Blob front end, commit $(git rev-parse --short HEAD)"
		echo
		echo "- command: \`$CMDLINE\`"
		echo "- machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB memory; Azurite $(tools/node/node_modules/.bin/azurite-blob --version 2>/dev/null | tail -1), az $(az version --query '"azure-cli"' -o tsv 2>/dev/null), weir plaintext loopback"
		echo "- clients: the Go azblob SDK (UploadStream 8 MiB blocks x2, DownloadStream) and \`az storage blob upload|download\`, each with a connection string (direct: Azurite's account key; weir: \`weir token issue --format connection-string\`); random binary data (passes unmasked); az's download sha256-checked"
		echo "- everything (client, weir, Azurite) on this machine's 2 shared cores; Azurite (Node, single-threaded) is the ceiling"
		echo
		echo "$TABLE"
	} >>bench/RESULTS.md
fi
