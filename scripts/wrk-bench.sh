#!/usr/bin/env bash
# External-load benchmark of what users run (issue 13): `wrk` against
# `examples/protected_server` started as the README starts it (a process,
# configured only by environment variables, defaults untouched) and against
# rmcp alone (`examples/bare_rmcp`) with its defaults and with its best
# configurations, in alternating rounds, at 1 connection (one call at a time,
# what an interactive MCP client feels) and at 64.
#
#   scripts/wrk-bench.sh                       # RS256, 5 rounds of 3 s, 1 and 64 connections
#   scripts/wrk-bench.sh --alg es256 --rounds 3 --seconds 2
#   scripts/wrk-bench.sh --legacy              # 2025-11-25 sessions instead of stateless calls
#   scripts/wrk-bench.sh --smoke               # CI: one 1-second round of each, fails on any bad answer
#   scripts/wrk-bench.sh --flood               # accepted calls' p99, idle vs under ~5,000 failed auths/s
#   scripts/wrk-bench.sh --flood --flood-kind signature,notfound --pace 1 --seconds 8   # the same, paced, with its control
#   scripts/wrk-bench.sh --keep-client-awake   # the control: wrk's CPU kept from halting between answers
#
# Flags: --alg rs256|es256|eddsa (rs256), --rounds N (5), --seconds N (3),
# --connections "1 64", --legacy, --servers "ours rmcp-default rmcp-nodelay
# rmcp-json", --alt-env "NAME=VALUE ..." and --alt-bin PATH (for ours-alt), --smoke, --fresh (every server restarted and warmed up again
# before each round after the first), --flood (only `ours`: rounds alternate between
# one connection of accepted calls alone and the same while 30 more
# connections send bad-signature tokens, each waiting 5 ms between
# requests on average, random pauses: at most about 6,000 failed
# authentications/s, rate reported; the flood's wrk runs SCHED_IDLE so it
# never delays the measuring client). --flood-kind signature|malformed|notfound|metadata
# (signature): tokens with a bad signature, or not JWTs at all, or (the
# control) requests for a path the server does not serve, answered 404 by
# the router with no authentication work: the p99 ratio under that flood is
# what any HTTP traffic at that rate costs the accepted calls; or (a second
# control) GETs of the protected resource metadata, a 200 of about 520
# bytes (a refusal's answer is about 750, a 404's 130) answered by the
# layer before any authentication work. --throttle
# COUNT/SECONDS (with --flood): `ours` throttles failed authentications
# (MCP_OAUTH2_FAILED_AUTH_LIMIT) behind a trusted proxy
# (MCP_OAUTH2_TRUSTED_PROXIES=127.0.0.1/32); the flood says it comes from
# 203.0.113.9 and the measured calls from 198.51.100.7 (X-Forwarded-For),
# as two clients behind a load balancer. --pace MS: the measuring wrk
# waits MS milliseconds before each call (wrk's `delay()`, not counted in
# the latency), so one connection makes one call about every MS ms plus the
# call's time, as an interactive client does, instead of calls back to
# back. With --flood this is what makes the target measurable on 2 vCPUs:
# back to back, the measuring client keeps the server's CPU busy most of
# the time (the "idle" server is not idle) and its own CPU, which the
# flood's client shares, too; paced, both CPUs are mostly free, and the
# control (--flood-kind notfound) shows what any traffic at the flood's rate
# costs the tail (BENCHMARKS.md, twenty-fourth pass). --keep-client-awake (not with
# --flood): a busy loop at SCHED_IDLE priority pinned to wrk's CPU for the
# whole run, so that CPU never goes idle: wrk preempts it at once, and
# waiting for an answer costs wrk no wake-up from a halted CPU. On a
# virtual machine without guest halt polling that wake-up is a large part
# of a one-connection call's latency (BENCHMARKS.md, "seventeenth pass");
# the control shows the servers' latencies without it (the load average
# then counts the loop). Environment: WRK_BENCH_PROFILE (release), CARGO_TARGET_DIR.
#
# Servers (each pinned to CPU 0 with taskset when there are 2+ CPUs; wrk,
# one thread, pinned to CPU 1):
#   ours          examples/protected_server, env only: MCP_OAUTH2_ISSUER,
#                 MCP_OAUTH2_RESOURCE, MCP_OAUTH2_BIND and
#                 MCP_OAUTH2_ALLOW_INSECURE_LOOPBACK=1 (the issuer is
#                 examples/bench_issuer, plain HTTP on loopback)
#   ours-unheld   the same plus MCP_OAUTH2_HOLD_STREAMS_FOR_STEP_UP=0 (an
#                 event stream's head leaves at once; not a default: only
#                 in --servers when asked for)
#   ours-alt      the same plus the variables of --alt-env "NAME=VALUE ...",
#                 and run from the binary of --alt-bin PATH when given (a
#                 setting's cost, or another build's, such as a copy of
#                 target/release/examples/protected_server made before a
#                 change, measured in the same rounds as the defaults; only
#                 in --servers when asked for)
#   rmcp-default  rmcp alone, its defaults (SSE responses, Nagle on)
#   rmcp-nodelay  rmcp alone, SSE responses, TCP_NODELAY on accepted sockets
#   rmcp-json     rmcp alone, TCP_NODELAY and JSON responses
#   rmcp-json-mimalloc  the same with mimalloc, the reference server's
#                 allocator (examples/bare_rmcp_mimalloc): the control that
#                 takes the allocator out of the ratio (not a baseline of
#                 the ratios, which stay against rmcp as built by default;
#                 only in --servers when asked for)
# Every answer is checked by scripts/wrk-whoami.lua (status 200, a successful
# whoami result for subject `bench`); the script exits non-zero if any answer
# was bad, any socket error happened, or a round served nothing.
# Rounds alternate the order of the servers (A B C, then C B A). Output:
# one line per round with the machine's load average, then a table of
# means per server with the ratio to the best bare rmcp configuration, the
# median over rounds of each round's ratio to the configuration that is
# best over the run, the same against the better configuration of each
# round (stricter: biased against us), and the server's CPU per call.
set -euo pipefail

ALG=rs256 ROUNDS=5 SECONDS_PER_ROUND=3 CONNECTIONS="1 64" LEGACY=0 SMOKE=0 FLOOD=0 FLOOD_KIND=signature FRESH=0 THROTTLE=
SERVERS="ours rmcp-default rmcp-nodelay rmcp-json"
ALT_ENV= ALT_BIN= KEEP_CLIENT_AWAKE=0 PACE_MS=0
while [ $# -gt 0 ]; do
  case "$1" in
    --alg) ALG="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --seconds) SECONDS_PER_ROUND="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --servers) SERVERS="$2"; shift 2 ;;
    --alt-env) ALT_ENV="$2"; shift 2 ;;
    --alt-bin) ALT_BIN="$2"; shift 2 ;;
    --legacy) LEGACY=1; shift ;;
    --smoke) SMOKE=1; shift ;;
    --flood) FLOOD=1; shift ;;
    --flood-kind) FLOOD_KIND="$2"; shift 2 ;;
    --throttle) THROTTLE="$2"; shift 2 ;;
    --pace) PACE_MS="$2"; shift 2 ;;
    --fresh) FRESH=1; shift ;;
    --keep-client-awake) KEEP_CLIENT_AWAKE=1; shift ;;
    *) echo "wrk-bench: unknown flag $1" >&2; exit 2 ;;
  esac
done
if [ "$SMOKE" = 1 ]; then
  ROUNDS=1 SECONDS_PER_ROUND=1
fi
if [ "$FLOOD" = 1 ]; then
  # The flood measures the reference server only: `ours`, and `ours-alt`
  # when --servers names it (a setting's or another build's effect on the
  # tail, in the same rounds).
  case "$SERVERS" in
    *ours-alt*) SERVERS="ours ours-alt" ;;
    *) SERVERS=ours ;;
  esac
fi
if [ -n "$ALT_BIN" ] && [ ! -x "$ALT_BIN" ]; then
  echo "wrk-bench: --alt-bin $ALT_BIN is not an executable file" >&2; exit 2
fi
if [ "$KEEP_CLIENT_AWAKE" = 1 ] && [ "$FLOOD" = 1 ]; then
  echo "wrk-bench: --keep-client-awake is not for --flood (the flood's wrk runs at the same priority)" >&2; exit 2
fi
if [ "$FRESH" = 1 ] && { [ "$LEGACY" = 1 ] || [ "$FLOOD" = 1 ]; }; then
  echo "wrk-bench: --fresh is for stateless runs (not --legacy or --flood)" >&2; exit 2
fi

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PROFILE="${WRK_BENCH_PROFILE:-release}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$PROFILE" in
  release) BIN="$TARGET_DIR/release/examples"; PROFILE_FLAG=--release ;;
  dev) BIN="$TARGET_DIR/debug/examples"; PROFILE_FLAG= ;;
  *) echo "wrk-bench: WRK_BENCH_PROFILE is release or dev" >&2; exit 2 ;;
esac

if ! command -v wrk >/dev/null 2>&1; then
  echo "wrk-bench: installing wrk (Debian package)" >&2
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk >/dev/null
fi
for tool in curl python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "wrk-bench: $tool is required" >&2; exit 2; }
done

cargo build $PROFILE_FLAG --quiet --example protected_server --example bench_issuer --example bare_rmcp --example bare_rmcp_mimalloc

# shellcheck source=scripts/bench-common.sh
. "$ROOT/scripts/bench-common.sh"

PIN_SERVER=() PIN_CLIENT=()
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
  PIN_SERVER=(taskset -c 0) PIN_CLIENT=(taskset -c 1)
fi


declare -A URL SPID PORT REF_TOKEN
# The reference server's variants each have their own port and resource,
# and the issuer signs a token for each.
REFERENCES="ours ours-unheld ours-alt"
audiences=()
for server in $REFERENCES; do
  PORT[$server]="$(free_port)"
  URL[$server]="http://127.0.0.1:${PORT[$server]}/mcp"
  audiences+=("${URL[$server]}")
done
start_issuer "$ALG" "${audiences[@]}"
for server in $REFERENCES; do REF_TOKEN[$server]="$(issuer_token "${URL[$server]}")"; done
TOKEN="${REF_TOKEN[ours]}"

# The token whose audience is the server's resource (bare rmcp checks none).
token_of() {
  echo "${REF_TOKEN[$1]:-$TOKEN}"
}
# Starts examples/protected_server as server $1 (one of $REFERENCES) on
# its port and resource, configured by environment variables only, the
# variables that follow ("NAME=VALUE") added to the defaults.
start_reference() {
  local server="$1" bin="$BIN/protected_server"
  shift
  [ "$server" != ours-alt ] || [ -z "$ALT_BIN" ] || bin="$ALT_BIN"
  env MCP_OAUTH2_ISSUER="$ISSUER" MCP_OAUTH2_RESOURCE="${URL[$server]}" \
    MCP_OAUTH2_BIND="127.0.0.1:${PORT[$server]}" MCP_OAUTH2_ALLOW_INSECURE_LOOPBACK=1 "$@" \
    "${PIN_SERVER[@]}" "$bin" >"$WORK/$server.out" 2>&1 &
}
# Starts (or restarts) one server process; its URL stays the same.
start_server() {
  local server="$1"
  case "$server" in
    ours)
      local throttle=()
      [ -z "$THROTTLE" ] || throttle=(MCP_OAUTH2_FAILED_AUTH_LIMIT="$THROTTLE" MCP_OAUTH2_TRUSTED_PROXIES=127.0.0.1/32)
      start_reference "$server" "${throttle[@]}" ;;
    ours-unheld)
      start_reference "$server" MCP_OAUTH2_HOLD_STREAMS_FOR_STEP_UP=0 ;;
    ours-alt)
      # The settings of --alt-env, word-split on purpose (NAME=VALUE pairs
      # without spaces).
      # shellcheck disable=SC2086
      start_reference "$server" $ALT_ENV ;;
    rmcp-default|rmcp-nodelay|rmcp-json|rmcp-json-mimalloc)
      local flags=() bin=bare_rmcp
      [ "$server" = rmcp-default ] || flags+=(--nodelay)
      [ "$server" = rmcp-json ] && flags+=(--json)
      [ "$server" = rmcp-json-mimalloc ] && { flags+=(--json); bin=bare_rmcp_mimalloc; }
      [ -n "${PORT[$server]:-}" ] || PORT[$server]="$(free_port)"
      "${PIN_SERVER[@]}" "$BIN/$bin" --bind "127.0.0.1:${PORT[$server]}" "${flags[@]}" >"$WORK/$server.out" 2>&1 &
      URL[$server]="http://127.0.0.1:${PORT[$server]}/mcp" ;;
    *) echo "wrk-bench: unknown server $server" >&2; exit 2 ;;
  esac
  SPID[$server]=$!
  PIDS+=($!)
  wait_for "$WORK/$server.out" 'listening on' "$!"
}
for server in $SERVERS; do start_server "$server"; done
if [ "$KEEP_CLIENT_AWAKE" = 1 ]; then
  if [ "${#PIN_CLIENT[@]}" = 0 ] || ! command -v chrt >/dev/null 2>&1; then
    echo "wrk-bench: --keep-client-awake needs 2+ CPUs, taskset and chrt" >&2; exit 2
  fi
  chrt --idle 0 "${PIN_CLIENT[@]}" sh -c 'while :; do :; done' &
  PIDS+=($!)
fi

PROTOCOL=2026-07-28
declare -A SESSION
if [ "$LEGACY" = 1 ]; then
  PROTOCOL=2025-11-25
  # One initialized session per server, shared by all connections.
  for server in $SERVERS; do
    sid="$(open_legacy_session "${URL[$server]}" "$(token_of "$server")" wrk-bench)"
    SESSION[$server]="$sid"
  done
fi

# The CPU time (user + system, clock ticks) the process has used so far.
TICK_US=$((1000000 / $(getconf CLK_TCK)))
cpu_ticks() {
  # Fields after "pid (comm) ": utime and stime are the 12th and 13th.
  sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }' || echo 0
}

# One wrk run; appends "server connections rps p50 p99 load round
# cpu_us_per_call" to results.
FAILED=0
# Each wrk run numbers its session requests from its own base: a request a
# run left in flight when it stopped keeps its id reserved in the session
# (the layer cannot know whether rmcp still runs it), so the next run must
# not reuse that id.
WRK_RUNS=0
run_wrk() {
  local server="$1" conns="$2" seconds="$3" record="$4"
  local out="$WORK/wrk.out"
  local cpu_before
  cpu_before="$(cpu_ticks "${SPID[$server]}")"
  WRK_RUNS=$((WRK_RUNS + 1))
  WRK_ID_BASE=$((WRK_RUNS * 100000000)) \
  WRK_TOKEN="$(token_of "$server")" WRK_PROTOCOL="$PROTOCOL" WRK_SESSION="${SESSION[$server]:-}" WRK_PACE_MS="$PACE_MS" \
    WRK_FORWARDED_FOR="${THROTTLE:+198.51.100.7}" "${PIN_CLIENT[@]}" wrk -t1 -c"$conns" -d"${seconds}s" --timeout 10s \
    -s "$ROOT/scripts/wrk-whoami.lua" "${URL[$server]}" >"$out" 2>&1 || true
  local line
  line="$(grep '^RESULT' "$out" || true)"
  if [ -z "$line" ]; then
    echo "wrk-bench: $server c=$conns: no result" >&2; cat "$out" >&2; FAILED=1; return
  fi
  local requests rps p50 p99 errors bad load cpu_us
  requests="$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line")"
  # The server's CPU time per call during the run (its own work and the
  # kernel's on its behalf): at 64 connections, where the server's CPU is
  # the bottleneck, calls/s is its inverse, and it moves less than calls/s
  # when the machine's speed changes between rounds.
  cpu_us="$(awk -v a="$cpu_before" -v b="$(cpu_ticks "${SPID[$server]}")" -v n="$requests" -v t="$TICK_US" \
    'BEGIN { printf "%.1f", (n > 0 ? (b - a) * t / n : 0) }')"
  rps="$(sed -E 's/.*rps=([0-9.]+).*/\1/' <<<"$line")"
  p50="$(sed -E 's/.*p50_us=([0-9]+).*/\1/' <<<"$line")"
  p99="$(sed -E 's/.*p99_us=([0-9]+).*/\1/' <<<"$line")"
  errors="$(sed -E 's/.*errors=([0-9]+).*/\1/' <<<"$line")"
  bad="$(sed -E 's/.*bad=([0-9]+).*/\1/' <<<"$line")"
  load="$(cut -d' ' -f1 /proc/loadavg)"
  if [ "$requests" = 0 ] || [ "$errors" != 0 ] || [ "$bad" != 0 ]; then
    echo "wrk-bench: $server c=$conns: $requests requests, $errors socket errors, $bad bad answers" >&2
    grep '^FIRST_BAD' "$out" >&2 || cat "$out" >&2
    FAILED=1
  fi
  if [ "$record" = 1 ]; then
    printf '%-13s c=%-3s %9.1f calls/s  p50 %8.3f ms  p99 %8.3f ms  cpu %6.1f us/call  load %s\n' \
      "$server" "$conns" "$rps" "$(awk "BEGIN{print $p50/1000}")" "$(awk "BEGIN{print $p99/1000}")" "$cpu_us" "$load"
    echo "$server $conns $rps $p50 $p99 $load ${round:-0} $cpu_us" >>"$WORK/results"
  fi
}

# The median of list[1..n] (sorted in place, so list[1] and list[n] are
# then its minimum and maximum), for the awk programs below.
AWK_MEDIAN='
  function median(list, n,    i, j, t) {
    for (i = 2; i <= n; i++) for (j = i; j > 1 && list[j - 1] > list[j]; j--) { t = list[j]; list[j] = list[j - 1]; list[j - 1] = t }
    return n % 2 ? list[(n + 1) / 2] : (list[n / 2] + list[n / 2 + 1]) / 2
  }'
if [ "$FLOOD" = 1 ]; then
  echo "wrk-bench --flood: alg $ALG, servers $SERVERS, flood kind(s) $FLOOD_KIND, throttle ${THROTTLE:-off}, pace ${PACE_MS} ms, $ROUNDS round(s) of ${SECONDS_PER_ROUND} s, load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
  for server in $SERVERS; do run_wrk "$server" 8 1 0; done   # warm-up
  : >"$WORK/results"
  for round in $(seq "$ROUNDS"); do
    for server in $SERVERS; do
      run_wrk "$server" 1 "$SECONDS_PER_ROUND" 1
      sed -i "\$ s/^$server /$server:idle /" "$WORK/results"
      # Several kinds (comma-separated): each round measures under each, in
      # turn, against the same idle measurement.
      for kind in ${FLOOD_KIND//,/ }; do
        label=flood
        [ "$FLOOD_KIND" = "$kind" ] || label="flood-$kind"
        WRK_TOKEN="$(token_of "$server")" WRK_FLOOD_KIND="$kind" WRK_DELAY_MS=5 WRK_FORWARDED_FOR="${THROTTLE:+203.0.113.9}" chrt --idle 0 "${PIN_CLIENT[@]}" wrk -t1 -c30 -d"$((SECONDS_PER_ROUND + 1))s" \
          -s "$ROOT/scripts/wrk-flood.lua" "${URL[$server]}" >"$WORK/flood.out" 2>&1 &
        flood=$!
        sleep 0.5
        run_wrk "$server" 1 "$SECONDS_PER_ROUND" 1
        sed -i "\$ s/^$server /$server:$label /" "$WORK/results"
        wait "$flood" || true
        sed -n "s/^FLOOD /FLOOD $server $kind /p" "$WORK/flood.out" | tee -a "$WORK/flood-lines" | grep . || { cat "$WORK/flood.out" >&2; FAILED=1; }
      done
    done
  done
  awk '{ n[$1]++; rps[$1] += $3; p50[$1] += $4; p99[$1] += $5 }
    END {
      for (k in n) printf "%-26s %9.1f calls/s  p50 %8.3f ms  p99 %8.3f ms\n", k, rps[k]/n[k], p50[k]/n[k]/1000, p99[k]/n[k]/1000
      for (k in n) {
        split(k, parts, ":"); idle = parts[1] ":idle"
        if (parts[2] != "idle" && n[idle]) printf "%s: p99 / idle (means) %.2f, p50 %.2f\n", k, (p99[k]/n[k])/(p99[idle]/n[idle]), (p50[k]/n[k])/(p50[idle]/n[idle])
      }
    }' "$WORK/results" | sort
  # Per-round ratios (each flood round against the same server's idle
  # round before it) and their median: one slow round moves a mean, not a
  # median.
  for label in $(awk '$1 !~ /:idle$/ { print $1 }' "$WORK/results" | sort -u); do
    idle_label="${label%%:*}:idle"
    awk -v l="$label" -v i="$idle_label" '$1 == i { idle = $5 } $1 == l && idle > 0 { print $5 / idle }' "$WORK/results" | sort -g |
      awk -v l="$label" "$AWK_MEDIAN"'{ r[NR] = $1; list = list sprintf(" %.2f", $1) }
        END { if (NR) printf "%s: p99 ratio per round (sorted):%s; median %.2f\n", l, list, median(r, NR) }'
  done
  # The server's CPU per request of the flood: its CPU time per accepted
  # call under the flood, less the same in the idle measurement before it,
  # times the accepted calls, over the flood's requests (about 5,750 a
  # second); median over rounds.
  awk '
    $1 ~ /:idle$/ { split($1, p, ":"); idle[p[1]] = $3 * $8; next }
    { split($1, p, ":"); if (p[1] in idle && NF >= 8) print $1, ($3 * $8 - idle[p[1]]) }' "$WORK/results" >"$WORK/extra"
  for label in $(awk '{ print $1 }' "$WORK/extra" | sort -u); do
    server="${label%%:*}" kind="${label#*:}"; kind="${kind#flood}"; kind="${kind#-}"
    [ -n "$kind" ] || kind="$FLOOD_KIND"
    rate="$(awk -v s="$server" -v k="$kind" '$1 == "FLOOD" && $2 == s && $3 == k { sub("rps=", "", $5); n++; t += $5 } END { if (n) print t / n }' "$WORK/flood-lines" 2>/dev/null || true)"
    [ -n "$rate" ] || continue
    awk -v l="$label" -v r="$rate" "$AWK_MEDIAN"'$1 == l { v[++n] = $2 / r }
      END { if (n) printf "%s: server CPU per flood request over idle, median %.1f us\n", l, median(v, n) }' "$WORK/extra"
  done
  echo "load average at end $(cut -d' ' -f1-3 /proc/loadavg)"
  exit "$FAILED"
fi

echo "wrk-bench: alg $ALG, protocol $PROTOCOL, $ROUNDS round(s) of ${SECONDS_PER_ROUND} s, connections $CONNECTIONS, profile $PROFILE, pinned: ${PIN_SERVER[*]:-no}"
echo "machine: $(nproc) CPUs, load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$SMOKE" = 0 ]; then
  for server in $SERVERS; do run_wrk "$server" 8 1 0; done   # warm-up
fi
: >"$WORK/results"
for round in $(seq "$ROUNDS"); do
  echo "-- round $round"
  if [ "$FRESH" = 1 ] && [ "$round" -gt 1 ]; then
    # A new process per server and round, warmed up again: one process's
    # luck (memory layout, placement) then weighs one round, not the run.
    for server in $SERVERS; do
      kill "${SPID[$server]}" 2>/dev/null || true
      wait "${SPID[$server]}" 2>/dev/null || true
      start_server "$server"
      run_wrk "$server" 8 1 0
    done
  fi
  # Even rounds take the servers in the reverse order (A B C, C B A, ...):
  # a server always measured first (or right after another) would carry
  # whatever that place in the round costs or gains, and a drift of the
  # machine's speed within a round cancels over a pair of rounds.
  order="$SERVERS"
  if [ $((round % 2)) = 0 ]; then
    order="$(tr ' ' '\n' <<<"$SERVERS" | grep . | tac | tr '\n' ' ')"
  fi
  for conns in $CONNECTIONS; do
    for server in $order; do
      run_wrk "$server" "$conns" "$SECONDS_PER_ROUND" 1
    done
  done
done

echo
echo "means over $ROUNDS round(s); ratio = calls/s over the best bare rmcp configuration's (rmcp-nodelay or rmcp-json), p50 ratio = p50 over its lowest p50"
awk '
  { key = $1 " " $2; n[key]++; rps[key] += $3; p50[key] += $4; p99[key] += $5; conns[$2] = 1; servers[$1] = 1 }
  END {
    for (c in conns) {
      best = 0; bestp50 = 0
      for (s in servers) {
        k = s " " c
        if (!(k in n) || (s != "rmcp-nodelay" && s != "rmcp-json")) continue
        if (rps[k] / n[k] > best) best = rps[k] / n[k]
        if (bestp50 == 0 || p50[k] / n[k] < bestp50) bestp50 = p50[k] / n[k]
      }
      for (s in servers) {
        k = s " " c
        if (!(k in n)) continue
        r = rps[k] / n[k]; m50 = p50[k] / n[k]; m99 = p99[k] / n[k]
        printf "%-13s c=%-3s %9.1f calls/s  p50 %8.3f ms  p99 %8.3f ms", s, c, r, m50 / 1000, m99 / 1000
        if (best > 0) printf "  ratio %.3f  p50 ratio %.3f", r / best, m50 / bestp50
        printf "\n"
      }
    }
  }' "$WORK/results" | sort -k2,2 -k1,1
# Per round: each server against bare rmcp's best configuration, then the
# median over rounds: a round in which the machine slowed down moves every
# server of that round, so these ratios are steadier than ratios of means.
# The best configuration (rmcp-nodelay or rmcp-json) is the one with the
# higher median calls/s over the run (for the calls/s ratio) and the one
# with the lower median p50 (for the p50 ratio), and every round is
# compared with that configuration's figure of the same round. The
# stricter second view compares each round with the better of the two
# configurations *in that round*: the lower of two noisy figures is lower
# than either configuration's typical one (a selection bias, about 3
# points of p50 ratio when both are close; BENCHMARKS.md, twenty-fourth
# pass), so it overstates the ratio to any one configuration.
echo
echo "median over rounds of the per-round ratio to bare rmcp's best configuration over the run (calls/s; p50)"
awk "$AWK_MEDIAN"'
  { rps[$7, $1, $2] = $3; p50[$7, $1, $2] = $4; rounds[$7] = 1; conns[$2] = 1; servers[$1] = 1 }
  function med_of(s, c, which,    k, n, l) {
    n = 0; delete l
    for (k in rounds) if ((k, s, c) in rps) { n++; l[n] = which == "rps" ? rps[k, s, c] : p50[k, s, c] }
    return n ? median(l, n) : 0
  }
  END {
    for (c in conns) {
      bestr = ""; bestq = ""
      split("rmcp-nodelay rmcp-json", configs, " ")
      for (i in configs) {
        b = configs[i]
        if (!(b in servers)) continue
        if (bestr == "" || med_of(b, c, "rps") > med_of(bestr, c, "rps")) bestr = b
        if (bestq == "" || med_of(b, c, "p50") < med_of(bestq, c, "p50")) bestq = b
      }
      if (bestr == "") continue
      for (s in servers) {
        if (s ~ /^rmcp-/) continue
        n = 0; delete r; delete q
        for (k in rounds) {
          if (!((k, s, c) in rps) || !((k, bestr, c) in rps) || !((k, bestq, c) in rps)) continue
          n++; r[n] = rps[k, s, c] / rps[k, bestr, c]; q[n] = p50[k, s, c] / p50[k, bestq, c]
        }
        if (n > 0) printf "%-13s c=%-3s median ratio %.3f (rounds %d, min %.3f, max %.3f; against %s)  median p50 ratio %.3f (min %.3f, max %.3f; against %s)\n", s, c, median(r, n), n, r[1], r[n], bestr, median(q, n), q[1], q[n], bestq
      }
    }
  }' "$WORK/results" | sort -k2,2
echo
echo "stricter: median over rounds of the per-round ratio to the better bare rmcp configuration of each round (calls/s; p50)"
awk "$AWK_MEDIAN"'
  { rps[$7, $1, $2] = $3; p50[$7, $1, $2] = $4; rounds[$7] = 1; conns[$2] = 1; servers[$1] = 1 }
  END {
    for (c in conns) for (s in servers) {
      if (s == "rmcp-nodelay" || s == "rmcp-json" || s == "rmcp-default") continue
      n = 0; delete r; delete q
      for (k in rounds) {
        if (!((k, s, c) in rps)) continue
        best = 0; bestp50 = 0
        if ((k, "rmcp-nodelay", c) in rps) { best = rps[k, "rmcp-nodelay", c]; bestp50 = p50[k, "rmcp-nodelay", c] }
        if ((k, "rmcp-json", c) in rps) {
          if (rps[k, "rmcp-json", c] > best) best = rps[k, "rmcp-json", c]
          if (bestp50 == 0 || p50[k, "rmcp-json", c] < bestp50) bestp50 = p50[k, "rmcp-json", c]
        }
        if (best == 0) continue
        n++; r[n] = rps[k, s, c] / best; q[n] = p50[k, s, c] / bestp50
      }
      if (n > 0) printf "%-13s c=%-3s median ratio %.3f (rounds %d, min %.3f, max %.3f)  median p50 ratio %.3f\n", s, c, median(r, n), n, r[1], r[n], median(q, n)
    }
  }' "$WORK/results" | sort -k2,2
# The server's CPU time per call: per round against the same round's
# cheapest bare rmcp configuration, median over rounds. At 64 connections
# this is the inverse view of calls/s, read from the server's own clock.
echo
echo "server CPU per call (user + system, from /proc): median over rounds of the per-round ratio to the same round's cheapest bare rmcp"
awk "$AWK_MEDIAN"'
  NF >= 8 { cpu[$7, $1, $2] = $8; rounds[$7] = 1; conns[$2] = 1; servers[$1] = 1 }
  END {
    for (c in conns) for (s in servers) {
      n = 0; sum = 0; delete r
      for (k in rounds) {
        if (!((k, s, c) in cpu)) continue
        sum += cpu[k, s, c]
        best = 0
        if ((k, "rmcp-nodelay", c) in cpu) best = cpu[k, "rmcp-nodelay", c]
        if ((k, "rmcp-json", c) in cpu && (best == 0 || cpu[k, "rmcp-json", c] < best)) best = cpu[k, "rmcp-json", c]
        n++; r[n] = best > 0 ? cpu[k, s, c] / best : 0
      }
      if (n > 0) printf "%-13s c=%-3s %7.1f us/call (mean)  median ratio %.3f (min %.3f, max %.3f)\n", s, c, sum / n, median(r, n), r[1], r[n]
    }
  }' "$WORK/results" | sort -k2,2 -k1,1
# With the allocator control in the run: each of our servers against rmcp
# alone with the same allocator, per round, median over rounds (the layer's
# own cost, the allocator taken out of the ratio).
if grep -q '^rmcp-json-mimalloc ' "$WORK/results"; then
  echo
  echo "against rmcp-json-mimalloc (same allocator), median over rounds of the per-round ratio (calls/s; p50; CPU per call)"
  awk "$AWK_MEDIAN"'
    { rps[$7, $1, $2] = $3; p50[$7, $1, $2] = $4; cpu[$7, $1, $2] = $8; rounds[$7] = 1; conns[$2] = 1; servers[$1] = 1 }
    END {
      for (c in conns) for (s in servers) {
        if (s !~ /^ours/) continue
        n = 0; delete r; delete q; delete u
        for (k in rounds) {
          if (!((k, s, c) in rps) || !((k, "rmcp-json-mimalloc", c) in rps)) continue
          n++
          r[n] = rps[k, s, c] / rps[k, "rmcp-json-mimalloc", c]
          q[n] = p50[k, s, c] / p50[k, "rmcp-json-mimalloc", c]
          u[n] = cpu[k, "rmcp-json-mimalloc", c] > 0 ? cpu[k, s, c] / cpu[k, "rmcp-json-mimalloc", c] : 0
        }
        if (n > 0) printf "%-13s c=%-3s calls/s ratio %.3f  p50 ratio %.3f  CPU per call ratio %.3f (rounds %d)\n", s, c, median(r, n), median(q, n), median(u, n), n
      }
    }' "$WORK/results" | sort -k2,2
fi
echo "load average at end $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$FAILED" != 0 ]; then
  echo "wrk-bench: FAILED (bad answers or socket errors, see above)" >&2
  exit 1
fi
