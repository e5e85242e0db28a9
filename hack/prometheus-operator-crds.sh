#!/usr/bin/env bash
# Prints a folder holding the Prometheus Operator's CRDs (monitoring.coreos.com_*.yaml) of
# PROMETHEUS_OPERATOR_VERSION (hack/versions.env), fetched once into the cache. Machines here
# reach no release download site, but the Go module proxy serves the operator's module, whose zip
# carries the generated CRDs in example/prometheus-operator-crd/.
#
#   hack/prometheus-operator-crds.sh        # -> $PLATFORM_CACHE/prometheus-operator-crds/<version>
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
CACHE=${PLATFORM_CACHE:-$HOME/.cache/platform-operator}
MODULE=github.com/prometheus-operator/prometheus-operator
dest=$CACHE/prometheus-operator-crds/$PROMETHEUS_OPERATOR_VERSION
LOG_TAG=prometheus-operator-crds
# shellcheck source=hack/lib.sh
. "$here/lib.sh"

if [ ! -f "$dest/monitoring.coreos.com_servicemonitors.yaml" ]; then
  command -v go >/dev/null || { log "go is needed to fetch $MODULE@$PROMETHEUS_OPERATOR_VERSION from the Go module proxy"; exit 1; }
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  log "$PROMETHEUS_OPERATOR_VERSION: downloading the module (Go module proxy)"
  src=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "$MODULE@$PROMETHEUS_OPERATOR_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  if [ -z "$src" ] || [ ! -d "$src/example/prometheus-operator-crd" ]; then
    log "go mod download $MODULE@$PROMETHEUS_OPERATOR_VERSION gave no example/prometheus-operator-crd"
    exit 1
  fi
  mkdir -p "$dest.tmp"
  cp "$src"/example/prometheus-operator-crd/monitoring.coreos.com_*.yaml "$dest.tmp/"
  chmod u+w "$dest.tmp"/*.yaml
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
  log "$PROMETHEUS_OPERATOR_VERSION: CRDs in $dest"
fi
echo "$dest"
