# Sourced by scripts/wrk-bench.sh and scripts/callgrind-per-call.sh: a
# scratch folder ($WORK), the processes started into $PIDS killed (and the
# folder removed on exit, kept with BENCH_KEEP=1 to read the profiles), a
# free loopback port, and waiting for a line.
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
