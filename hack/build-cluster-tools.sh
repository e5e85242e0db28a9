#!/usr/bin/env bash
# Builds the local control plane's binaries from source through the Go module proxy.
#
# These machines reach no release download site, so every binary comes from `go build` at the
# version pinned in hack/versions.env. Results are cached outside the checkout, one folder per
# tool and version, so a warm machine pays once and a version bump rebuilds only what changed.
#
# Usage: hack/build-cluster-tools.sh [tool ...]   (default: all)
# Prints the bin directory on the last line of stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

LOG_TAG=build
# shellcheck source=hack/lib.sh
. "$here/lib.sh"
go_build_env build
mkdir -p "$BIN" "$WORK"

# The control plane and kubectl (hack/lib.sh); hack/offline/kind-node-image.sh adds the node's into the same folder.
build_kubernetes() { go_build_kubernetes kube-apiserver kube-controller-manager kube-scheduler kubectl; }

build_etcd() { go_build_etcd "$ETCD_VERSION" etcd; }


build_kwok() { go_install kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl; }
# helm's own Makefile stamps the Kubernetes version of its client-go into the binary: the default
# .Capabilities.KubeVersion of `helm template` and `helm lint`. A plain go install leaves v1.20,
# which the chart's kubeVersion (>=1.29) refuses. The .k8s-version file marks a binary built so
# (one built before it is rebuilt once).
build_helm() {
  local out="$BIN/helm-$HELM_VERSION" gomod minor
  [ -f "$out/.k8s-version" ] || rm -f "$out/helm"
  gomod=$(cd "$WORK" && go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  minor=$(awk '$1 == "k8s.io/client-go" {print $2}' "$gomod" | cut -d. -f2)
  local ld="" pkg
  for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    ld+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$minor"
  done
  EXTRA_LDFLAGS="$ld -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    go_install helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm
  echo "v1.$minor" > "$out/.k8s-version"
}
# The linters of `make lint`: small builds (a minute or two each when cold), cached like the rest.
build_helm-docs() { go_install helm-docs "$HELM_DOCS_VERSION" github.com/norwoodj/helm-docs/cmd/helm-docs; }
build_kube-score() { go_install kube-score "$KUBE_SCORE_VERSION" github.com/zegl/kube-score/cmd/kube-score; }

tools=("$@"); [ ${#tools[@]} -gt 0 ] || tools=(etcd kwok helm helm-docs kube-score kubernetes)
for t in "${tools[@]}"; do "build_$t"; done

# One folder on PATH for the Makefile and tests: symlinks to the pinned versions.
link="$BIN/current"; mkdir -p "$link"
for f in "$BIN/kube-$KUBE_VERSION"/* "$BIN/etcd-$ETCD_VERSION"/* "$BIN/kwok-$KWOK_VERSION"/* "$BIN/helm-$HELM_VERSION"/* \
         "$BIN/helm-docs-$HELM_DOCS_VERSION"/* "$BIN/kube-score-$KUBE_SCORE_VERSION"/*; do
  [ -x "$f" ] && ln -sf "$f" "$link/$(basename "$f")"
done
echo "$link"
