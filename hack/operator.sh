#!/usr/bin/env bash
# Starts or stops the operator as a background process against a local cluster (for `make demo`).
#   hack/operator.sh start|stop CLUSTER_NAME
set -euo pipefail
CACHE=${PLATFORM_CACHE:-$HOME/.cache/platform-operator}
name=${2:-platform}
pidfile="$CACHE/operator-$name.pid"
logfile="$CACHE/operator-$name.log"
case "${1:-}" in
  start)
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "[operator] already running (pid $(cat "$pidfile"))"; exit 0
    fi
    KUBECONFIG="$CACHE/kubeconfig-$name" nohup uv run --locked python -m platform_operator >"$logfile" 2>&1 &
    echo $! > "$pidfile"
    echo "[operator] started (pid $!)"
    ;;
  stop)
    if [ -f "$pidfile" ]; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
      echo "[operator] stopped"
    fi
    ;;
  *) echo "usage: $0 start|stop NAME" >&2; exit 2 ;;
esac
