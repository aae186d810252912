# Sourced by scripts/wrk-bench.sh, scripts/callgrind-per-call.sh and
# scripts/syscalls-per-call.sh: a
# scratch folder ($WORK), the processes started into $PIDS killed (and the
# folder removed on exit, kept with BENCH_KEEP=1 to read the profiles), a
# free loopback port, waiting for a line, the token issuer and a legacy
# session.
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until $1 (a file) has a line matching $2, or fails when process $3
# exits or after $WAIT_SECONDS (60 by default).
wait_for() {
  for _ in $(seq "$(( ${WAIT_SECONDS:-60} * 10 ))"); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || break
    sleep 0.1
  done
  echo "$(basename "$0"): timed out waiting for '$2' in $1:" >&2
  cat "$1" >&2
  return 1
}

# Starts examples/bench_issuer ($BIN/bench_issuer) for algorithm $1 and the
# audiences that follow, its output in $WORK/issuer.out; sets $ISSUER. Its
# stdin is a pipe from a sleeping process we own, so it exits when we kill
# that process (or on its own when the pipe closes).
start_issuer() {
  local alg="$1"
  shift
  local audiences=()
  for aud in "$@"; do audiences+=(--audience "$aud"); done
  mkfifo "$WORK/issuer.in"
  sleep infinity >"$WORK/issuer.in" &
  PIDS+=($!)
  "$BIN/bench_issuer" --alg "$alg" "${audiences[@]}" <"$WORK/issuer.in" >"$WORK/issuer.out" 2>&1 &
  PIDS+=($!)
  wait_for "$WORK/issuer.out" '^ready' "$!"
  ISSUER="$(awk '$1 == "issuer" {print $2}' "$WORK/issuer.out")"
}

# The issuer's token for audience $1.
issuer_token() {
  awk -v a="$1" '$1 == "token" && $2 == a {print $3}' "$WORK/issuer.out"
}

# Opens one initialized 2025-11-25 session at URL $1 with token $2 (client
# name $3) and prints its Mcp-Session-Id; fails when the server gives none.
open_legacy_session() {
  local url="$1" token="$2" client="$3" headers sid
  headers="$(mktemp "$WORK/init.XXXXXX")"
  curl -sS -o /dev/null -D "$headers" -X POST "$url" \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -H "Authorization: Bearer $token" \
    -d '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"'"$client"'","version":"1"}}}'
  sid="$(awk 'tolower($1) == "mcp-session-id:" {print $2}' "$headers" | tr -d '\r')"
  if [ -z "$sid" ]; then
    echo "$(basename "$0"): $url gave no Mcp-Session-Id" >&2
    cat "$headers" >&2
    return 1
  fi
  curl -sS -o /dev/null -X POST "$url" \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -H "Authorization: Bearer $token" -H "Mcp-Session-Id: $sid" -H "MCP-Protocol-Version: 2025-11-25" \
    -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
  printf '%s\n' "$sid"
}
