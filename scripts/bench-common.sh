# Sourced by scripts/wrk-bench.sh and scripts/callgrind-per-call.sh: a
# scratch folder ($WORK), the processes started into $PIDS killed (and the
# folder removed) on exit, and a free loopback port.
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
