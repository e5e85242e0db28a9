#!/usr/bin/env bash
# Runs every pytest suite that needs the real servers, one pytest per suite (each service has its
# own conftest and package), and ends with one summary line over all of them. Called by
# `make test-e2e` inside hack/with-cluster.sh, which provides the cluster and the servers.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
suites=("tests/integration tests/e2e")
for dir in services/*/tests; do suites+=("$dir"); done
[ -d tests/flow ] && suites+=("tests/flow")
passed=0 failed=0 skipped=0 failing=()
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for suite in "${suites[@]}"; do
  printf '\n=== pytest %s\n' "$suite"
  # shellcheck disable=SC2086 # the suite string is a list of paths on purpose
  uv run --locked --all-packages pytest $suite -q -p no:cacheprovider 2>&1 | tee "$log"
  out=$(tail -n 1 "$log")
  count() { grep -oE "[0-9]+ ($1)" <<<"$out" | awk '{n += $1} END {print n + 0}'; }
  p=$(count passed); f=$(count 'failed|errors?'); s=$(count skipped)
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
  if [ "$f" != 0 ] || [ "$p" = 0 ]; then failing+=("$suite"); fi
done
echo
[ ${#failing[@]} -eq 0 ] || echo "failing suites: ${failing[*]}"
echo "total: $passed passed, $failed failed, $skipped skipped"
[ ${#failing[@]} -eq 0 ]
