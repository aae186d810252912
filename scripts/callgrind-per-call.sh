#!/usr/bin/env bash
# Instructions per call, counted by valgrind's callgrind: the same
# stateless `tools/call whoami` as scripts/wrk-bench.sh, against
# `examples/protected_server` (environment variables only, defaults
# untouched) and rmcp alone in its best configuration (`examples/bare_rmcp
# --nodelay --json`). Callgrind counts executed instructions, so the figure
# is the same whatever else the machine is doing: the view of the per-call
# cost that load on a shared machine cannot blur (wall-clock figures come
# from scripts/wrk-bench.sh).
#
#   scripts/callgrind-per-call.sh               # RS256, 4 s of counted calls per server
#   scripts/callgrind-per-call.sh --alg es256 --seconds 6
#   scripts/callgrind-per-call.sh --legacy       # 2025-11-25 session (bare rmcp: SSE, as rmcp answers in a session)
#   scripts/callgrind-per-call.sh --bare-mimalloc  # bare rmcp with the reference server's allocator
#                                                  # (examples/bare_rmcp_mimalloc): the layer's own instructions
#   scripts/callgrind-per-call.sh --ours-bin /tmp/ps-base  # another build of the reference server
#                                                  # (an earlier commit's) in place of this tree's
#   scripts/callgrind-per-call.sh --connections 64  # wrk with 64 connections (and 2 threads) in place
#                                                  # of one: what a call costs when many are in flight
#
# Run it on an otherwise idle machine: the count does not depend on the
# machine's speed, but a loaded one interleaves the server's tasks
# differently (more wake-ups and polls), which adds instructions (a legacy
# call counted 178.6k under a concurrent fuzzing run, 167.2k alone).
#
# Each server is warmed up first (the first call verifies the token, later
# ones hit the cache), then its instrumentation is switched on, wrk (one
# connection) drives it for the given time, and the count is dumped. Output:
# calls, instructions, instructions per call for each server, and the ratio;
# then the code each call touches (scripts/callgrind-lines.py: 64-byte lines
# of machine code run at least once per call), what a call starting with
# cold caches fetches again.
#
# Caveat: valgrind runs the code on a synthetic CPU without SHA extensions,
# so aws-lc-rs hashes with its AVX code; the token cache's SHA-256 of each
# token costs about 23k instructions here and far less on a CPU with SHA-NI.
# The report prints the instructions spent in SHA-256 so they can be set
# apart.
set -euo pipefail

ALG=rs256 SECONDS_COUNTED=4 LEGACY=0 BARE_BIN=bare_rmcp OURS_BIN="" CONNECTIONS=1
while [ $# -gt 0 ]; do
  case "$1" in
    --legacy) LEGACY=1; shift ;;
    --bare-mimalloc) BARE_BIN=bare_rmcp_mimalloc; shift ;;
    --ours-bin) OURS_BIN="$2"; shift 2 ;;
    --alg) ALG="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --seconds) SECONDS_COUNTED="$2"; shift 2 ;;
    *) echo "callgrind-per-call: unknown flag $1" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET_DIR/release/examples"
for tool in valgrind callgrind_control callgrind_annotate wrk curl python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "callgrind-per-call: $tool is required (Debian: valgrind, wrk)" >&2; exit 2; }
done
cargo build --release --quiet --example protected_server --example bench_issuer --example "$BARE_BIN"

# shellcheck source=scripts/bench-common.sh
. "$ROOT/scripts/bench-common.sh"


OURS_PORT="$(free_port)" BARE_PORT="$(free_port)"
OURS_URL="http://127.0.0.1:$OURS_PORT/mcp" BARE_URL="http://127.0.0.1:$BARE_PORT/mcp"

WAIT_SECONDS=120   # a process under valgrind starts slowly
start_issuer "$ALG" "$OURS_URL"
TOKEN="$(issuer_token "$OURS_URL")"

MCP_OAUTH2_ISSUER="$ISSUER" MCP_OAUTH2_RESOURCE="$OURS_URL" \
  MCP_OAUTH2_BIND="127.0.0.1:$OURS_PORT" MCP_OAUTH2_ALLOW_INSECURE_LOOPBACK=1 \
  valgrind --tool=callgrind --dump-instr=yes --instr-atstart=no --callgrind-out-file="$WORK/ours.cg" \
  "${OURS_BIN:-$BIN/protected_server}" >"$WORK/ours.out" 2>&1 &
PIDS+=($!)
OURS_PID=$!
BARE_FLAGS=(--nodelay --json)
# In a session rmcp answers with SSE whatever its JSON setting: compare
# like with like.
[ "$LEGACY" = 0 ] || BARE_FLAGS=(--nodelay)
valgrind --tool=callgrind --dump-instr=yes --instr-atstart=no --callgrind-out-file="$WORK/bare.cg" \
  "$BIN/$BARE_BIN" --bind "127.0.0.1:$BARE_PORT" "${BARE_FLAGS[@]}" >"$WORK/bare.out" 2>&1 &
PIDS+=($!)
BARE_PID=$!
wait_for "$WORK/ours.out" 'listening on' "$OURS_PID"
wait_for "$WORK/bare.out" 'listening on' "$BARE_PID"

THREADS=1
[ "$CONNECTIONS" = 1 ] || THREADS=2
PROTOCOL=2026-07-28
[ "$LEGACY" = 0 ] || PROTOCOL=2025-11-25
echo "callgrind-per-call: alg $ALG, protocol $PROTOCOL, ${SECONDS_COUNTED} s of counted calls per server, $CONNECTIONS connection(s)"
for server in ours bare; do
  if [ "$server" = ours ]; then url="$OURS_URL" pid="$OURS_PID"; else url="$BARE_URL" pid="$BARE_PID"; fi
  session=""
  if [ "$LEGACY" = 1 ]; then
    # One initialized session, as scripts/wrk-bench.sh --legacy opens it.
    session="$(open_legacy_session "$url" "$TOKEN" callgrind)"
  fi
  # Warm-up, not counted.
  WRK_TOKEN="$TOKEN" WRK_PROTOCOL=$PROTOCOL WRK_SESSION="$session" wrk -t1 -c1 -d2s --timeout 30s \
    -s "$ROOT/scripts/wrk-whoami.lua" "$url" >"$WORK/warm.out" 2>&1 || true
  callgrind_control -i on "$pid" >/dev/null 2>&1
  callgrind_control -z "$pid" >/dev/null 2>&1
  WRK_TOKEN="$TOKEN" WRK_PROTOCOL=$PROTOCOL WRK_SESSION="$session" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${SECONDS_COUNTED}s" --timeout 30s \
    -s "$ROOT/scripts/wrk-whoami.lua" "$url" >"$WORK/$server.wrk" 2>&1 || true
  callgrind_control -d "$pid" >/dev/null 2>&1
  callgrind_control -i off "$pid" >/dev/null 2>&1
  line="$(grep '^RESULT' "$WORK/$server.wrk" || true)"
  requests="$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line")"
  bad="$(sed -E 's/.*bad=([0-9]+).*/\1/' <<<"$line")"
  if [ -z "$line" ] || [ "$requests" = 0 ] || [ "$bad" != 0 ]; then
    echo "callgrind-per-call: $server: no good answers" >&2
    cat "$WORK/$server.wrk" >&2
    exit 1
  fi
  # The dump is written asynchronously.
  for _ in $(seq 100); do
    ls "$WORK/$server.cg".* >/dev/null 2>&1 && grep -q '^totals:' "$WORK/$server.cg".* && break
    sleep 0.1
  done
  file="$(ls "$WORK/$server.cg".* | tail -1)"
  total="$(awk '$1 == "totals:" {print $2}' "$file")"
  sha="$(callgrind_annotate --inclusive=yes "$file" 2>/dev/null \
    | awk '/sha256_digest / && !found { gsub(",", "", $1); print $1; found = 1 }')"
  lines="$(python3 "$ROOT/scripts/callgrind-lines.py" "$file" "$requests")"
  echo "$server $requests $total ${sha:-0} $lines" >>"$WORK/results"
done

awk '
  { calls[$1] = $2; ir[$1] = $3; sha[$1] = $4; lines[$1] = $5 }
  END {
    for (s in calls) printf "%-5s %7d calls  %14d instructions  %8.0f per call  (SHA-256 %6.0f per call)\n", s, calls[s], ir[s], ir[s] / calls[s], sha[s] / calls[s]
    o = ir["ours"] / calls["ours"]; b = ir["bare"] / calls["bare"]; h = sha["ours"] / calls["ours"]
    printf "ours / bare rmcp: %.3f (%.0f more instructions per call); without the SHA-256: %.3f\n", o / b, o - b, (o - h) / b
    printf "code touched per call (64-byte lines run at least once a call): ours %d, bare %d, ratio %.3f (%d more lines, %d KiB)\n", lines["ours"], lines["bare"], lines["ours"] / lines["bare"], lines["ours"] - lines["bare"], (lines["ours"] - lines["bare"]) * 64 / 1024
  }' "$WORK/results"
