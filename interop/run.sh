#!/usr/bin/env bash
# The end-to-end interop rig (issue 8): real MCP clients and a real OpenID
# provider against the reference server, on loopback. See interop/README.md.
#
#   interop/run.sh [--only SUBSTRING]...
#
# Installs everything from the registries (npm ci, pip install -r, cargo
# build), then runs rig/run.mjs under Node 22, which prints `PASS name` /
# `FAIL name: reason` / `SKIP name: reason` per scenario and a closing
# `N passed, N failed`. Exits non-zero on any failure. Every process it starts
# is killed on the way out.
#
# Environment: RIG_TIMEOUT (seconds for the scenarios, default 480),
# RIG_SKIP_INSTALL=1 (reuse what is installed), RIG_INSTALL_ONLY=1 (only the
# npm and pip installs, no cargo build and no scenarios: what
# sdk-bench/README.md needs), RIG_VERBOSE=1 (timings),
# RIG_INTEROP_TARGET (target dir of the rig's cargo workspace, default
# target/interop).

set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
cd "$HERE"

step() { printf '[interop] %s\n' "$*" >&2; }
elapsed() { echo $(( $(date +%s) - $1 ))s; }
die() {
	echo "FAIL rig install: $*"
	echo "0 passed, 1 failed"
	exit 1
}

start_all=$(date +%s)
# The rig's own cargo workspace builds here, apart from the main build.
export RIG_INTEROP_TARGET=${RIG_INTEROP_TARGET:-$REPO/target/interop}

# The orchestrator runs as its own process group (job control), so the trap
# can kill it and everything it started, whatever happens.
rig_pid=
install_pids=
cleanup() {
	trap - EXIT INT TERM
	for pid in $install_pids; do
		kill -TERM -- "-$pid" 2>/dev/null || true
	done
	if [ -n "$rig_pid" ]; then
		kill -TERM -- "-$rig_pid" 2>/dev/null || true
	fi
	if [ -f "$HERE/logs/pgids" ]; then
		while read -r pgid; do
			[ -n "$pgid" ] && kill -KILL -- "-$pgid" 2>/dev/null || true
		done <"$HERE/logs/pgids"
	fi
	if [ -n "$rig_pid" ]; then
		kill -KILL -- "-$rig_pid" 2>/dev/null || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

install_js() {
	# npm: the provider, the TypeScript SDK, the Inspector, the conformance
	# suite and Node 22 itself (the `node` package), pinned by package-lock.json.
	cmp -s package-lock.json node_modules/.rig-installed 2>/dev/null && return 0
	timeout 600 npm ci --no-audit --no-fund --loglevel=error || return 1
	cp package-lock.json node_modules/.rig-installed
}

install_py() {
	# Python: the `mcp` SDK with exact versions in a venv under interop/.
	cmp -s requirements.txt .venv/.rig-installed 2>/dev/null && return 0
	rm -rf .venv
	timeout 120 python3 -m venv .venv || return 1
	timeout 600 .venv/bin/pip install --quiet --disable-pip-version-check --no-deps -r requirements.txt || return 1
	cp requirements.txt .venv/.rig-installed
}

build_rust() {
	# The reference server (main build), then the rig's rmcp client and
	# conformance server (their own workspace and target directory).
	(cd "$REPO" && timeout 1200 cargo build --quiet --example protected_server) || return 1
	CARGO_TARGET_DIR="$RIG_INTEROP_TARGET" timeout 1200 \
		cargo build --quiet --locked --manifest-path "$HERE/Cargo.toml" --workspace
}

if [ "${RIG_INSTALL_ONLY:-0}" = 1 ]; then
	command -v npm >/dev/null || die "node and npm are needed to install the rig"
	command -v python3 >/dev/null || die "python3 is needed for the Python SDK"
	mkdir -p logs
	step "npm ci and pip install only (logs/install-*.log)"
	install_js >logs/install-npm.log 2>&1 || die "npm ci failed: $(tail -n 5 logs/install-npm.log | tr '\n' ' ')"
	install_py >logs/install-pip.log 2>&1 || die "pip install failed: $(tail -n 5 logs/install-pip.log | tr '\n' ' ')"
	step "installed in $(elapsed "$start_all")"
	exit 0
fi

if [ "${RIG_SKIP_INSTALL:-0}" != 1 ]; then
	command -v npm >/dev/null || die "node and npm are needed to install the rig"
	command -v python3 >/dev/null || die "python3 is needed for the Python SDK client"
	command -v openssl >/dev/null || die "openssl is needed for the CIMD host's certificate"
	mkdir -p logs
	# The downloads run while cargo compiles; their output goes to logs/.
	step "npm ci and pip install (logs/install-*.log), cargo build"
	set -m
	install_js >logs/install-npm.log 2>&1 &
	js_pid=$!
	install_py >logs/install-pip.log 2>&1 &
	py_pid=$!
	set +m
	install_pids="$js_pid $py_pid"
	t=$(date +%s)
	build_rust >&2 || die "cargo build failed (see above)"
	step "cargo done in $(elapsed "$t")"
	wait "$js_pid" || die "npm ci failed: $(tail -n 5 logs/install-npm.log | tr '\n' ' ')"
	wait "$py_pid" || die "pip install failed: $(tail -n 5 logs/install-pip.log | tr '\n' ' ')"
	install_pids=
	step "npm and pip done after $(elapsed "$t")"
fi

NODE22="$HERE/node_modules/node/bin/node"
[ -x "$NODE22" ] || die "Node 22 is not installed ($NODE22)"
case "$("$NODE22" --version)" in
v22.*) ;;
*) die "node_modules/node is not Node 22: $("$NODE22" --version)" ;;
esac

step "running the scenarios (install took $(elapsed "$start_all"))"
set -m
timeout --kill-after=10 "${RIG_TIMEOUT:-480}" "$NODE22" rig/run.mjs "$@" &
rig_pid=$!
set +m
status=0
wait "$rig_pid" || status=$?
if [ "$status" = 137 ]; then
	# Killed outright: the orchestrator could not print its own summary.
	echo "FAIL rig: the scenarios did not finish within ${RIG_TIMEOUT:-480}s"
	echo "0 passed, 1 failed"
fi
step "finished in $(elapsed "$start_all")"
exit "$status"
