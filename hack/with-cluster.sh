#!/usr/bin/env bash
# Runs a command against a local control plane: starts it first, deletes it afterwards
# (KEEP_CLUSTER=1 keeps it, e.g. to look at a failure).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export CLUSTER_NAME=${CLUSTER_NAME:-platform-test}
CACHE=${PLATFORM_CACHE:-$HOME/.cache/platform-operator}
"$here/cluster.sh" up
cleanup() {
  if [ "${KEEP_CLUSTER:-0}" = 1 ]; then
    echo "[cluster] kept: export KUBECONFIG=$CACHE/kubeconfig-$CLUSTER_NAME" >&2
  else
    "$here/cluster.sh" down
  fi
}
trap cleanup EXIT
export KUBECONFIG="$CACHE/kubeconfig-$CLUSTER_NAME"
PLATFORM_AUDIT_LOG=$("$here/cluster.sh" audit-log)
export PLATFORM_AUDIT_LOG
PATH="$CACHE/bin/current:$PATH" "$@"
