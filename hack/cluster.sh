#!/usr/bin/env bash
# The local control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok
# (simulated nodes and pods) run as local processes by kwokctl's binary runtime.
#
#   hack/cluster.sh up        create (or reuse) the cluster, write its kubeconfig, wait until it answers
#   hack/cluster.sh down      delete it
#   hack/cluster.sh restart   stop every component and start them again (the e2e restart test)
#   hack/cluster.sh env       print the shell exports for its kubeconfig and tools
#   hack/cluster.sh audit-log print the path of the API server's audit log
#
# Binaries: where kwokctl's own release downloads are reachable they are used (no build); where
# they are not (these offline machines), everything is built from source through the Go module
# proxy by hack/build-cluster-tools.sh. PLATFORM_CLUSTER_SOURCE=auto|download|build overrides it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

CACHE=${PLATFORM_CACHE:-$HOME/.cache/platform-operator}
NAME=${CLUSTER_NAME:-platform}
KUBECONFIG_FILE=${PLATFORM_KUBECONFIG:-$CACHE/kubeconfig-$NAME}
SOURCE=${PLATFORM_CLUSTER_SOURCE:-auto}
export KWOK_KUBE_VERSION=$KUBE_VERSION

LOG_TAG=cluster
# shellcheck source=hack/lib.sh
. "$here/lib.sh"

tools() {
  # kwokctl and helm are needed in any case; they come from the Go module proxy.
  "$here/build-cluster-tools.sh" kwok helm | tail -n 1
}

downloads_reachable() {
  local url
  url=$("$BIN/kwokctl" create cluster --help 2>/dev/null | sed -n 's/.*--etcd-binary.*(default "\([^"#]*\).*/\1/p')
  [ -n "$url" ] && curl -fsSIL --max-time 8 -o /dev/null "$url" 2>/dev/null
}

up() {
  BIN=$(tools)
  export PATH="$BIN:$PATH"
  if kwokctl get clusters 2>/dev/null | grep -qx "$NAME"; then
    log "cluster $NAME exists; starting it if stopped"
    kwokctl start cluster --name "$NAME" >&2 || true
    started_existing=1
  else
    local flags=()
    if [ "$SOURCE" = build ] || { [ "$SOURCE" = auto ] && ! downloads_reachable; }; then
      log "release downloads unreachable: using binaries built from source (first time: 15-25 minutes)"
      BIN=$("$here/build-cluster-tools.sh" | tail -n 1)
      flags=(
        --kube-apiserver-binary "$BIN/kube-apiserver"
        --kube-controller-manager-binary "$BIN/kube-controller-manager"
        --kube-scheduler-binary "$BIN/kube-scheduler"
        --kwok-controller-binary "$BIN/kwok"
        --etcd-binary "$BIN/etcd"
      )
    else
      log "using kwokctl's release downloads for $KUBE_VERSION"
    fi
    log "creating cluster $NAME (kwokctl, binary runtime)"
    kwokctl create cluster --name "$NAME" --runtime binary --kubeconfig "$KUBECONFIG_FILE" \
      --kube-audit-policy "$here/audit-policy.yaml" --config "$here/kwokctl-config.yaml" --wait 3m "${flags[@]}" >&2
  fi
  kwokctl get kubeconfig --name "$NAME" > "$KUBECONFIG_FILE.tmp" && mv "$KUBECONFIG_FILE.tmp" "$KUBECONFIG_FILE"
  export KUBECONFIG=$KUBECONFIG_FILE
  local kubectl; kubectl=$(command -v kubectl)
  log "waiting for the API server"
  for _ in $(seq 1 120); do
    "$kubectl" get --raw /readyz >/dev/null 2>&1 && break
    sleep 1
  done
  "$kubectl" get --raw /readyz >/dev/null
  [ "${started_existing:-0}" = 1 ] && release_node_leases
  "$kubectl" apply -f "$here/kwok-node.yaml" >/dev/null
  # apply leaves an existing node's status alone: give it what kwok-node.yaml added since.
  local node
  for node in kwok-node-0 kwok-node-1; do
    "$kubectl" patch node "$node" --subresource=status --type=merge >/dev/null \
      -p '{"status":{"capacity":{"ephemeral-storage":"1Ti"},"allocatable":{"ephemeral-storage":"1Ti"}}}'
  done
  log "ready: export KUBECONFIG=$KUBECONFIG_FILE"
}

# kwok's node leases outlive a restart (200 s) and a restarted kwok controller will not take over
# a lease held by its predecessor until then: its pods stay Pending. Deleting them lets it
# recreate them at once.
release_node_leases() {
  KUBECONFIG=$KUBECONFIG_FILE kubectl delete lease -n kube-node-lease --all >/dev/null 2>&1 || true
}

restart() {
  BIN=$(tools)
  export PATH="$BIN:$PATH"
  log "stopping cluster $NAME"
  kwokctl stop cluster --name "$NAME" >&2
  sleep "${RESTART_PAUSE:-5}"
  log "starting cluster $NAME"
  kwokctl start cluster --name "$NAME" >&2
  for _ in $(seq 1 120); do
    KUBECONFIG=$KUBECONFIG_FILE kubectl get --raw /readyz >/dev/null 2>&1 && break
    sleep 1
  done
  release_node_leases
  log "restarted"
}

down() {
  BIN=$(tools)
  "$BIN/kwokctl" delete cluster --name "$NAME" >&2 || true
  rm -f "$KUBECONFIG_FILE"
}

case "${1:-}" in
  up) up ;;
  restart) restart ;;
  down) down ;;
  env) echo "export KUBECONFIG=$KUBECONFIG_FILE PATH=$CACHE/bin/current:\$PATH" ;;
  audit-log) echo "${KWOK_HOME:-$HOME/.kwok}/clusters/$NAME/logs/audit.log" ;;
  *) echo "usage: $0 up|down|restart|env|audit-log" >&2; exit 2 ;;
esac
