#!/usr/bin/env bash
# What a call costs the server in time rather than in instructions (issue
# 13, one connection; scripts/callgrind-per-call.sh counts instructions):
# per stateless `tools/call whoami` (or legacy session call), for
# `examples/protected_server` (environment variables only, defaults
# untouched) and bare rmcp, counted on the server process and all its
# threads:
#   - `perf stat`: CPU time, context switches, CPU migrations, page faults,
#     wake-ups made by the server's threads (`sched:sched_wakeup`: the
#     client's wake-up by the answer included; a hand-off to another thread
#     shows as more than one per call) and kernel timers armed
#     (`timer:hrtimer_start`: a worker that parks while any Tokio timer is
#     pending sleeps in `epoll_wait` with a timeout, which arms one);
#   - `strace -f -c`: system calls by name (futex, epoll_wait, write and
#     writev together, read, sendto, recvfrom);
#   - with --timeline, `strace -f -tt -T` of one second of calls, read by
#     scripts/strace-gaps.py: the median time from a request's `recvfrom`
#     to the first `writev` (the head leaves) and to the `writev` that ends
#     the answer. The gaps include strace's cost per system call, so a
#     server making fewer calls looks a little faster: compare servers, not
#     absolute values.
# Counts, unlike wall-clock figures, are not blurred by other work on the
# machine (CPU time per call and the timeline gaps are, somewhat).
#
#   scripts/syscalls-per-call.sh                     # RS256, 3 s per measure, ours rmcp-nodelay rmcp-json
#   scripts/syscalls-per-call.sh --legacy --timeline --servers "ours ours-unheld rmcp-nodelay"
#   MCP_OAUTH2_HEADER_READ_TIMEOUT=off scripts/syscalls-per-call.sh --servers ours
#
# Servers: ours, ours-unheld (MCP_OAUTH2_HOLD_STREAMS_FOR_STEP_UP=0),
# rmcp-nodelay, rmcp-json, rmcp-json-mimalloc, as in scripts/wrk-bench.sh;
# `ours` inherits any other MCP_OAUTH2_* variable of the caller. Each server
# is pinned to CPU 0 and the client (wrk, one thread, one connection) to
# CPU 1, and warmed up first (1 s; every measure opens a new connection).
# strace slows the server, so its calls per second are not a figure; its
# counts per call are. Flags: --alg, --seconds N (3), --servers, --legacy,
# --timeline. Environment: CARGO_TARGET_DIR, BENCH_KEEP=1 (keep the raw
# outputs). Needs perf (tracepoints: root, or a low
# perf_event_paranoid), strace, wrk, taskset, python3.
set -euo pipefail

ALG=rs256 SECONDS_PER=3 LEGACY=0 TIMELINE=0
SERVERS="ours rmcp-nodelay rmcp-json"
while [ $# -gt 0 ]; do
  case "$1" in
    --alg) ALG="$2"; shift 2 ;;
    --seconds) SECONDS_PER="$2"; shift 2 ;;
    --servers) SERVERS="$2"; shift 2 ;;
    --legacy) LEGACY=1; shift ;;
    --timeline) TIMELINE=1; shift ;;
    *) echo "syscalls-per-call: unknown flag $1" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET_DIR/release/examples"
for tool in perf strace wrk curl taskset python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "syscalls-per-call: $tool is required (Debian: linux-perf, strace, wrk)" >&2; exit 2; }
done
cargo build --release --quiet --example protected_server --example bench_issuer --example bare_rmcp --example bare_rmcp_mimalloc

# shellcheck source=scripts/bench-common.sh
. "$ROOT/scripts/bench-common.sh"

OURS_PORT="$(free_port)" UNHELD_PORT="$(free_port)"
OURS_URL="http://127.0.0.1:$OURS_PORT/mcp" UNHELD_URL="http://127.0.0.1:$UNHELD_PORT/mcp"
start_issuer "$ALG" "$OURS_URL" "$UNHELD_URL"

PROTOCOL=2026-07-28
[ "$LEGACY" = 0 ] || PROTOCOL=2025-11-25
echo "syscalls-per-call: alg $ALG, protocol $PROTOCOL, ${SECONDS_PER} s per measure, one connection; load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-18s %9s %8s %8s %8s %8s %8s %9s %8s %8s %8s %8s %8s %8s\n' server "cpu_us" "ctxsw" "migr" faults wakeups hrtimers "syscalls" futex epoll_wt "write*" "read*" sendto recvfrom
for server in $SERVERS; do
  url="$OURS_URL" token_aud="$OURS_URL"
  case "$server" in
    ours)
      env MCP_OAUTH2_ISSUER="$ISSUER" MCP_OAUTH2_RESOURCE="$OURS_URL" \
        MCP_OAUTH2_BIND="127.0.0.1:$OURS_PORT" MCP_OAUTH2_ALLOW_INSECURE_LOOPBACK=1 \
        taskset -c 0 "$BIN/protected_server" >"$WORK/$server.out" 2>&1 & ;;
    ours-unheld)
      url="$UNHELD_URL" token_aud="$UNHELD_URL"
      env MCP_OAUTH2_ISSUER="$ISSUER" MCP_OAUTH2_RESOURCE="$UNHELD_URL" \
        MCP_OAUTH2_BIND="127.0.0.1:$UNHELD_PORT" MCP_OAUTH2_ALLOW_INSECURE_LOOPBACK=1 \
        MCP_OAUTH2_HOLD_STREAMS_FOR_STEP_UP=0 \
        taskset -c 0 "$BIN/protected_server" >"$WORK/$server.out" 2>&1 & ;;
    rmcp-nodelay|rmcp-json|rmcp-json-mimalloc)
      flags=(--nodelay) bin=bare_rmcp
      [ "$server" = rmcp-nodelay ] || flags+=(--json)
      [ "$server" = rmcp-json-mimalloc ] && bin=bare_rmcp_mimalloc
      port="$(free_port)" url="http://127.0.0.1:$port/mcp"
      taskset -c 0 "$BIN/$bin" --bind "127.0.0.1:$port" "${flags[@]}" >"$WORK/$server.out" 2>&1 & ;;
    *) echo "syscalls-per-call: unknown server $server" >&2; exit 2 ;;
  esac
  pid=$!
  PIDS+=($pid)
  wait_for "$WORK/$server.out" 'listening on' "$pid"
  token="$(issuer_token "$token_aud")"
  session=""
  if [ "$LEGACY" = 1 ]; then
    session="$(open_legacy_session "$url" "$token" probe)"
  fi
  run_wrk() { # $1: output file, $2: seconds, $3: id base
    WRK_TOKEN="$token" WRK_PROTOCOL=$PROTOCOL WRK_SESSION="$session" WRK_ID_BASE="$3" \
      taskset -c 1 wrk -t1 -c1 -d"$2s" --timeout 30s -s "$ROOT/scripts/wrk-whoami.lua" "$url" >"$1" 2>&1 || true
    local line; line="$(grep '^RESULT' "$1" || true)"
    if [ -z "$line" ] || grep -q 'requests=0 ' <<<"$line" || ! grep -q ' bad=0' <<<"$line"; then
      echo "syscalls-per-call: $server: bad answers" >&2; cat "$1" >&2; exit 1
    fi
    sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line"
  }
  run_wrk "$WORK/$server.warm" 1 0 >/dev/null
  # perf: context switches and migrations of all the server's threads.
  perf stat -x, -e context-switches,cpu-migrations,task-clock,page-faults,sched:sched_wakeup,timer:hrtimer_start -p "$pid" -o "$WORK/$server.perf" &
  perf_pid=$!
  sleep 0.2
  calls="$(run_wrk "$WORK/$server.perf.wrk" "$SECONDS_PER" 1000000)"
  kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
  ctx="$(awk -F, '$3 == "context-switches" {print $1}' "$WORK/$server.perf")"
  mig="$(awk -F, '$3 == "cpu-migrations" {print $1}' "$WORK/$server.perf")"
  clk="$(awk -F, '$3 == "task-clock" {print $1}' "$WORK/$server.perf")"
  wakeups="$(awk -F, '$3 == "sched:sched_wakeup" {print $1}' "$WORK/$server.perf")"
  faults="$(awk -F, '$3 == "page-faults" {print $1}' "$WORK/$server.perf")"
  hrtimers="$(awk -F, '$3 == "timer:hrtimer_start" {print $1}' "$WORK/$server.perf")"
  # strace: system calls by name.
  strace -f -c -p "$pid" -o "$WORK/$server.strace" 2>/dev/null &
  strace_pid=$!
  sleep 0.5
  scalls="$(run_wrk "$WORK/$server.strace.wrk" "$SECONDS_PER" 2000000)"
  kill -INT "$strace_pid"; wait "$strace_pid" 2>/dev/null || true
  count() { awk -v re="$1" '$NF ~ re && $4 ~ /^[0-9]+$/ {n += $4} END {print n + 0}' "$WORK/$server.strace"; }
  total="$(awk '$NF == "total" {print $4}' "$WORK/$server.strace")"
  python3 - "$server" "$calls" "$ctx" "$mig" "$clk" "$faults" "$wakeups" "$hrtimers" "$scalls" "$total" \
    "$(count '^futex$')" "$(count '^epoll_wait$')" "$(count '^(write|writev)$')" "$(count '^(read|readv)$')" \
    "$(count '^sendto$')" "$(count '^recvfrom$')" <<'EOF'
import sys
s, calls, ctx, mig, clk, faults, wakeups, hrtimers, scalls, total, *rest = sys.argv[1:]
calls, scalls = int(calls), int(scalls)
per = lambda v: float(v) / scalls
print(f"{s:<18} {float(clk) * 1000 / calls:9.1f} {int(ctx) / calls:8.3f} {int(mig) / calls:8.3f} {int(faults) / calls:8.3f} "
      f"{int(wakeups) / calls:8.3f} {int(hrtimers) / calls:8.3f} "
      f"{per(total):9.2f} " + " ".join(f"{per(v):8.2f}" for v in rest))
EOF
  if [ "$TIMELINE" = 1 ]; then
    strace -f -tt -T -p "$pid" -o "$WORK/$server.timeline" 2>/dev/null &
    strace_pid=$!
    sleep 0.5
    WRK_TOKEN="$token" WRK_PROTOCOL=$PROTOCOL WRK_SESSION="$session" WRK_ID_BASE=3000000 \
      taskset -c 1 wrk -t1 -c1 -d1s --timeout 30s -s "$ROOT/scripts/wrk-whoami.lua" "$url" >/dev/null 2>&1 || true
    kill -INT "$strace_pid"; wait "$strace_pid" 2>/dev/null || true
    python3 "$ROOT/scripts/strace-gaps.py" "$WORK/$server.timeline" "$server"
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
echo "(per call: server CPU time in us, context switches, migrations, page faults, wake-ups the server's threads made (sched_wakeup, the client's included), kernel timers armed (hrtimer_start: a parked worker with a timer pending arms one per park); then system calls from strace -f -c, write* = write + writev)"
