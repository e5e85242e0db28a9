#!/usr/bin/env bash
# kube-score (hack/versions.env: KUBE_SCORE_VERSION) on what reaches a cluster: the chart, rendered
# as a production install renders it, and the children the operator's builders make for samples/.
#
# Usage: hack/kube-score.sh [chart|children|all]   (default: all; kube-score and helm on PATH)
#
# Checks argued away (README, "kube-score") are IGNORED below, nothing else. The chart must score no
# CRITICAL. The children's CRITICALs must be exactly those in hack/kube-score-open.txt: the findings
# still open in the builders. A new one fails, and so does one listed that no longer appears (take
# it off the list), so the list only shrinks.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/versions.env

kube_minor=${KUBE_VERSION%.*}
IGNORED=(
  container-image-pull-policy          # images are pinned by tag; Always needs a registry (kind loads them)
  deployment-has-host-podantiaffinity  # spread is topologySpreadConstraints, which kube-score does not read
)
score() {
  local ignore; ignore=$(IFS=,; echo "${IGNORED[*]}")
  # No CPU limit, on purpose (README): a throttled pod answers probes late.
  kube-score score --output-format ci --kubernetes-version "$kube_minor" \
    --ignore-container-cpu-limit --ignore-test "$ignore" -
}

chart() {
  # Defaults, and a production install with every monitoring object and outside backends. The
  # in-cluster RabbitMQ, Redis and PostgreSQL (development and kind only, under their images' own
  # users) and the `helm test` pod (a one-shot client) are not scored.
  local set rc=0 out
  for set in "" \
    "--set metrics.serviceMonitor.enabled=true --set metrics.prometheusRule.enabled=true
     --set metrics.dashboard.enabled=true --set rabbitmq.managementUrl=http://rabbitmq.example:15672
     --set rabbitmq.host=rabbitmq.example --set redis.host=redis.example --set postgres.host=postgres.example"; do
    # shellcheck disable=SC2086  # the value set is split on purpose
    out=$(helm template kube-score charts/ --skip-tests $set | score) || rc=1
    grep -E '^\[(CRITICAL|WARNING)\]' <<<"$out" || true
  done
  if [ $rc = 0 ]; then echo "[kube-score] chart: no CRITICAL"; else echo "[kube-score] chart: CRITICAL findings above" >&2; fi
  return $rc
}

children() {
  local rendered out found
  rendered=$(uv run --locked --all-packages -q python hack/render_children.py samples/*.yaml)
  out=$(score <<<"$rendered") || true
  grep -E '^\[WARNING\]' <<<"$out" || true
  found=$(grep -E '^\[CRITICAL\]' <<<"$out" | sort || true)
  local open; open=$(grep -vE '^\s*(#|$)' hack/kube-score-open.txt | sort || true)
  local new stale
  new=$(comm -23 <(echo "$found") <(echo "$open") | sed '/^$/d')
  stale=$(comm -13 <(echo "$found") <(echo "$open") | sed '/^$/d')
  local n; n=$(sed '/^$/d' <<<"$found" | wc -l)
  if [ -z "$new$stale" ]; then
    if [ "$n" = 0 ]; then echo "[kube-score] children of samples/: no CRITICAL"
    else echo "[kube-score] children of samples/: $n CRITICAL, all listed as open in hack/kube-score-open.txt"; fi
  fi
  if [ -n "$new" ]; then printf '[kube-score] children: new CRITICAL (fix it, or argue it away in README):\n%s\n' "$new" >&2; fi
  if [ -n "$stale" ]; then printf '[kube-score] children: fixed, take these off hack/kube-score-open.txt:\n%s\n' "$stale" >&2; fi
  [ -z "$new$stale" ]
}

case "${1:-all}" in
  chart) chart ;;
  children) children ;;
  all) rc=0; chart || rc=1; children || rc=1; exit $rc ;;
  *) echo "usage: $0 [chart|children|all]" >&2; exit 2 ;;
esac
