#!/usr/bin/env bash
# Line coverage of the library (examples, benchmarks, tests, fuzz targets and
# the interop rig excluded), measured by cargo-tarpaulin 0.37.5 with the ptrace
# engine; fails below the floor (95 % unless COVERAGE_FLOOR says otherwise).
#
#   scripts/coverage.sh                 # what .ci/run runs
#   COVERAGE_GROUP=4 scripts/coverage.sh  # test binaries built at a time
#
# Why in groups: tarpaulin builds every test binary with full debug info and
# dead code kept, about 300 MB each; the 48 integration test binaries took
# 15 GB together, and a CI run on a shared disk failed with "No space left on
# device". Here the library's unit tests run first, then the integration
# tests a few binaries at a time; each group's binaries are deleted once it has
# run, so the disk holds the dependencies (about 1.5 GB) and one group.
# Each group writes an lcov report. The figure is computed over the union of
# their lines: a line counts as covered when any group covered it, which is
# what one tarpaulin run over all the binaries reports (checked on 2026-12-04:
# a run of three targets at once gave 6,514 of 8,976 lines, the merge of the
# same targets run in two groups 6,517 of 8,976, the difference being
# timing-dependent lines). The merge is a few lines of awk (lcov's `-a` does
# the same, but would add a Debian package and Perl to CI for one union).
#
# Some tests run the protected_server and quickstart examples from beside the
# test binaries: build the examples first (`cargo build --examples`); they are
# copied into the coverage build's directory here.
set -euo pipefail
cd "$(dirname "$0")/.."

FLOOR="${COVERAGE_FLOOR:-95}"
GROUP="${COVERAGE_GROUP:-8}"
TARGET="${CARGO_TARGET_DIR:-target}"
TDIR="$TARGET/tarpaulin"
REPORTS="$TARGET/coverage-reports"

if ! cargo tarpaulin --version 2>/dev/null | grep -q '0\.37\.5'; then
  cargo install cargo-tarpaulin --version 0.37.5 --locked
fi

rm -rf "$REPORTS"
mkdir -p "$TDIR/debug/examples" "$REPORTS"
for example in protected_server quickstart bench_issuer; do
  if [ -x "$TARGET/debug/examples/$example" ]; then
    cp "$TARGET/debug/examples/$example" "$TDIR/debug/examples/"
  else
    echo "coverage: $TARGET/debug/examples/$example is missing (run cargo build --examples first)" >&2
    exit 1
  fi
done

# The integration test targets, as cargo finds them: tests/NAME.rs and
# tests/NAME/main.rs.
tests=()
for f in tests/*.rs tests/*/main.rs; do
  [ -e "$f" ] || continue
  case "$f" in
    */main.rs) name="$(basename "$(dirname "$f")")" ;;
    *) name="$(basename "$f" .rs)" ;;
  esac
  tests+=("$name")
done

status=0
run_group() {
  local label="$1"
  shift
  printf '\n--- coverage group %s: %s\n' "$label" "$*"
  cargo tarpaulin --engine ptrace --skip-clean --no-fail-fast --target-dir "$TDIR" \
    --timeout 300 --exclude-files 'examples/*' 'benches/*' 'tests/*' 'fuzz/*' 'interop/*' \
    --out Lcov --output-dir "$REPORTS/$label" "$@" || status=$?
}

run_group lib --lib
# The unit-test binary is not needed again.
remove_binaries() { find "$TDIR/debug/deps" -maxdepth 1 -type f -name "$1-*" -perm -u+x -delete; }
remove_binaries mcp_oauth2
n=0
for ((i = 0; i < ${#tests[@]}; i += GROUP)); do
  n=$((n + 1))
  group=("${tests[@]:i:GROUP}")
  args=()
  for t in "${group[@]}"; do args+=(--test "$t"); done
  run_group "tests-$n" "${args[@]}"
  # A test binary is the executable NAME-HASH (dependencies are libNAME-*.rlib;
  # the small NAME-HASH.d files, which a dependency of the same name could
  # also have, stay).
  for t in "${group[@]}"; do remove_binaries "$t"; done
  printf 'coverage build after group %s: %s\n' "$n" "$(du -sh "$TDIR" 2>/dev/null | cut -f1)"
done

# One line per source line: covered when any group's report has a hit for it.
figure="$(cat "$REPORTS"/*/lcov.info | awk '
  /^SF:/ { file = substr($0, 4); next }
  /^DA:/ {
    split(substr($0, 4), f, ",")
    key = file SUBSEP f[1]
    seen[key] = 1
    if (f[2] + 0 > 0) hit[key] = 1
  }
  END {
    for (key in seen) { total++; if (key in hit) covered++ }
    if (total == 0) { print "0 0 0.00"; exit }
    printf "%d %d %.2f\n", covered, total, 100 * covered / total
  }')"
read -r covered total percent <<<"$figure"

# Per-file figures, lowest first, for where the missing lines are.
printf '\nfiles below 90 %% (covered/lines):\n'
cat "$REPORTS"/*/lcov.info | awk '
  /^SF:/ { file = substr($0, 4); next }
  /^DA:/ { split(substr($0, 4), f, ","); key = file SUBSEP f[1]; seen[key] = file; if (f[2] + 0 > 0) hit[key] = 1 }
  END {
    for (key in seen) { t[seen[key]]++; if (key in hit) c[seen[key]]++ }
    for (file in t) if (c[file] < 0.9 * t[file]) printf "  %s: %d/%d\n", file, c[file], t[file]
  }' | sort
printf '\nline coverage: %s%% coverage, %s/%s lines covered (floor %s %%)\n' "$percent" "$covered" "$total" "$FLOOR"
rm -rf "$TDIR"

if [ "$status" -ne 0 ]; then
  echo "coverage: a test failed under tarpaulin (exit $status)" >&2
  exit "$status"
fi
if awk -v p="$percent" -v f="$FLOOR" 'BEGIN { exit !(p < f) }'; then
  echo "coverage: ${percent} % is below the floor of ${FLOOR} %" >&2
  exit 1
fi
