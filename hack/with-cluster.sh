#!/usr/bin/env bash
# Runs a command against a local control plane and local RabbitMQ, Redis, PostgreSQL and FerretDB (the
# MongoDB-wire server of catalog-data's tests): starts them first,
# deletes them afterwards (KEEP_CLUSTER=1 keeps them, e.g. to look at a failure). The command sees
# KUBECONFIG, PLATFORM_AUDIT_LOG and the PLATFORM_* settings of the servers.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export CLUSTER_NAME=${CLUSTER_NAME:-platform-test}
export BACKENDS_NAME=${BACKENDS_NAME:-$CLUSTER_NAME}
CACHE=${PLATFORM_CACHE:-$HOME/.cache/platform-operator}
cleanup() {
  if [ "${KEEP_CLUSTER:-0}" = 1 ]; then
    echo "[env] kept: export KUBECONFIG=$CACHE/kubeconfig-$CLUSTER_NAME; eval \"\$(BACKENDS_NAME=$BACKENDS_NAME hack/backends.sh env)\"" >&2
  else
    "$here/cluster.sh" down || true
    "$here/postgres.sh" down || true
    "$here/ferretdb.sh" down || true
    "$here/backends.sh" down || true
  fi
}
trap cleanup EXIT
"$here/backends.sh" up
"$here/postgres.sh" up
"$here/ferretdb.sh" up
"$here/cluster.sh" up
eval "$("$here/backends.sh" env)"
eval "$("$here/postgres.sh" env)"
eval "$("$here/ferretdb.sh" env)"
export KUBECONFIG="$CACHE/kubeconfig-$CLUSTER_NAME"
PLATFORM_AUDIT_LOG=$("$here/cluster.sh" audit-log)
export PLATFORM_AUDIT_LOG
PATH="$CACHE/bin/current:$PATH" "$@"
