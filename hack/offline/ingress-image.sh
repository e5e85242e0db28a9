#!/usr/bin/env bash
# The ingress controller of the offline kind path: Traefik v3, built from the Go module proxy, as a
# docker image for `kind load docker-image` and hack/offline/kind-node/ingress-traefik.yaml.
#
# Why: on laptops hack/kind.sh installs ingress-nginx (its kind manifest), but the project's build
# machines reach package registries only (Go module proxy, PyPI, Debian, npm), no container
# registry, and ingress-nginx's controller image (nginx with OpenResty's Lua modules) cannot be built
# there. Traefik is one static Go binary, and since v3.5 it has a provider that reads what the
# operator writes for ingress-nginx: Ingresses of class `nginx` and their
# nginx.ingress.kubernetes.io/* annotations (limit-rps, limit-burst-multiplier, enable-cors,
# cors-allow-origin, proxy-body-size, ssl-redirect, force-ssl-redirect; see
# operator/platform_operator/builders.py ingress_annotations).
#
# Build: `go install github.com/traefik/traefik/v3/cmd/traefik@V` is refused (its go.mod has replace
# directives), so a small module of our own requires traefik and copies its replace and exclude
# lines. One of them is relative: github.com/traefik/traefik/dynamic/ext => ./pkg/config/dynamic/ext,
# a nested module (extension points, empty structs in the open-source build) that neither the
# traefik module zip nor the proxy carries; this script writes the same empty types as a local
# module and points the replace there. CGO_ENABLED=0, -trimpath; the version goes in through
# -ldflags (github.com/traefik/traefik/v3/pkg/version.Version, without the leading v, as upstream's
# release builds set it). The web dashboard's assets are not built (webui/static stays the module's
# placeholder); the API and the dashboard are off in the manifest anyway.
#
# Image: a minimal root filesystem, `docker import`ed: /usr/local/bin/traefik (static), the host's
# CA bundle at /etc/ssl/certs/ca-certificates.crt (Debian's ca-certificates), /etc/passwd and
# /etc/group with uid/gid 65532 (nonroot), an empty /tmp; ENTRYPOINT traefik, USER 65532.
# Skipped when the tag exists; the binary is cached per version.
#
# Usage:
#   hack/offline/ingress-image.sh build   build what is missing; print the image name on stdout
#   hack/offline/ingress-image.sh print   print the image name (platform/ingress-traefik:TRAEFIK_VERSION)
#   hack/offline/ingress-image.sh manifest   print hack/offline/kind-node/ingress-traefik.yaml with that image in it
#
# Settings (environment):
#   TRAEFIK_VERSION   module version of github.com/traefik/traefik/v3       (v3.7.13)
#   INGRESS_IMAGE     image name                       (platform/ingress-traefik:TRAEFIK_VERSION)
#   PLATFORM_CACHE    binaries and build folders        (~/.cache/platform-operator)
#   GO_BUILD_FLAGS    extra `go build` flags, e.g. "-p 1" on a busy machine      (none)
# Docker: the default engine, else hack/offline/docker-engine.sh's when it runs (its `env`).
# Progress goes to stderr as `[ingress HH:MM:SS] ...`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# Newest v3 release on the proxy when pinned (go list -m -versions github.com/traefik/traefik/v3).
TRAEFIK_VERSION=${TRAEFIK_VERSION:-v3.7.13}
# Stands in for traefik's fork of it, which the module proxy refuses (proxy_workarounds below).
GO_HTTP_AUTH_VERSION=${GO_HTTP_AUTH_VERSION:-v0.4.0}
IMAGE=${INGRESS_IMAGE:-platform/ingress-traefik:$TRAEFIK_VERSION}
CACHE=${PLATFORM_CACHE:-$HOME/.cache/platform-operator}
BIN_DIR="$CACHE/bin/traefik-$TRAEFIK_VERSION"
BIN="$BIN_DIR/traefik"
WORK="$CACHE/build/traefik-$TRAEFIK_VERSION"
MODULE=github.com/traefik/traefik/v3
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
UID_GID=65532

LOG_TAG=ingress
# shellcheck source=hack/lib.sh
. "$here/../lib.sh"

# The engine of hack/offline/docker-engine.sh when the default one does not answer.
# The small module: require traefik, its replaces (the relative one to our ext stub) and excludes.
write_module() {
  local gomod
  mkdir -p "$WORK/ext"
  gomod=$(cd "$WORK" && GOFLAGS=-mod=mod go mod download -json "$MODULE@$TRAEFIK_VERSION" | jq -r .GoMod)
  [ -s "$gomod" ] || die "go mod download $MODULE@$TRAEFIK_VERSION gave no go.mod"
  local gover
  gover=$(go mod edit -json "$gomod" | jq -r .Go)
  cat >"$WORK/go.mod" <<GOMOD
module platform.dev/traefikbuild

go $gover

require $MODULE $TRAEFIK_VERSION
GOMOD
  printf 'package main\n\nfunc main() {}\n' >"$WORK/main.go"
  # github.com/traefik/traefik/dynamic/ext, as upstream's pkg/config/dynamic/ext defines it.
  printf 'module github.com/traefik/traefik/dynamic/ext\n\ngo 1.24.0\n' >"$WORK/ext/go.mod"
  cat >"$WORK/ext/ext.go" <<'GO'
// Package ext stands in for traefik's nested module pkg/config/dynamic/ext (not on the module
// proxy): the extension points of dynamic.HTTPConfiguration and dynamic.Router, empty in the
// open-source build.
package ext

// HTTP is a dynamic.HTTP extension.
type HTTP struct{}

// Router is a dynamic.Router extension.
type Router struct{}

// RouterIng is a RouterIng extension for ingress provider annotations.
type RouterIng struct{}

// ToRouter converts RouterIng to a Router.
func (r RouterIng) ToRouter() Router { return Router{} }
GO
  local args=() line old new
  while IFS=$'\t' read -r old new; do
    case $new in
      ./* | ../*)
        [ "$old" = github.com/traefik/traefik/dynamic/ext ] ||
          die "relative replace $old => $new in traefik's go.mod: not handled by this script"
        new=./ext
        ;;
    esac
    args+=("-replace=$old=$new")
  done < <(go mod edit -json "$gomod" | jq -r '.Replace // [] | .[] |
    [(.Old.Path + (if .Old.Version then "@" + .Old.Version else "" end)),
     (.New.Path + (if .New.Version then "@" + .New.Version else "" end))] | @tsv')
  while IFS= read -r line; do args+=("-exclude=$line"); done < <(go mod edit -json "$gomod" |
    jq -r '.Exclude // [] | .[] | .Path + "@" + .Version')
  [ ${#args[@]} = 0 ] || (cd "$WORK" && go mod edit "${args[@]}")
  log "traefik $TRAEFIK_VERSION: module $WORK (${#args[@]} replace/exclude lines from traefik's go.mod)"
  proxy_workarounds "$gomod"
}

# The module proxy these machines reach refuses some modules ("403 Forbidden: This module version is
# not available"): the containous fork of go-http-auth, and cloud SDKs that lego's ACME DNS-challenge
# providers import (ucloud, huaweicloud, yandex-cloud, tencent, oci, akamai, ...).
#  - github.com/abbot/go-http-auth (which traefik's go.mod replaces by the fork) goes to a copy of
#    the original module's last release on the proxy, GO_HTTP_AUTH_VERSION, plus the two functions
#    the fork adds that traefik's basic/digest auth middlewares call (CheckSecret, RequireAuthStale).
#  - lego is replaced by a copy of its module whose providers/dns registry knows no provider: ACME
#    DNS challenges (certificatesResolvers.*.acme.dnsChallenge) fail with a clear error; nothing of
#    the kind path uses ACME. It also spares compiling ~180 DNS providers and their SDKs.
proxy_workarounds() {
  local gomod=$1 lego_path lego_ver lego_dir
  read -r lego_path lego_ver < <(go mod edit -json "$gomod" |
    jq -r '.Require[] | select(.Path | test("^github.com/go-acme/lego(/v[0-9]+)?$")) | .Path + " " + .Version') || true
  [ -n "${lego_ver:-}" ] || die "no github.com/go-acme/lego requirement in traefik's go.mod"
  lego_dir=$(cd "$WORK" && go mod download -json "$lego_path@$lego_ver" | jq -r .Dir)
  [ -d "$lego_dir/providers/dns" ] || die "$lego_path@$lego_ver has no providers/dns"
  rm -rf "$WORK/lego"
  cp -r "$lego_dir" "$WORK/lego"
  chmod -R u+w "$WORK/lego"
  rm -f "$WORK/lego/providers/dns/"*.go
  cat >"$WORK/lego/providers/dns/dns_providers.go" <<GO
// Package dns: lego's DNS-provider registry without providers (hack/offline/ingress-image.sh): their SDKs
// are not on the module proxy these machines reach.
package dns

import (
	"fmt"

	"$lego_path/challenge"
)

// NewDNSChallengeProviderByName fails: no DNS provider is built in.
func NewDNSChallengeProviderByName(name string) (challenge.Provider, error) {
	return nil, fmt.Errorf("DNS provider %q: no ACME DNS-challenge provider is built into this traefik", name)
}
GO
  local auth_dir
  auth_dir=$(cd "$WORK" && go mod download -json "github.com/abbot/go-http-auth@$GO_HTTP_AUTH_VERSION" | jq -r .Dir)
  [ -f "$auth_dir/basic.go" ] || die "github.com/abbot/go-http-auth@$GO_HTTP_AUTH_VERSION: no basic.go"
  rm -rf "$WORK/go-http-auth"
  mkdir -p "$WORK/go-http-auth"
  cp "$auth_dir"/*.go "$auth_dir/LICENSE" "$WORK/go-http-auth/"
  rm -f "$WORK/go-http-auth/"*_test.go
  chmod -R u+w "$WORK/go-http-auth"
  printf 'module github.com/abbot/go-http-auth\n\ngo 1.22\n' >"$WORK/go-http-auth/go.mod"
  cat >"$WORK/go-http-auth/traefik_fork.go" <<'GO'
package auth

// What traefik's fork of this module (github.com/containous/go-http-auth) adds and traefik's
// basic/digest auth middlewares call; written by hack/offline/ingress-image.sh.

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// CheckSecret reports whether password matches secret, an htpasswd entry's hash ({SHA}, bcrypt
// $2?$, MD5-crypt $1$/$apr1$), compared as BasicAuth.CheckAuth compares them.
func CheckSecret(password, secret string) bool {
	compare := compareFuncs[0].compare
	for _, cmp := range compareFuncs[1:] {
		if strings.HasPrefix(secret, cmp.prefix) {
			compare = cmp.compare
			break
		}
	}
	return compare([]byte(secret), []byte(password)) == nil
}

// RequireAuthStale is RequireAuth with stale=true (RFC 7616): the credentials were right but the
// nonce out of date, so the client may retry with the new nonce without asking its user.
func (a *DigestAuth) RequireAuthStale(w http.ResponseWriter, r *http.Request) {
	if len(a.clients) > a.ClientCacheSize+a.ClientCacheTolerance {
		a.Purge(a.ClientCacheTolerance * 2)
	}
	nonce := RandomKey()
	a.clients[nonce] = &digest_client{nc: 0, last_seen: time.Now().UnixNano()}
	w.Header().Set(contentType, a.Headers.V().UnauthContentType)
	w.Header().Set(a.Headers.V().Authenticate,
		fmt.Sprintf(`Digest realm="%s", nonce="%s", opaque="%s", algorithm="MD5", qop="auth", stale=true`,
			a.Realm, nonce, a.Opaque))
	w.WriteHeader(a.Headers.V().UnauthCode)
	_, _ = w.Write([]byte(a.Headers.V().UnauthResponse))
}
GO
  (cd "$WORK" && go mod edit "-replace=$lego_path=./lego" "-replace=github.com/abbot/go-http-auth=./go-http-auth")
  log "traefik $TRAEFIK_VERSION: $lego_path $lego_ver without DNS providers (./lego), go-http-auth $GO_HTTP_AUTH_VERSION + the fork's API (./go-http-auth)"
}

build_binary() {
  if [ -x "$BIN" ]; then
    log "traefik $TRAEFIK_VERSION cached ($BIN)"
    return
  fi
  command -v go >/dev/null || die "go missing"
  command -v jq >/dev/null || die "jq missing (apt-get install jq)"
  mkdir -p "$WORK" "$BIN_DIR"
  export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--buildvcs=false}"
  write_module
  log "traefik $TRAEFIK_VERSION: resolving modules"
  (cd "$WORK" && go get "$MODULE/cmd/traefik@$TRAEFIK_VERSION" >&2)
  local v=${TRAEFIK_VERSION#v} ld
  ld="-s -w -X $MODULE/pkg/version.Version=$v -X $MODULE/pkg/version.BuildDate=1970-01-01T00:00:00Z"
  log "traefik $TRAEFIK_VERSION: building (many minutes on a cold cache)"
  local start=$SECONDS
  # shellcheck disable=SC2086 # GO_BUILD_FLAGS is a list of flags
  (cd "$WORK" && go build -mod=mod -trimpath ${GO_BUILD_FLAGS:-} -ldflags "$ld" -o "$BIN.tmp" "$MODULE/cmd/traefik")
  mv "$BIN.tmp" "$BIN"
  log "traefik $TRAEFIK_VERSION: built in $((SECONDS - start))s, $(du -h "$BIN" | cut -f1) ($BIN)"
}

build_image() {
  ensure_docker
  if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    log "image $IMAGE exists"
    return
  fi
  [ -s "$CA_BUNDLE" ] || die "$CA_BUNDLE missing (apt-get install ca-certificates)"
  local root
  root=$(mktemp -d)
  # shellcheck disable=SC2064 # expand now: root is local
  trap "rm -rf '$root'" EXIT
  mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp"
  chmod 1777 "$root/tmp"
  install -m 0755 "$BIN" "$root/usr/local/bin/traefik"
  install -m 0644 "$CA_BUNDLE" "$root/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%s:%s:nonroot:/home/nonroot:/sbin/nologin\n' \
    "$UID_GID" "$UID_GID" >"$root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:%s:\n' "$UID_GID" >"$root/etc/group"
  log "image $IMAGE: importing (traefik, CA bundle, passwd)"
  tar --numeric-owner --owner=0 --group=0 -C "$root" -cf - . |
    docker import \
      --change 'ENTRYPOINT ["/usr/local/bin/traefik"]' \
      --change "USER $UID_GID:$UID_GID" \
      --change 'EXPOSE 8000 8443 8080' \
      --change "LABEL org.opencontainers.image.version=$TRAEFIK_VERSION" \
      --change 'LABEL org.opencontainers.image.source=https://github.com/traefik/traefik' \
      - "$IMAGE" >/dev/null
  rm -rf "$root"
  trap - EXIT
  log "image $IMAGE: $(docker image inspect "$IMAGE" --format '{{.Size}}') bytes"
}

case "${1:-}" in
  build)
    build_binary
    build_image
    echo "$IMAGE"
    ;;
  print) echo "$IMAGE" ;;
  manifest) sed "s#image: platform/ingress-traefik:.*#image: $IMAGE#" "$here/kind-node/ingress-traefik.yaml" ;;
  *)
    sed -n '29,32p' "$0" >&2
    exit 2
    ;;
esac
