#!/usr/bin/env bash
# The project's container images, built on a machine with no container registry.
#
#   hack/offline/images.sh base       the Python base image, from Debian packages (debootstrap), cached
#   hack/offline/images.sh operator   platform-operator:dev       (operator/Dockerfile)
#   hack/offline/images.sh services   platform/<name>:dev for every service of services/ (services/Dockerfile)
#   hack/offline/images.sh dev-servers  platform/redis:7-bookworm, platform/rabbitmq:3-management-bookworm,
#                             platform/postgres:15-bookworm (hack/offline/images/*.Dockerfile, Debian's packages):
#                             the chart's development Redis, RabbitMQ and PostgreSQL
#   hack/offline/images.sh demo-databases  platform/ferretdb:$FERRETDB_VERSION (hack/ferretdb.sh's binary, SQLite
#                             backend): catalog-data's database in kind (hack/kind-demo/demo-databases.yaml,
#                             which names exactly this tag: checked here; Go builds FerretDB unless cached)
#   hack/offline/images.sh all        base, operator, services, dev-servers, demo-databases, then check
#   hack/offline/images.sh check      run each image: the operator's and each service's package imports as uid 10001;
#                             the dev servers start as the chart runs them and answer (PING, /api/overview, SQL);
#                             the demo database starts as demo-databases.yaml runs it and answers (OP_MSG)
#   hack/offline/images.sh save [DIR] each image as DIR/<name>.tar (for `kind load image-archive`); prints the paths
#   hack/offline/images.sh base-tag   print the base image's tag (building nothing)
#   hack/offline/images.sh chart-values  print the helm --set flags that point the chart's redis, rabbitmq and
#                             postgres at the dev-server images (building nothing)
#   Several of base, operator, services, dev-servers, demo-databases, check in one call run one after
#   another, as given.
#
# Why: the Dockerfiles start FROM python:3.12-slim (ARG BASE_IMAGE), which comes from Docker Hub;
# the build machines reach package registries only. So the base is made from Debian's own packages:
# debootstrap (bookworm, minbase) plus python3 (3.11, within the project's >=3.11,<3.13), pip, venv,
# ca-certificates, passwd and adduser (groupadd/useradd), python-is-python3 (`python -m ...`);
# without docs, man pages or apt lists, with PEP 668's EXTERNALLY-MANAGED removed so that the
# Dockerfiles' `pip install uv` works. The rootfs tarball is cached outside the checkout, keyed by
# suite, package list, extra CA certificates and this recipe, and `docker import`ed: a warm run
# re-imports it, or does nothing when the tag exists. Only --build-arg BASE_IMAGE (and UV_VERSION from
# hack/versions.env) differs from a normal build: the Dockerfiles are the ones users build with
# python:3.12-slim.
#
# Two things of these machines, handled here:
# - TLS to PyPI goes through an intercepting proxy whose CA is in /usr/local/share/ca-certificates.
#   Those certificates are added to the base image's trust store (so they are in every image built
#   on it: these images are for this machine's clusters), and the base sets SSL_CERT_FILE and
#   UV_NATIVE_TLS so that uv (which otherwise trusts only its built-in roots) uses that store.
# - The Dockerfiles start with `# syntax=docker/dockerfile:1`, which makes BuildKit pull that
#   frontend image from Docker Hub. Unless an image of that name is present locally, the build uses a
#   copy of the Dockerfile without that line (and the Dockerfile.dockerignore beside it), so BuildKit's
#   built-in Dockerfile frontend (Docker 20.10: RUN --mount, per-Dockerfile ignore files) reads it.
# Builds use /usr/bin/docker (Debian's 20.10 client, BuildKit built in) with DOCKER_BUILDKIT=1: the
# Docker 28 client at /usr/local/bin/docker has no buildx plugin here. The engine is
# hack/offline/docker-engine.sh's (started by this script when nothing answers).
#
# Settings (environment):
#   PLATFORM_CACHE          cache root (~/.cache/platform-operator); images/ holds the rootfs tarballs and build logs
#   DEBIAN_SUITE            bookworm
#   DEBIAN_MIRROR           http://deb.debian.org/debian (security updates from DEBIAN_SECURITY_MIRROR,
#                           http://deb.debian.org/debian-security)
#   BASE_UPGRADE            1: apply bookworm-updates and bookworm-security to the rootfs (0: not)
#   BASE_EXTRA_CA_DIR       extra CA certificates (*.crt) to trust (/usr/local/share/ca-certificates)
#   BASE_IMAGE              use this base instead of building one (e.g. python:3.12-slim where a registry is reachable)
#   DOCKER_CLI              the client to build with (/usr/bin/docker); DOCKER_HOST from hack/offline/docker-engine.sh env
#   IMAGES_VERBOSE          1: stream build output too (it always goes to $PLATFORM_CACHE/images/build-<name>.log)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=versions.env
source "$here/../versions.env"

CACHE=${PLATFORM_CACHE:-$HOME/.cache/platform-operator}
IMAGES_DIR="$CACHE/images"
SUITE=${DEBIAN_SUITE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
UPGRADE=${BASE_UPGRADE:-1}
EXTRA_CA_DIR=${BASE_EXTRA_CA_DIR:-/usr/local/share/ca-certificates}
VERBOSE=${IMAGES_VERBOSE:-0}
BASE_REPO=platform/python-base
OPERATOR_IMAGE=platform-operator:dev
# The chart's development servers (charts/templates/redis.yaml, rabbitmq.yaml, postgres.yaml) from
# Debian's packages, built on the base: Docker Hub's redis:7-alpine, rabbitmq:3.13-management and
# postgres:16-alpine cannot be pulled here. Only the chart's image.repository/image.tag values change
# (chart-values).
REDIS_IMAGE=platform/redis:7-bookworm
RABBITMQ_IMAGE=platform/rabbitmq:3-management-bookworm
POSTGRES_IMAGE=platform/postgres:15-bookworm
DEV_SERVERS_DIR="$here/images"
# catalog-data's database in kind (hack/kind-demo/demo-databases.yaml names this tag): FerretDB v1
# (MongoDB wire, SQLite) from hack/ferretdb.sh's binary.
FERRETDB_IMAGE=platform/ferretdb:$FERRETDB_VERSION
DEMO_DATABASES_MANIFEST="$here/../kind-demo/demo-databases.yaml"
# python-is-python3: the Dockerfiles run `python -m ...`. passwd (groupadd, useradd) is in minbase
# already; listed so that it stays whatever debootstrap's priorities become.
BASE_PACKAGES=(python3 python3-pip python3-venv python-is-python3 ca-certificates passwd adduser)
# Image settings of the base, as python:3.12-slim has them (PATH, LANG, CMD), plus the CA bundle for uv.
BASE_CHANGES=(
  'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  'ENV LANG=C.UTF-8'
  'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt'
  'ENV UV_NATIVE_TLS=1'
  'CMD ["python3"]'
)

LOG_TAG=images
# shellcheck source=hack/lib.sh
. "$here/../lib.sh"

# --- the engine and the client --------------------------------------------------------------------

if [ -z "${DOCKER_HOST:-}" ]; then
  eval "$("$here/docker-engine.sh" env)"
fi
DOCKER_CLI=${DOCKER_CLI:-${PLATFORM_DOCKER_CLI:-/usr/bin/docker}}
export DOCKER_BUILDKIT=1

docker_() { "$DOCKER_CLI" "$@"; }

ensure_engine() {
  [ -x "$DOCKER_CLI" ] || "$here/docker-engine.sh" up
  [ -x "$DOCKER_CLI" ] || die "$DOCKER_CLI missing (hack/offline/docker-engine.sh up installs Debian's docker.io)"
  if ! docker_ info >/dev/null 2>&1; then
    log "no Docker engine answers on ${DOCKER_HOST}; starting one (hack/offline/docker-engine.sh up)"
    "$here/docker-engine.sh" up
  fi
}

image_exists() { docker_ image inspect "$1" >/dev/null 2>&1; }
image_size() { docker_ image inspect --format '{{.Size}}' "$1" | awk '{ printf "%.0f MB", $1 / 1000000 }'; }

# --- the base image ---------------------------------------------------------------------------------

extra_certificates() {
  [ -d "$EXTRA_CA_DIR" ] || return 0
  find "$EXTRA_CA_DIR" -maxdepth 2 -name '*.crt' -type f | LC_ALL=C sort
}

# Everything the rootfs depends on; its hash names the tarball and the tag.
base_recipe() {
  local cert
  printf 'suite=%s\npackages=%s\nupgrade=%s\n' "$SUITE" "${BASE_PACKAGES[*]}" "$UPGRADE"
  printf 'change=%s\n' "${BASE_CHANGES[@]}"
  for cert in $(extra_certificates); do
    printf 'ca=%s %s\n' "$(basename "$cert")" "$(sha256sum <"$cert" | cut -c1-64)"
  done
  declare -f build_rootfs slim_rootfs
}

base_key() { base_recipe | sha256sum | cut -c1-12; }
base_tag() { echo "$BASE_REPO:$SUITE-$(base_key)"; }

ensure_tools() {
  local missing=()
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  [ -r /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
  if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
      { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; } ||
      die "apt-get install ${missing[*]} failed"
  fi
}

# $1: an empty directory to fill; $2: the debootstrap log.
build_rootfs() {
  local rootfs=$1 logfile=$2 include cert
  include=$(IFS=,; echo "${BASE_PACKAGES[*]}")
  # Docs, man pages and translations are never unpacked, neither now nor by later apt-get installs
  # in images built on this one (the same exclusions as Debian's slim images).
  mkdir -p "$rootfs/etc/dpkg/dpkg.cfg.d"
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/platform-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
  debootstrap --variant=minbase --components=main --include="$include" \
    --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
    "$SUITE" "$rootfs" "$MIRROR" >>"$logfile" 2>&1 ||
    { tail -n 30 "$logfile" >&2; die "debootstrap failed (log: $logfile)"; }

  cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
EOF
  # The machine's extra CAs (an intercepting proxy's), trusted inside like outside.
  for cert in $(extra_certificates); do
    mkdir -p "$rootfs/usr/local/share/ca-certificates"
    cp "$cert" "$rootfs/usr/local/share/ca-certificates/"
  done
  cp -L /etc/resolv.conf "$rootfs/etc/resolv.conf"
  mount -t proc proc "$rootfs/proc"
  local rc=0
  {
    if [ "$UPGRADE" = 1 ]; then
      chroot "$rootfs" apt-get update -q &&
        DEBIAN_FRONTEND=noninteractive chroot "$rootfs" apt-get -y -q --no-install-recommends dist-upgrade
    fi &&
      chroot "$rootfs" update-ca-certificates
  } >>"$logfile" 2>&1 || rc=$?
  umount "$rootfs/proc"
  [ "$rc" = 0 ] || { tail -n 30 "$logfile" >&2; die "upgrading the rootfs failed (log: $logfile)"; }
}

slim_rootfs() {
  local rootfs=$1
  chroot "$rootfs" apt-get clean
  # pip of the Dockerfiles installs into /usr/local as root; PEP 668 would refuse.
  rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
    "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old "$rootfs"/var/log/* \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/lintian/* \
    "$rootfs"/tmp/* "$rootfs"/root/.cache "$rootfs"/debootstrap
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  # Docker provides these at run time.
  : >"$rootfs/etc/resolv.conf"
  : >"$rootfs/etc/machine-id"
  rm -f "$rootfs/etc/hostname"
  # As Debian's container images: apt-get keeps no .debs, lists or translations.
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
}

build_base() {
  local tag key tarball work started
  tag=$(base_tag)
  key=$(base_key)
  tarball="$IMAGES_DIR/python-base-$SUITE-$key.tar.gz"
  mkdir -p "$IMAGES_DIR"
  # One builder at a time (hack/offline/kind-node-image.sh or a second shell may ask for the base too).
  exec 9>"$IMAGES_DIR/.python-base.lock"
  flock 9
  if image_exists "$tag"; then
    log "base image $tag present ($(image_size "$tag"))"
    docker_ tag "$tag" "$BASE_REPO:$SUITE"
    return 0
  fi
  mkdir -p "$IMAGES_DIR"
  if [ ! -s "$tarball" ]; then
    [ "$(id -u)" = 0 ] || die "building the base rootfs needs root (debootstrap, chroot)"
    ensure_tools
    started=$(date +%s)
    work=$(mktemp -d "$IMAGES_DIR/rootfs.XXXXXX")
    # shellcheck disable=SC2064 # expand now: the path is fixed
    trap "umount '$work/rootfs/proc' 2>/dev/null || true; rm -rf '$work'" EXIT
    log "debootstrap $SUITE (minbase + ${BASE_PACKAGES[*]}) from $MIRROR (log: $IMAGES_DIR/debootstrap.log)"
    : >"$IMAGES_DIR/debootstrap.log"
    mkdir -p "$work/rootfs"
    build_rootfs "$work/rootfs" "$IMAGES_DIR/debootstrap.log"
    slim_rootfs "$work/rootfs"
    log "packing the rootfs ($(du -sm "$work/rootfs" | cut -f1) MB)"
    tar --numeric-owner --xattrs --xattrs-include='*' -C "$work/rootfs" \
      --exclude='./proc/*' --exclude='./sys/*' --exclude='./dev/*' -cf - . |
      gzip -1 >"$work/rootfs.tar.gz"
    mv "$work/rootfs.tar.gz" "$tarball"
    rm -rf "$work"
    trap - EXIT
    # Older keys' tarballs are of no further use.
    find "$IMAGES_DIR" -maxdepth 1 -name "python-base-$SUITE-*.tar.gz" -not -name "$(basename "$tarball")" -delete
    log "rootfs built in $(($(date +%s) - started))s: $tarball ($(du -m "$tarball" | cut -f1) MB)"
  else
    log "rootfs cached: $tarball"
  fi
  local changes=() change
  for change in "${BASE_CHANGES[@]}"; do changes+=(--change "$change"); done
  docker_ import "${changes[@]}" -m "debootstrap $SUITE: ${BASE_PACKAGES[*]} (hack/offline/images.sh)" \
    "$tarball" "$tag" >/dev/null
  docker_ tag "$tag" "$BASE_REPO:$SUITE"
  log "imported $tag ($(image_size "$tag")), also tagged $BASE_REPO:$SUITE"
}

# The base the Dockerfiles get: BASE_IMAGE if set, else ours (built when missing).
base_image() {
  if [ -n "${BASE_IMAGE:-}" ]; then
    echo "$BASE_IMAGE"
    return 0
  fi
  image_exists "$(base_tag)" || build_base
  base_tag
}

# --- the Dockerfiles ------------------------------------------------------------------------------

# $1: Dockerfile, $2: tag, $3: base image, $4: context (the repository root), then more docker
# build arguments (e.g. --build-arg SERVICE=orders-api).
build_dockerfile() {
  local dockerfile=$1 tag=$2 base=$3 context=${4:-$root} name logfile started work="" file
  local extra=("${@:5}")
  name=$(basename "${tag%%:*}")
  logfile="$IMAGES_DIR/build-$name.log"
  mkdir -p "$IMAGES_DIR"
  file=$dockerfile
  if head -n 1 "$dockerfile" | grep -qiE '^#[[:space:]]*syntax[[:space:]]*=' &&
    ! image_exists "$(head -n 1 "$dockerfile" | sed -E 's/^#[[:space:]]*syntax[[:space:]]*=[[:space:]]*//I')"; then
    # No registry for the frontend image: the same Dockerfile without the directive, read by the
    # daemon's built-in frontend, with the same per-Dockerfile ignore file (found beside it).
    work=$(mktemp -d)
    tail -n +2 "$dockerfile" >"$work/Dockerfile"
    [ ! -f "$dockerfile.dockerignore" ] || cp "$dockerfile.dockerignore" "$work/Dockerfile.dockerignore"
    file="$work/Dockerfile"
  fi
  log "building $tag from ${dockerfile#"$root"/} on $base (log: $logfile)"
  started=$(date +%s)
  local rc=0
  {
    if [ "$VERBOSE" = 1 ]; then
      docker_ build --progress=plain -f "$file" \
        --build-arg "BASE_IMAGE=$base" --build-arg "UV_VERSION=$UV_VERSION" ${extra[@]+"${extra[@]}"} \
        -t "$tag" "$context" 2>&1 | tee "$logfile" >&2
    else
      docker_ build --progress=plain -f "$file" \
        --build-arg "BASE_IMAGE=$base" --build-arg "UV_VERSION=$UV_VERSION" ${extra[@]+"${extra[@]}"} \
        -t "$tag" "$context" >"$logfile" 2>&1
    fi
  } || rc=$?
  [ -z "$work" ] || rm -rf "$work"
  if [ "$rc" != 0 ]; then
    [ "$VERBOSE" = 1 ] || tail -n 40 "$logfile" >&2
    die "docker build of $tag failed (exit $rc; log: $logfile)"
  fi
  log "built $tag in $(($(date +%s) - started))s ($(image_size "$tag"))"
}

service_dirs() { service_names "$root"; }

# A digest of a Python package's .py files: a folder, or an installed package found by its name.
PY_DIGEST='import hashlib, importlib.util, pathlib, sys
arg = sys.argv[1]
root = pathlib.Path(arg if "/" in arg else importlib.util.find_spec(arg).submodule_search_locations[0])
h = hashlib.sha256()
for p in sorted(root.rglob("*.py")):
    if "__pycache__" not in p.parts:
        h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
print(h.hexdigest())'

# The image must run the checkout's code: a build cache that serves an older wheel (uv rebuilds a
# local package only when its cache-keys change) would leave every later test testing old code.
check_sources() { # image package folder
  local image=$1 package=$2 dir=$3 want got
  want=$(python3 -c "$PY_DIGEST" "$dir")
  got=$(docker run --rm --entrypoint python "$image" -c "$PY_DIGEST" "$package") ||
    die "could not read $package inside $image"
  [ "$want" = "$got" ] ||
    die "$image holds a $package other than the checkout's $dir (a stale build cache?): docker builder prune, then build again"
}

build_operator() {
  local base
  base=$(base_image)
  build_dockerfile "$root/operator/Dockerfile" "$OPERATOR_IMAGE" "$base"
  check_sources "$OPERATOR_IMAGE" platform_operator "$root/operator/platform_operator"
}

build_services() {
  local base service module
  base=$(base_image)
  for service in $(service_dirs); do
    build_dockerfile "$root/services/Dockerfile" "platform/$service:dev" "$base" "$root" --build-arg "SERVICE=$service"
    module=${service//-/_}
    check_sources "platform/$service:dev" "$module" "$root/services/$service/src/$module"
    check_sources "platform/$service:dev" platform_contract "$root/services/platform-contract/src/platform_contract"
  done
}

all_images() {
  local service
  echo "$OPERATOR_IMAGE"
  for service in $(service_dirs); do echo "platform/$service:dev"; done
}

# Context: hack/images (the Dockerfiles' .dockerignore files let in the entrypoint only).
build_dev_servers() {
  local base
  base=$(base_image)
  build_dockerfile "$DEV_SERVERS_DIR/redis.Dockerfile" "$REDIS_IMAGE" "$base" "$DEV_SERVERS_DIR"
  build_dockerfile "$DEV_SERVERS_DIR/rabbitmq.Dockerfile" "$RABBITMQ_IMAGE" "$base" "$DEV_SERVERS_DIR"
  build_dockerfile "$DEV_SERVERS_DIR/postgres.Dockerfile" "$POSTGRES_IMAGE" "$base" "$DEV_SERVERS_DIR"
}

dev_server_images() { printf '%s\n' "$REDIS_IMAGE" "$RABBITMQ_IMAGE" "$POSTGRES_IMAGE"; }

chart_values() {
  echo "--set redis.image.repository=${REDIS_IMAGE%:*} --set redis.image.tag=${REDIS_IMAGE##*:}" \
    "--set rabbitmq.image.repository=${RABBITMQ_IMAGE%:*} --set rabbitmq.image.tag=${RABBITMQ_IMAGE##*:}" \
    "--set postgres.image.repository=${POSTGRES_IMAGE%:*} --set postgres.image.tag=${POSTGRES_IMAGE##*:}"
}

# FerretDB's Dockerfile gets a context of its own holding only the binary (built by hack/ferretdb.sh
# through the Go module proxy unless cached). The manifest must name the tags built here.
build_demo_databases() {
  local base binary context image
  base=$(base_image)
  binary=$(FERRETDB_VERSION=$FERRETDB_VERSION "$here/../ferretdb.sh" build | tail -n 1)
  [ -x "$binary" ] || die "hack/ferretdb.sh build gave no binary"
  context=$(mktemp -d)
  cp "$binary" "$context/ferretdb"
  local rc=0
  (build_dockerfile "$DEV_SERVERS_DIR/ferretdb.Dockerfile" "$FERRETDB_IMAGE" "$base" "$context") || rc=$?
  rm -rf "$context"
  [ "$rc" = 0 ] || exit "$rc"
  for image in $(demo_database_images); do
    grep -Eq "^[[:space:]]*image:[[:space:]]*${image}[[:space:]]*$" "$DEMO_DATABASES_MANIFEST" ||
      die "${DEMO_DATABASES_MANIFEST#"$root"/} does not name $image: update its image: lines"
  done
}

demo_database_images() { printf '%s\n' "$FERRETDB_IMAGE"; }

# --- checks and archives --------------------------------------------------------------------------

# Python that imports a package and every module in it, so that a dependency missing from the
# image shows; prints what it imported. Not __main__ (it would start the service) nor migrations/
# (alembic's env.py and versions run inside alembic only).
import_all_program() {
  cat <<EOF
import importlib, pkgutil, sys
import $1 as package
names = [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".") if not m.name.endswith(".__main__") and ".migrations." not in m.name + "."]
for name in names:
    importlib.import_module(name)
print(f"python {sys.version.split()[0]} imports {package.__name__} and its {len(names)} modules")
EOF
}

# Each image's package and all its modules import, as the uid the charts run it with, on a
# read-only root (as the charts mount it).
check_images() {
  local image service package failed=0 out
  declare -A packages=([platform-operator]=platform_operator)
  for service in $(service_dirs); do
    # The package under src/ (services/orders-api/src/orders_api), else the name with underscores.
    package=$(find "$root/services/$service/src" -mindepth 2 -maxdepth 2 -name __init__.py -printf '%h\n' 2>/dev/null | head -n 1)
    packages[$service]=${package:+$(basename "$package")}
    packages[$service]=${packages[$service]:-${service//-/_}}
  done
  for image in $(all_images); do
    service=$(basename "${image%%:*}")
    package=${packages[$service]}
    if out=$(docker_ run --rm --user 10001:10001 --read-only --entrypoint python "$image" \
      -c "$(import_all_program "$package")" 2>&1); then
      log "ok: $image, as uid 10001 on a read-only root: $out"
    else
      log "FAILED: $image: import $package: $out"
      failed=1
    fi
  done
  [ "$failed" = 0 ] || die "some images do not start"
}

# `docker run` flags of the chart's pods (charts/templates/redis.yaml, rabbitmq.yaml): uid/gid 999
# with fsGroup 999 as a supplementary group, no capabilities, no privilege escalation, a pod-like
# hostname, the data directory ($1) an empty volume ($3) as an emptyDir is after fsGroup: root:999,
# setgid, group-writable (2770: only the group grants access), none of the image's content or modes
# copied into it (volume-nocopy; --tmpfs would copy the image directory's mode). The root is
# read-only for both (the chart sets readOnlyRootFilesystem for redis only).
dev_server_run_flags() {
  local dir=$1 component=$2 volume=$3 image=$4
  docker_ volume create "$volume" >/dev/null
  docker_ run --rm --user 0 --entrypoint sh --mount "type=volume,src=$volume,dst=/volume,volume-nocopy" \
    "$image" -c 'chown 0:999 /volume && chmod 2770 /volume' >&2
  printf '%s\n' --detach --user 999:999 --group-add 999 --cap-drop ALL --security-opt no-new-privileges \
    --read-only --mount "type=volume,src=$volume,dst=$dir,volume-nocopy" \
    --hostname "platform-platform-operator-$component-6d9c7f8b5-x4k2p"
}

# $1: container, $2: its volume.
dev_server_remove() {
  docker_ rm -f "$1" >/dev/null 2>&1 || true
  docker_ volume rm "$2" >/dev/null 2>&1 || true
}

# $1: container; the tail of its log.
dev_server_log() { docker_ logs --tail 25 "$1" 2>&1 | sed 's/^/    /' >&2; }

# $1: container, $2: what failed; logs that, then the tail of the container's log.
check_failed() {
  log "FAILED: $2; its log:"
  dev_server_log "$1"
}

# $1: container, then `docker run` flags and the image (and its command): started detached under that
# name; when it cannot start, removed with its volume (of the same name).
check_start() {
  local name=$1
  shift
  docker_ run --name "$name" "$@" >/dev/null || { dev_server_remove "$name" "$name"; return 1; }
}

# $1: container, $2: seconds, then a command: run every second until it succeeds (true), the container
# stops or the time is up (false). Prints the command's last output (stdout and stderr).
check_await() {
  local name=$1 seconds=$2 out=""
  shift 2
  for _ in $(seq 1 "$seconds"); do
    out=$("$@" 2>&1) && { printf '%s\n' "$out"; return 0; }
    [ "$(docker_ inspect --format '{{.State.Running}}' "$name" 2>/dev/null)" = true ] || break
    sleep 1
  done
  printf '%s\n' "$out"
  return 1
}

# $1: target of this script, $2: its images (one a line), $3: what it means when a check fails, then
# the checks (functions): dies unless each image is built; runs every check, then dies if one failed.
run_checks() {
  local target=$1 images=$2 failure=$3 image check failed=0
  shift 3
  for image in $images; do
    image_exists "$image" || die "$image is not built (hack/offline/images.sh $target)"
  done
  for check in "$@"; do "$check" || failed=1; done
  [ "$failed" = 0 ] || die "$failure"
}

# $1: container, $2: password; PONG (true) or what redis-cli said instead.
redis_pong() {
  local out
  out=$(docker_ exec -e "REDISCLI_AUTH=$2" "$1" redis-cli -p 6379 ping 2>&1) || true
  printf '%s\n' "$out"
  [ "$out" = PONG ]
}

# Redis as the chart starts it: the command with the password, port 6379, on a read-only root.
check_redis() {
  local name=platform-check-redis-$$ password=check-$RANDOM$RANDOM out="" started rc=1 flags
  flags=$(dev_server_run_flags /data redis "$name" "$REDIS_IMAGE") || return 1
  mapfile -t flags <<<"$flags"
  started=$(date +%s)
  check_start "$name" "${flags[@]}" -e "REDIS_PASSWORD=$password" "$REDIS_IMAGE" \
    redis-server --requirepass "$password" --save "" --appendonly no --port 6379 || return 1
  if out=$(check_await "$name" 30 redis_pong "$name" "$password"); then
    rc=0
  fi
  if [ "$rc" = 0 ]; then
    # Without the password: refused.
    if docker_ exec "$name" redis-cli -p 6379 ping 2>&1 | grep -q NOAUTH; then
      log "ok: $REDIS_IMAGE, as uid 999 on a read-only root: PING with the password -> PONG, without -> NOAUTH ($(($(date +%s) - started))s; $(docker_ exec "$name" redis-server --version | grep -o 'v=[0-9.]*'))"
    else
      log "FAILED: $REDIS_IMAGE answers PING without the password"
      rc=1
    fi
  else
    check_failed "$name" "$REDIS_IMAGE: no PONG within 30s (last: $out)"
  fi
  dev_server_remove "$name" "$name"
  return "$rc"
}

# Python (the base image's) that GETs the management API's /api/overview as the default user, then
# opens an AMQP 0-9-1 connection on 5672 (the header; the broker answers with Connection.Start).
overview_program() { cat "$here/checks/rabbitmq_overview.py"; }

# RabbitMQ as the chart starts it: the image's own command, the default user from the environment,
# /var/lib/rabbitmq an empty volume. The management API answers that user within 60 s (about 8 s here).
check_rabbitmq() {
  local name=platform-check-rabbitmq-$$ password=check-$RANDOM$RANDOM out="" started rc=1 flags
  flags=$(dev_server_run_flags /var/lib/rabbitmq rabbitmq "$name" "$RABBITMQ_IMAGE") || return 1
  mapfile -t flags <<<"$flags"
  started=$(date +%s)
  check_start "$name" "${flags[@]}" -e RABBITMQ_DEFAULT_USER=platform-admin \
    -e "RABBITMQ_DEFAULT_PASS=$password" "$RABBITMQ_IMAGE" || return 1
  if out=$(check_await "$name" 60 docker_ exec "$name" python3 -c "$(overview_program)"); then
    rc=0
  fi
  if [ "$rc" = 0 ]; then
    log "ok: $RABBITMQ_IMAGE, as uid 999 on a read-only root: /api/overview as the default user after $(($(date +%s) - started))s: $out"
    # The CLI tools in the container reach the node (cookie, node name), as `kubectl exec` would.
    if ! out=$(docker_ exec "$name" rabbitmqctl --quiet list_users 2>&1) || ! grep -q '^platform-admin' <<<"$out"; then
      log "FAILED: $RABBITMQ_IMAGE: rabbitmqctl list_users in the container: $out"
      rc=1
    fi
  else
    check_failed "$name" "$RABBITMQ_IMAGE: /api/overview did not answer within 60s (last: $out)"
  fi
  dev_server_remove "$name" "$name"
  return "$rc"
}

check_dev_servers() {
  run_checks dev-servers "$(dev_server_images)" "a dev server image does not work as the chart runs it" \
    check_redis check_rabbitmq check_postgres
}

# `docker run` flags of demo-databases.yaml's pods: uid/gid $2 with fsGroup $2, no capabilities, no
# privilege escalation, a read-only root, the data directory ($1) an empty volume ($3) as an emptyDir is
# after fsGroup (root:$2, 2770), further directories ($4...) empty and the user's, as emptyDirs.
demo_database_run_flags() {
  local dir=$1 uid=$2 volume=$3 extra
  shift 3
  docker_ volume create "$volume" >/dev/null
  docker_ run --rm --user 0 --entrypoint sh --mount "type=volume,src=$volume,dst=/volume,volume-nocopy" \
    "$(base_image)" -c "chown 0:$uid /volume && chmod 2770 /volume" >&2
  printf '%s\n' --detach --user "$uid:$uid" --group-add "$uid" --cap-drop ALL --security-opt no-new-privileges \
    --read-only --mount "type=volume,src=$volume,dst=$dir,volume-nocopy"
  for extra in "$@"; do
    printf '%s\n' --tmpfs "$extra:rw,nosuid,nodev,noexec,uid=$uid,gid=$uid,mode=2770"
  done
}

# $1: container; `docker stop` (its stop signal, then SIGKILL after 30 s, as the kubelet stops a pod),
# waits until it has exited (up to 5 s more), then prints its exit code.
demo_database_stop() {
  local name=$1
  docker_ stop -t 30 "$name" >/dev/null
  for _ in $(seq 1 5); do
    [ "$(docker_ inspect --format '{{.State.Running}}' "$name" 2>/dev/null)" = true ] || break
    sleep 1
  done
  docker_ inspect --format '{{.State.ExitCode}}' "$name"
}

# PostgreSQL as the chart runs it (charts/templates/postgres.yaml): uid 999, the volume at
# /var/lib/postgresql/data with PGDATA inside it, the socket directory (/var/run/postgresql) an empty
# one, the superuser platform_admin (the operator's admin role) with the database postgres. Ready (pg_isready on TCP, the readiness probe), then password logins
# over TCP: the right password gets the database, a wrong one is refused; `docker stop` (the image's
# STOPSIGNAL, as the kubelet stops it) shuts it down cleanly (exit 0), and a second start on the same
# volume keeps the data (no second initdb).
check_postgres() {
  local name=platform-check-postgres-$$ password=check-$RANDOM$RANDOM out="" refused="" started rc=1 flags code
  flags=$(demo_database_run_flags /var/lib/postgresql/data 999 "$name" /var/run/postgresql) || return 1
  mapfile -t flags <<<"$flags"
  local user=platform_admin
  local env=(-e "POSTGRES_USER=$user" -e "POSTGRES_PASSWORD=$password" -e POSTGRES_DB=postgres
    -e PGDATA=/var/lib/postgresql/data/pgdata)
  started=$(date +%s)
  check_start "$name" "${flags[@]}" "${env[@]}" "$POSTGRES_IMAGE" || return 1
  if check_await "$name" 60 docker_ exec "$name" pg_isready -q -h 127.0.0.1 -p 5432 -U "$user" -d postgres >/dev/null; then
    rc=0
  fi
  if [ "$rc" = 0 ]; then
    out=$(docker_ exec -e "PGPASSWORD=$password" "$name" psql -X -At -h 127.0.0.1 -U "$user" -d postgres \
      -c 'CREATE TABLE t (x int); INSERT INTO t VALUES (42)' \
      -c "SELECT current_user || ' ' || current_database() || ' ' || current_setting('server_version') || ' ' || current_setting('listen_addresses')" 2>&1) ||
      { log "FAILED: $POSTGRES_IMAGE: a password login over TCP: $out"; rc=1; }
  fi
  if [ "$rc" = 0 ]; then
    # (Not `psql ... | grep -q`: psql fails, as it should, and pipefail would take that.)
    refused=$(docker_ exec -e PGPASSWORD=wrong "$name" psql -X -At -h 127.0.0.1 -U "$user" -d postgres -c 'SELECT 1' 2>&1 || true)
    if grep -q 'password authentication failed' <<<"$refused"; then
      log "ok: $POSTGRES_IMAGE, as uid 999 on a read-only root: ready after $(($(date +%s) - started))s; over TCP with the password: $(tail -n 1 <<<"$out"); a wrong password is refused"
    else
      log "FAILED: $POSTGRES_IMAGE: a wrong password was not refused: $refused"
      rc=1
    fi
  else
    check_failed "$name" "$POSTGRES_IMAGE: not ready within 60s"
  fi
  if [ "$rc" = 0 ]; then
    code=$(demo_database_stop "$name")
    if [ "$code" = 0 ] && docker_ logs "$name" 2>&1 | grep -q 'database system is shut down'; then
      docker_ start "$name" >/dev/null
      out=$(check_await "$name" 30 docker_ exec -e "PGPASSWORD=$password" "$name" psql -X -At -h 127.0.0.1 -U "$user" -d postgres -c 'SELECT x FROM t') || true
      if [ "$out" = 42 ] && [ "$(docker_ logs "$name" 2>&1 | grep -c 'initializing')" = 1 ]; then
        log "ok: $POSTGRES_IMAGE stops cleanly on docker stop ($(docker_ inspect --format '{{.Config.StopSignal}}' "$POSTGRES_IMAGE"): exit 0) and restarts on its data"
      else
        check_failed "$name" "$POSTGRES_IMAGE: after a restart on the same volume: ${out:-no answer}"
        rc=1
      fi
    else
      check_failed "$name" "$POSTGRES_IMAGE: docker stop: exit $code"
      rc=1
    fi
  fi
  dev_server_remove "$name" "$name"
  return "$rc"
}

# Python (the base image's) speaking the MongoDB wire protocol to localhost:27017: ping, insert a
# document, count it back; prints the server's version (hack/offline/checks/mongo_wire.py).
mongo_program() { cat "$here/checks/mongo_wire.py"; }

# FerretDB as demo-databases.yaml runs it: uid 999, the volume at /state. It answers ping, insert and
# count over the wire (a client in the container's network namespace: the image has no shell), stops
# on SIGTERM with exit 0, and keeps its SQLite files in the volume.
check_ferretdb() {
  local name=platform-check-ferretdb-$$ out="" started rc=1 flags code base
  base=$(base_image)
  flags=$(demo_database_run_flags /state 999 "$name" /tmp) || return 1
  mapfile -t flags <<<"$flags"
  started=$(date +%s)
  check_start "$name" "${flags[@]}" "$FERRETDB_IMAGE" || return 1
  if out=$(check_await "$name" 30 docker_ run --rm --network "container:$name" --user 10001:10001 --read-only "$base" \
    python3 -c "$(mongo_program)"); then
    rc=0
  fi
  if [ "$rc" = 0 ]; then
    log "ok: $FERRETDB_IMAGE, as uid 999 on a read-only root: after $(($(date +%s) - started))s: $out"
    code=$(demo_database_stop "$name")
    if [ "$code" = 0 ] &&
      docker_ run --rm --user 0 --mount "type=volume,src=$name,dst=/state" --entrypoint ls "$base" /state |
      grep -x 'check.sqlite' >/dev/null; then
      log "ok: $FERRETDB_IMAGE stops cleanly on SIGTERM (exit 0); its SQLite files are in the volume (check.sqlite)"
    else
      check_failed "$name" "$FERRETDB_IMAGE: docker stop: exit $code, or no check.sqlite in /state"
      rc=1
    fi
  else
    check_failed "$name" "$FERRETDB_IMAGE: no answer within 30s (last: $out)"
  fi
  dev_server_remove "$name" "$name"
  return "$rc"
}

check_demo_databases() {
  run_checks demo-databases "$(demo_database_images)" \
    "the demo database image does not work as demo-databases.yaml runs it" check_ferretdb
}

save_images() {
  local dir=${1:-$IMAGES_DIR/archives} image file
  mkdir -p "$dir"
  for image in $(all_images) $(dev_server_images) $(demo_database_images); do
    image_exists "$image" || die "$image is not built (hack/offline/images.sh all)"
    file="$dir/$(basename "${image%%:*}").tar"
    docker_ save -o "$file" "$image"
    log "saved $image to $file ($(du -m "$file" | cut -f1) MB)"
    echo "$file"
  done
}

usage() {
  sed -n '2,22p' "$0" >&2
  exit 2
}

# Several build targets in one call, in order (hack/kind.sh: `images.sh operator services dev-servers`).
if [ $# -gt 1 ] && [ "$1" != save ]; then
  for target in "$@"; do
    case "$target" in base | operator | services | dev-servers | demo-databases | check) ;; *) usage ;; esac
  done
  for target in "$@"; do "$0" "$target"; done
  exit 0
fi

case "${1:-}" in
  base-tag) base_tag ;;
  base)
    ensure_engine
    build_base
    ;;
  operator)
    ensure_engine
    build_operator
    ;;
  services)
    ensure_engine
    build_services
    ;;
  dev-servers)
    ensure_engine
    build_dev_servers
    ;;
  demo-databases)
    ensure_engine
    build_demo_databases
    ;;
  chart-values) chart_values ;;
  all)
    ensure_engine
    [ -n "${BASE_IMAGE:-}" ] || build_base
    build_operator
    build_services
    build_dev_servers
    build_demo_databases
    check_images
    check_dev_servers
    check_demo_databases
    ;;
  check)
    ensure_engine
    check_images
    check_dev_servers
    check_demo_databases
    ;;
  save)
    ensure_engine
    save_images "${2:-}"
    ;;
  *) usage ;;
esac
