#!/usr/bin/env bash
# kind, on a machine with Docker and internet: the operator image run in-cluster as the chart
# installs it, real pods, ingress-nginx in front of the services, and the same e2e suite as on the
# local control plane (make test-e2e), pointed at it through KUBECONFIG.
#
#   hack/kind.sh up        create the cluster from kind-config.yaml (or reuse it), install ingress-nginx
#   hack/kind.sh images    build the operator image and every service's (services/Dockerfile), load them into kind
#   hack/kind.sh install   helm upgrade --install platform charts/ with the in-cluster RabbitMQ, Redis and
#                          PostgreSQL (the operator provisions data services' databases on the last)
#   hack/kind.sh test      e2e, samples, ingress (below), each run even when one before failed
#   hack/kind.sh e2e [ARGS]  the e2e suite (tests/e2e) against the cluster, operator in-cluster; ARGS go
#                          to pytest (e.g. tests/e2e/test_database.py -x: one file while iterating)
#   hack/kind.sh samples     samples/ in namespace kind-demo, until the operator has provisioned them
#   hack/kind.sh ingress     the api sample through the ingress on localhost (once it has an image)
#   hack/kind.sh down      delete the cluster
#   hack/kind.sh all       up, images, install, test; then down, unless KEEP_KIND=1. After a failure
#                          the cluster is kept, and how to delete it is printed.
#
# Settings: KIND_CLUSTER (platform), KEEP_KIND (0), KIND_IMAGE (node image; default KIND_NODE_IMAGE
# of versions.env, "default" for kind's own), BASE_IMAGE (base of the operator image), KIND_HTTP_PORT
# and KIND_HTTPS_PORT (80, 443: the loopback ports the ingress controller is reached on; another
# cluster beside the first needs others, e.g. KIND_CLUSTER=mine KIND_HTTP_PORT=8081 KIND_HTTPS_PORT=8444).
# The cluster's kubeconfig is a file of its own (printed by `up`); ~/.kube/config is left alone.
#
# Offline (KIND_OFFLINE=1; detected when registry-1.docker.io does not answer, KIND_OFFLINE=0 turns
# detection off): the project's build machines reach package registries only, so every image comes
# from parts built there, and only these steps differ from a laptop's:
#   - Docker: hack/offline/docker-engine.sh's dockerd (Debian's docker.io, with a runtime wrapper for
#     privileged containers), started when needed;
#   - the node image: hack/offline/kind-node-image.sh (Kubernetes KUBE_VERSION from source, Debian rootfs),
#     and the kind CLI it builds;
#   - the images' base: hack/offline/images.sh's Python base from debootstrap (BASE_IMAGE of the Dockerfiles),
#     and the chart's development Redis and RabbitMQ from Debian's packages (hack/offline/images.sh dev-servers);
#   - the ingress controller: Traefik built from the Go module proxy, serving the operator's
#     ingressClassName nginx (hack/offline/ingress-image.sh, hack/offline/kind-node/ingress-traefik.yaml), because
#     ingress-nginx's controller image (nginx with OpenResty's Lua modules) cannot be built there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
# shellcheck source-path=SCRIPTDIR source=versions.env
source "$here/versions.env"

CLUSTER=${KIND_CLUSTER:-platform}
HTTP_PORT=${KIND_HTTP_PORT:-80}
HTTPS_PORT=${KIND_HTTPS_PORT:-443}
CACHE=${PLATFORM_CACHE:-$HOME/.cache/platform-operator}
# kubectl and helm built by `make tools`, for whoever has no others.
PATH="$PATH:$CACHE/bin/current"
export KUBECONFIG="${KIND_KUBECONFIG:-$CACHE/kubeconfig-kind-$CLUSTER}"

# What `helm install platform charts/` names things (the e2e suite assumes the same).
RELEASE="platform"
RELEASE_NAMESPACE="platform-system"
OPERATOR_DEPLOYMENT="platform-operator"
OPERATOR_IMAGE="platform-operator:dev"
E2E_APP_IMAGE="platform/e2e-app:dev"
# The resync interval the e2e suite expects of the operator (RESYNC_SECONDS in tests/e2e/e2e_kube.py):
# its tests of repairs that no event announces wait a few intervals.
E2E_RESYNC_SECONDS=3
E2E_SWEEP_SECONDS=5 # tests/e2e/e2e_kube.py SWEEP_SECONDS
# The chart's Redis admin Secret (redis.existingSecret): tests/e2e/test_chart_secrets.py reads it.
E2E_REDIS_ADMIN_SECRET="platform-redis-admin"
E2E_REDIS_ADMIN_PASSWORD='p@ss/w#rd%'
DEMO_NAMESPACE="kind-demo"
OFFLINE_INGRESS_NAMESPACE="ingress-traefik"
OFFLINE_INGRESS_DEPLOYMENT="ingress-traefik-controller"
INGRESS_MANIFEST="https://raw.githubusercontent.com/kubernetes/ingress-nginx/$INGRESS_NGINX_VERSION/deploy/static/provider/kind/deploy.yaml"

LOG_TAG=kind
# shellcheck source=hack/lib.sh
. "$here/lib.sh"

# Offline or not, decided once and passed to the steps run as processes of their own.
if [ -z "${KIND_OFFLINE:-}" ]; then
  if curl -s -o /dev/null -m 5 https://registry-1.docker.io/v2/ 2>/dev/null; then KIND_OFFLINE=0; else KIND_OFFLINE=1; fi
fi
export KIND_OFFLINE
if [ "$KIND_OFFLINE" = 1 ]; then
  # The kind CLI built by hack/offline/kind-node-image.sh, and the engine of hack/offline/docker-engine.sh.
  PATH="$CACHE/bin/kind-$KIND_VERSION:$PATH"
  eval "$("$here/offline/docker-engine.sh" env)"
fi
DOCKER_BUILD_CLI=${PLATFORM_DOCKER_CLI:-docker}

MODE=${1:-}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/platform-kind.XXXXXX")
FORWARD_PIDS=()

on_exit() {
  local rc=$?
  stop_forwards
  rm -rf "$WORK"
  if [ "$MODE" = all ]; then
    if [ "$rc" != 0 ] && [ ! -f "$KUBECONFIG" ]; then
      log "FAILED (exit $rc) before a cluster was up"
    elif [ "$rc" != 0 ]; then
      diagnose
      log "FAILED (exit $rc). Cluster $CLUSTER kept to look at: export KUBECONFIG=$KUBECONFIG"
      log "delete it with: make kind-down   (or: KIND_CLUSTER=$CLUSTER hack/kind.sh down)"
    elif [ "${KEEP_KIND:-0}" = 1 ]; then
      log "passed. Cluster $CLUSTER kept (KEEP_KIND=1): export KUBECONFIG=$KUBECONFIG; make kind-down deletes it"
    else
      log "passed. Deleting cluster $CLUSTER (KEEP_KIND=1 keeps it)"
      cmd_down || rc=$?
    fi
  fi
  exit "$rc"
}
trap on_exit EXIT

need() {
  local cmd missing=0
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 && continue
    missing=1
    case $cmd in
      docker) log "docker not found: install Docker Desktop, or Docker Engine on Linux: https://docs.docker.com/get-docker/" ;;
      kind) log "kind not found: go install sigs.k8s.io/kind@$KIND_VERSION, or a release binary: https://kind.sigs.k8s.io/docs/user/quick-start/#installation" ;;
      kubectl) log "kubectl not found: https://kubernetes.io/docs/tasks/tools/ (or \`make tools\`, which builds one into $CACHE/bin/current)" ;;
      helm) log "helm not found: https://helm.sh/docs/intro/install/ (or \`make tools\`, which builds one into $CACHE/bin/current)" ;;
      uv) log "uv not found: pip install uv==$UV_VERSION (https://docs.astral.sh/uv/)" ;;
      *) log "$cmd not found: install it with your package manager" ;;
    esac
  done
  [ "$missing" = 0 ] || die "missing tools, see above"
}

docker_running() {
  docker info >/dev/null 2>&1 || die "docker cannot reach its daemon: start Docker (Docker Desktop, or: sudo systemctl start docker), then check with: docker info"
}

# (grep reads all of its input: with -q it may stop early, and pipefail would see kind's SIGPIPE.)
cluster_exists() { kind get clusters 2>/dev/null | grep -x "$CLUSTER" >/dev/null; }

require_cluster() {
  [ -f "$KUBECONFIG" ] || die "no kubeconfig for kind cluster $CLUSTER at $KUBECONFIG: make kind-up first"
}

# --- up / down ---------------------------------------------------------------------------------

wait_api_server() { # a reused cluster's nodes may have just restarted with the Docker engine
  local deadline=$(($(date +%s) + 180))
  until kubectl get --raw /readyz >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || die "the API server of kind cluster $CLUSTER is not ready after 3 minutes (make kind-down, then again)"
    sleep 2
  done
}

cmd_up() {
  if [ "$KIND_OFFLINE" = 1 ]; then
    log "offline: Docker engine, node image and kind CLI built here (KIND_OFFLINE=0 to use your own)"
    local tool missing=()
    for tool in debootstrap jq gcc; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
    if [ ${#missing[@]} -gt 0 ]; then
      log "apt-get install ${missing[*]} (the node image's build needs them)"
      { apt-get install -y -q --no-install-recommends "${missing[@]}" ||
        { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; }; } >&2
    fi
    "$here/offline/docker-engine.sh" up
    KIND_IMAGE=${KIND_IMAGE:-$("$here/offline/kind-node-image.sh" build | tail -n 1)}
  fi
  need docker kind kubectl
  docker_running
  local have
  have=$(kind version 2>/dev/null | awk '{print $2}')
  [ "$have" = "$KIND_VERSION" ] || log "note: kind ${have:-?} here; this script was checked against kind $KIND_VERSION"
  mkdir -p "$(dirname "$KUBECONFIG")"
  if cluster_exists && [ -z "$(docker ps -q --filter "label=io.x-k8s.kind.cluster=$CLUSTER" --filter status=running)" ]; then
    # Its node containers stopped (the Docker engine or the machine restarted): a kind node does
    # not come back whole from that, so it is made anew.
    log "cluster $CLUSTER exists but its nodes are not running: deleting it to create it again"
    kind delete cluster --name "$CLUSTER" >&2
  fi
  if cluster_exists; then
    log "cluster $CLUSTER exists: reusing it"
    kind export kubeconfig --name "$CLUSTER" --kubeconfig "$KUBECONFIG" >&2
    wait_api_server
  else
    local image=${KIND_IMAGE:-$KIND_NODE_IMAGE} image_args=()
    [ "$image" = default ] || image_args=(--image "$image")
    # kind-config.yaml with the host ports of KIND_HTTP_PORT and KIND_HTTPS_PORT.
    sed -e "s/^\([[:space:]]*hostPort:[[:space:]]*\)80\$/\1$HTTP_PORT/" \
      -e "s/^\([[:space:]]*hostPort:[[:space:]]*\)443\$/\1$HTTPS_PORT/" "$root/kind-config.yaml" >"$WORK/kind-config.yaml"
    log "creating cluster $CLUSTER (kind-config.yaml, node image ${image}, ingress on 127.0.0.1:$HTTP_PORT and :$HTTPS_PORT)"
    kind create cluster --name "$CLUSTER" --config "$WORK/kind-config.yaml" --kubeconfig "$KUBECONFIG" \
      --wait 3m ${image_args[@]+"${image_args[@]}"} >&2
  fi
  if [ "$KIND_OFFLINE" = 1 ]; then
    local ingress_image
    ingress_image=$("$here/offline/ingress-image.sh" build | tail -n 1)
    load_image "$ingress_image"
    log "installing Traefik as the ingress controller of class nginx (hack/offline/kind-node/ingress-traefik.yaml)"
    "$here/offline/ingress-image.sh" manifest | kubectl apply -f - >/dev/null
    log "waiting for the ingress controller"
    kubectl -n "$OFFLINE_INGRESS_NAMESPACE" rollout status "deployment/$OFFLINE_INGRESS_DEPLOYMENT" --timeout=5m >&2
  else
    log "installing ingress-nginx $INGRESS_NGINX_VERSION (its kind manifest)"
    kubectl apply -f "$INGRESS_MANIFEST" >/dev/null
    log "waiting for the ingress-nginx controller"
    kubectl -n ingress-nginx rollout status deployment/ingress-nginx-controller --timeout=5m >&2
  fi
  log "cluster $CLUSTER is up: export KUBECONFIG=$KUBECONFIG"
}

cmd_down() {
  need kind
  if cluster_exists; then
    log "deleting cluster $CLUSTER"
    kind delete cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG" >&2
  else
    log "no kind cluster $CLUSTER"
  fi
  rm -f "$KUBECONFIG"
}

# --- images ------------------------------------------------------------------------------------

# `kind load docker-image` fails on Docker's containerd image store (the default since Docker 29:
# "content digest ... not found"); a single-platform archive loads on either store.
# (Older Docker has no `save --platform`; its image store holds one platform anyway.)
load_image() {
  local image=$1 archive platform
  archive="$WORK/$(printf '%s' "$image" | tr '/:' '__').tar"
  platform=$(docker version -f '{{.Server.Os}}/{{.Server.Arch}}')
  log "loading $image into kind cluster $CLUSTER"
  docker image save --platform "$platform" -o "$archive" "$image" 2>/dev/null \
    || docker image save -o "$archive" "$image"
  kind load image-archive "$archive" --name "$CLUSTER" >&2
  rm -f "$archive"
}

# The reference services (hack/lib.sh: the folders of services/ whose package runs as `python -m`).
# Each is built by services/Dockerfile (--build-arg SERVICE=<name>) with the repository root as its
# context, where the uv workspace (uv.lock, services/platform-contract) is; the root .dockerignore
# is the operator's, so services/Dockerfile.dockerignore is the services' (BuildKit takes it instead).
built_services() { service_names "$root"; }

# The e2e suite names images no node can pull (example/orders:1, ...): under kwok nothing runs. On
# kind each of those names is the stand-in app of tests/e2e/app (answers /health and /ready on
# 8000), so the suite's services really start. The names are read from the suite itself.
e2e_images() {
  local build_args=() names name
  [ -z "${BASE_IMAGE:-}" ] || build_args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
  log "building $E2E_APP_IMAGE (tests/e2e/app/Dockerfile), the e2e suite's stand-in workload"
  "$DOCKER_BUILD_CLI" build -f "$root/tests/e2e/app/Dockerfile" ${build_args[@]+"${build_args[@]}"} -t "$E2E_APP_IMAGE" \
    "$root/tests/e2e/app" >&2
  names=$(grep -ohE '"example/[a-z0-9.-]+:[0-9A-Za-z._-]+"' "$root"/tests/e2e/*.py | tr -d '"' | sort -u)
  for name in $names; do
    docker tag "$E2E_APP_IMAGE" "$name"
  done
  # One archive for all the names: the layers are shared.
  local archive="$WORK/e2e-app.tar"
  # shellcheck disable=SC2086 # one argument per image name
  docker image save -o "$archive" "$E2E_APP_IMAGE" $names
  kind load image-archive "$archive" --name "$CLUSTER" >&2
  rm -f "$archive"
  log "loaded $E2E_APP_IMAGE as $(wc -w <<<"$names") e2e image name(s)"
}

# catalog-data's FerretDB (built by hack/offline/images.sh demo-databases), as the manifest names it.
demo_database_images() {
  local image
  # shellcheck disable=SC2013 # one image name per line, no spaces
  for image in $(sed -n 's/^[[:space:]]*image:[[:space:]]*//p' "$here/kind-demo/demo-databases.yaml"); do
    load_image "$image"
  done
}

# Offline, hack/offline/images.sh builds everything on its Debian base (and the chart's dev servers' images).
cmd_images_offline() {
  local service n=0 image
  log "offline: building the images on the Debian base of hack/offline/images.sh"
  "$here/offline/images.sh" operator services dev-servers demo-databases
  BASE_IMAGE=$("$here/offline/images.sh" base-tag)
  export BASE_IMAGE
  load_image "$OPERATOR_IMAGE"
  for service in $(built_services); do
    load_image "platform/$service:dev"
    n=$((n + 1))
  done
  # The images chart-values points the chart at: repository=... then tag=..., for redis, rabbitmq, postgres.
  for image in $("$here/offline/images.sh" chart-values | tr ' ' '\n' | sed -n 's/^[a-z]*\.image\.\(repository\|tag\)=//p' | paste -d: - -); do
    load_image "$image"
  done
  demo_database_images
  e2e_images
  log "loaded: $OPERATOR_IMAGE, $n service image(s), the dev servers' and demo databases' images"
}

cmd_images() {
  need docker kind
  docker_running
  cluster_exists || die "no kind cluster $CLUSTER: make kind-up first"
  if [ "$KIND_OFFLINE" = 1 ]; then
    cmd_images_offline
    return
  fi
  local build_args=(--build-arg "UV_VERSION=$UV_VERSION") service services n=0
  [ -z "${BASE_IMAGE:-}" ] || build_args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
  log "building $OPERATOR_IMAGE (operator/Dockerfile)"
  docker build -f "$root/operator/Dockerfile" "${build_args[@]}" -t "$OPERATOR_IMAGE" "$root" >&2
  load_image "$OPERATOR_IMAGE"
  services=$(built_services)
  for service in $services; do
    log "building platform/$service:dev (services/Dockerfile, SERVICE=$service)"
    docker build -f "$root/services/Dockerfile" "${build_args[@]}" --build-arg "SERVICE=$service" \
      -t "platform/$service:dev" "$root" >&2
    load_image "platform/$service:dev"
    n=$((n + 1))
  done
  # FerretDB's image needs no Python: on debian:bookworm-slim. (The chart's PostgreSQL is postgres:16-alpine here.)
  log "building the samples' demo database (hack/offline/images.sh demo-databases, on debian:bookworm-slim; FerretDB needs Go)"
  BASE_IMAGE=debian:bookworm-slim DOCKER_CLI=docker "$here/offline/images.sh" demo-databases
  demo_database_images
  e2e_images
  log "loaded: $OPERATOR_IMAGE and $n service image(s)"
}

# --- install -----------------------------------------------------------------------------------

cmd_install() {
  need helm kubectl
  require_cluster
  local offline_values=()
  if [ "$KIND_OFFLINE" = 1 ]; then
    # The dev Redis, RabbitMQ and PostgreSQL images built from Debian's packages instead of Docker Hub's.
    read -r -a offline_values <<<"$("$here/offline/images.sh" chart-values)"
  fi
  local upgrade=0
  if helm status "$RELEASE" -n "$RELEASE_NAMESPACE" >/dev/null 2>&1; then upgrade=1; fi
  # The Redis admin password comes from an existing Secret, as a platform team's would, and holds
  # every character a URL treats specially: the operator must log in with it as it is.
  kubectl create namespace "$RELEASE_NAMESPACE" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl -n "$RELEASE_NAMESPACE" create secret generic "$E2E_REDIS_ADMIN_SECRET" \
    --from-literal=password="$E2E_REDIS_ADMIN_PASSWORD" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  log "helm upgrade --install $RELEASE charts/ (namespace $RELEASE_NAMESPACE, in-cluster RabbitMQ, Redis and PostgreSQL)"
  helm upgrade --install "$RELEASE" "$root/charts" -n "$RELEASE_NAMESPACE" --create-namespace \
    --set image.repository=platform-operator --set image.tag=dev --set image.pullPolicy=Never \
    --set redis.enabled=true --set rabbitmq.enabled=true --set postgres.enabled=true \
    ${offline_values[@]+"${offline_values[@]}"} \
    --set redis.existingSecret="$E2E_REDIS_ADMIN_SECRET" \
    --set resyncSeconds="$E2E_RESYNC_SECONDS" --set userSweepSeconds="$E2E_SWEEP_SECONDS" \
    --wait --timeout 5m >&2
  if [ "$upgrade" = 1 ]; then
    # Same tag, maybe a new image: pods from before the last `images` would keep the old one.
    log "restarting the operator on the image last loaded"
    kubectl -n "$RELEASE_NAMESPACE" rollout restart "deployment/$OPERATOR_DEPLOYMENT" >&2
  fi
  kubectl -n "$RELEASE_NAMESPACE" rollout status "deployment/$OPERATOR_DEPLOYMENT" --timeout=3m >&2
  log "helm test $RELEASE (the chart's own check of the operator's liveness endpoint)"
  # Without --logs: the chart deletes a test pod that succeeded (hook-succeeded) before helm could
  # read it; one that failed is kept, and its log printed here.
  if ! helm test "$RELEASE" -n "$RELEASE_NAMESPACE" >&2; then
    kubectl -n "$RELEASE_NAMESPACE" logs "pod/$OPERATOR_DEPLOYMENT-test-metrics" >&2 || true
    die "helm test $RELEASE failed"
  fi
  kubectl -n "$RELEASE_NAMESPACE" get pods -o wide >&2
}

# --- test --------------------------------------------------------------------------------------

# Each step runs as a process of its own, so that one failing does not stop the next and each keeps
# `set -e` (which bash ignores inside a function called as `f || ...`).
cmd_test() {
  local step failed=""
  for step in e2e samples ingress; do
    "$BASH" "$here/kind.sh" "$step" || failed="$failed $step"
  done
  [ -z "$failed" ] || die "failed:$failed"
  log "kind test passed"
}

# `kubectl port-forward` to a Service on a free local port (once per Service and port), stopped on
# exit; sets FORWARDED_PORT.
forward() {
  local namespace=$1 service=$2 port=$3 out pid
  out="$WORK/forward-$namespace-$service-$port"
  if [ -s "$out.port" ]; then
    FORWARDED_PORT=$(cat "$out.port")
    return 0
  fi
  kubectl -n "$namespace" port-forward "service/$service" ":$port" >"$out" 2>&1 &
  pid=$!
  FORWARD_PIDS+=("$pid")
  FORWARDED_PORT=""
  for _ in $(seq 1 60); do
    FORWARDED_PORT=$(sed -n 's/^Forwarding from 127\.0\.0\.1:\([0-9][0-9]*\) .*/\1/p' "$out")
    FORWARDED_PORT=${FORWARDED_PORT%%[!0-9]*}
    if [ -n "$FORWARDED_PORT" ]; then
      echo "$FORWARDED_PORT" >"$out.port"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  die "kubectl port-forward service/$service $port (namespace $namespace) failed: $(cat "$out")"
}

stop_forwards() {
  local pid
  for pid in ${FORWARD_PIDS[@]+"${FORWARD_PIDS[@]}"}; do
    kill "$pid" 2>/dev/null || true
  done
  FORWARD_PIDS=()
}

# host[:port] of a URL ("redis://user:pass@host:6379/0" -> "host 6379").
url_address() {
  local rest=${1#*://}
  rest=${rest##*@}
  rest=${rest%%/*}
  case $rest in
    *:*) echo "${rest%%:*} ${rest##*:}" ;;
    *) echo "$rest $2" ;;
  esac
}

# A host in the cluster ("name", "name.namespace", "name.namespace.svc[.cluster.local]") forwarded
# to a local port; any other host is taken as reachable from here. Sets ADDRESS to host:port.
reach() {
  local host=$1 port=$2 namespace=$RELEASE_NAMESPACE
  case $host in
    *.svc | *.svc.*) ;;
    *.*)
      ADDRESS="$host:$port"
      return 0
      ;;
  esac
  case $host in *.*) namespace=${host#*.} namespace=${namespace%%.*} ;; esac
  forward "$namespace" "${host%%.*}" "$port"
  ADDRESS="127.0.0.1:$FORWARDED_PORT"
}

# reach_url LABEL URL PORT: reach the host of URL (PORT when it names none), as reach does; sets
# REACHED_URL to URL at ADDRESS in place of its host:port (scheme, user and path kept). LABEL names it
# in the log line (not the URL: it may hold a password).
reach_url() {
  local label=$1 url=$2 host port scheme=${2%%://*} rest=${2#*://} userinfo="" path=""
  read -r host port <<<"$(url_address "$url" "$3")"
  reach "$host" "$port"
  case $rest in *@*) userinfo="${rest%@*}@" rest=${rest##*@} ;; esac
  case $rest in */*) path="/${rest#*/}" ;; esac
  REACHED_URL="$scheme://$userinfo$ADDRESS$path"
  log "$label: $host:$port -> $ADDRESS"
}

# The suite checks queues, Redis users and databases itself, with the PLATFORM_* settings `make
# test-e2e` gets from hack/backends.sh and hack/postgres.sh. Here they are the in-cluster operator's
# own, read from its pod, with the in-cluster servers forwarded to local ports.
forward_backends() {
  log "reading the operator's RabbitMQ, Redis and PostgreSQL settings from its pod"
  local settings line key value
  settings=$(kubectl -n "$RELEASE_NAMESPACE" exec "deployment/$OPERATOR_DEPLOYMENT" -- python -c '
import os
for key, value in sorted(os.environ.items()):
    if key.startswith(("PLATFORM_RABBITMQ_", "PLATFORM_REDIS_", "PLATFORM_POSTGRES_")) and "\n" not in value:
        print(f"{key}={value}")')
  local mgmt="" redis="" amqp_host="" amqp_port=5672 redis_host="" redis_port=6379 pg_admin="" pg_host="" pg_port=""
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    key=${line%%=*} value=${line#*=}
    case $key in
      PLATFORM_RABBITMQ_MANAGEMENT_URL) mgmt=$value ;;
      PLATFORM_REDIS_URL) redis=$value ;;
      PLATFORM_RABBITMQ_SERVICE_HOST) amqp_host=$value ;;
      PLATFORM_RABBITMQ_SERVICE_PORT) amqp_port=$value ;;
      PLATFORM_REDIS_SERVICE_HOST) redis_host=$value ;;
      PLATFORM_REDIS_SERVICE_PORT) redis_port=$value ;;
      PLATFORM_POSTGRES_ADMIN_URL) pg_admin=$value ;;
      PLATFORM_POSTGRES_SERVICE_HOST) pg_host=$value ;;
      PLATFORM_POSTGRES_SERVICE_PORT) pg_port=$value ;;
      *) export "$key=$value" ;;
    esac
  done <<<"$settings"
  local host port
  if [ -n "$mgmt" ]; then
    read -r host port <<<"$(url_address "$mgmt" 15672)"
    reach "$host" "$port"
    export PLATFORM_RABBITMQ_MANAGEMENT_URL="http://$ADDRESS"
    log "RabbitMQ management API: $mgmt -> $PLATFORM_RABBITMQ_MANAGEMENT_URL"
  fi
  if [ -n "$amqp_host" ]; then
    reach "$amqp_host" "$amqp_port"
    # Where a test reaches the broker with a service's own credentials (RABBITMQ_URL names the
    # in-cluster host): the operator's settings stay as they are.
    export PLATFORM_E2E_RABBITMQ_ADDRESS=$ADDRESS PLATFORM_RABBITMQ_SERVICE_HOST=$amqp_host PLATFORM_RABBITMQ_SERVICE_PORT=$amqp_port
    log "RabbitMQ AMQP: $amqp_host:$amqp_port -> $ADDRESS"
  fi
  if [ -n "$redis" ]; then
    reach_url "Redis (admin)" "$redis" 6379
    export PLATFORM_REDIS_URL=$REACHED_URL
  fi
  if [ -n "$redis_host" ]; then
    reach "$redis_host" "$redis_port"
    export PLATFORM_E2E_REDIS_ADDRESS=$ADDRESS PLATFORM_REDIS_SERVICE_HOST=$redis_host PLATFORM_REDIS_SERVICE_PORT=$redis_port
  fi
  if [ -n "$pg_admin" ]; then
    # The admin URL holds no password (the chart gives it apart: PLATFORM_POSTGRES_ADMIN_PASSWORD,
    # exported above, which the suite passes on as it is).
    reach_url "PostgreSQL (admin)" "$pg_admin" 5432
    export PLATFORM_POSTGRES_ADMIN_URL=$REACHED_URL
  fi
  if [ -n "$pg_host" ]; then
    # Where a test logs in with a service's own DATABASE_URL (which names the in-cluster host).
    reach "$pg_host" "${pg_port:-5432}"
    export PLATFORM_E2E_POSTGRES_ADDRESS=$ADDRESS
  fi
}

cmd_e2e() {
  need kubectl uv
  require_cluster
  kubectl -n "$RELEASE_NAMESPACE" rollout status "deployment/$OPERATOR_DEPLOYMENT" --timeout=3m >&2 \
    || die "the operator is not running: hack/kind.sh images install (or make kind-test)"
  forward_backends
  log "e2e suite (tests/e2e) against kind cluster $CLUSTER, the chart's operator in-cluster"
  cd "$root"
  local helm_args="--set image.repository=${OPERATOR_IMAGE%:*} --set image.tag=${OPERATOR_IMAGE##*:} --set image.pullPolicy=Never"
  [ "$KIND_OFFLINE" != 1 ] || helm_args="$helm_args $("$here/offline/images.sh" chart-values)"
  local args=("$@")
  [ ${#args[@]} -gt 0 ] || args=(tests/e2e)
  PLATFORM_E2E_TARGET=kind PLATFORM_E2E_OPERATOR=in-cluster PLATFORM_E2E_HELM_ARGS="$helm_args" \
    uv run --locked --all-packages pytest -q "${args[@]}"
}

# samples/ as one stream, each sample whose service image was built here pointed at that image.
render_samples() {
  local file service script=""
  for service in $(built_services); do
    script="${script}s#^\\([[:space:]]*image:[[:space:]]*\\)platform/$service:[^[:space:]]*#\\1platform/$service:dev#;"
  done
  for file in "$root"/samples/*.yaml; do
    if [ "$(basename "$file")" = 00-secrets.yaml ]; then
      # catalog-data's DSN points at the FerretDB of hack/kind-demo/demo-databases.yaml;
      # the other users' Secrets (the bot token) stay as samples/ has them.
      demo_secret_names | without_secrets "$file"
      printf -- '---\n'
      cat "$here/kind-demo/demo-secrets.yaml"
    elif [ "$(basename "$file")" = telegram-bot.yaml ]; then
      # The bot talks to the Bot API stand-in of hack/kind-demo/telegram-api.yaml.
      printf -- '---\n'
      sed -e "$script" -e '/^  env:$/a\    - name: TELEGRAM_API_URL\n      value: http://telegram-api:8081' "$file"
    else
      printf -- '---\n'
      if [ -n "$script" ]; then sed -e "$script" "$file"; else cat "$file"; fi
    fi
  done
}

demo_secret_names() { sed -n 's/^  name:[[:space:]]*//p' "$here/kind-demo/demo-secrets.yaml"; }

# The YAML stream of file $1 without the Secrets named on stdin (one per line).
without_secrets() {
  awk -v names="$(cat)" '
    BEGIN { n = split(names, list, "\n"); for (i = 1; i <= n; i++) drop[list[i]] = 1 }
    function flush() { if (doc != "" && !(name in drop)) printf "---\n%s", doc; doc = ""; name = "" }
    /^---/ { flush(); next }
    { doc = doc $0 "\n" }
    /^  name:/ && name == "" { name = $2 }
    END { flush() }' "$1"
}

cmd_samples() {
  need kubectl
  require_cluster
  kubectl create namespace "$DEMO_NAMESPACE" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl label namespace "$DEMO_NAMESPACE" pod-security.kubernetes.io/enforce=restricted --overwrite >/dev/null
  log "what the samples talk to: FerretDB (demo-databases.yaml), a Bot API stand-in (telegram-api.yaml);" \
    "users-data's PostgreSQL database is the operator's to provision, on the chart's PostgreSQL"
  kubectl -n "$DEMO_NAMESPACE" apply -f "$here/kind-demo/demo-databases.yaml" >&2
  kubectl -n "$DEMO_NAMESPACE" apply -f "$here/kind-demo/telegram-api.yaml" >&2
  kubectl -n "$DEMO_NAMESPACE" rollout status deployment/mongo deployment/telegram-api --timeout=180s >&2
  log "applying samples/ to namespace $DEMO_NAMESPACE"
  render_samples | kubectl -n "$DEMO_NAMESPACE" apply -f - >&2
  log "waiting until the operator has provisioned every sample (QueuesReady, CacheReady, DatabaseReady)"
  kubectl -n "$DEMO_NAMESPACE" wait psvc --all --for=condition=QueuesReady --timeout=180s >&2
  kubectl -n "$DEMO_NAMESPACE" wait psvc --all --for=condition=CacheReady --timeout=180s >&2
  kubectl -n "$DEMO_NAMESPACE" wait psvc --all --for=condition=DatabaseReady --timeout=180s >&2
  # Ready needs the pods running, so an image: only samples whose image was built here get there.
  local samples name image service not_ready="" built
  built=$(built_services)
  samples=$(kubectl -n "$DEMO_NAMESPACE" get psvc -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.spec.image}{"\n"}{end}')
  while read -r name image; do
    [ -n "$name" ] || continue
    service=${image#platform/} service=${service%%:*}
    # (A here-string, not a pipe: under pipefail, `grep -q` closing the pipe early fails the producer.)
    if [ "$image" = "platform/$service:dev" ] && grep -qx "$service" <<<"$built"; then
      log "waiting until $name is Ready"
      if ! kubectl -n "$DEMO_NAMESPACE" wait "psvc/$name" --for=condition=Ready --timeout=300s >&2; then
        log "$name is not Ready: $(kubectl -n "$DEMO_NAMESPACE" get "psvc/$name" \
          -o jsonpath='{.status.conditions[?(@.type=="Ready")].reason}: {.status.conditions[?(@.type=="Ready")].message}')"
        not_ready="$not_ready $name"
      fi
    else
      log "SKIPPED: $name Ready: its image $image is not built here (no service $service in services/)"
    fi
  done <<<"$samples"
  kubectl -n "$DEMO_NAMESPACE" get psvc -o wide >&2
  show_provisioned_database users-data || not_ready="$not_ready users-data(database)"
  [ -z "$not_ready" ] || die "samples not Ready:$not_ready"
}

# The database the operator provisioned for data service $1 (status.database), as the chart's
# PostgreSQL holds it: its owner, and the tables its migrations made with the DATABASE_URL of
# $1-platform (read as the admin over the pod's Unix socket).
show_provisioned_database() {
  local name=$1 database found
  database=$(kubectl -n "$DEMO_NAMESPACE" get "psvc/$name" -o jsonpath='{.status.database.name}')
  [ -n "$database" ] || { log "$name: no status.database (not provisioned)"; return 1; }
  kubectl -n "$DEMO_NAMESPACE" get secret "$name-platform" -o jsonpath='{.data.DATABASE_URL}' | grep -q . ||
    { log "$name: no DATABASE_URL in Secret $name-platform"; return 1; }
  found=$(postgres_admin_sql "$database" <<'EOF'
SELECT 'owner ' || pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database();
SELECT 'tables ' || string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public';
SELECT 'migration ' || version_num FROM alembic_version;
EOF
  ) || { log "$name: its migrations have not run in database $database: $found"; return 1; }
  log "$name: database $database on the chart's PostgreSQL: $(tr '\n' ' ' <<<"$found")"
}

# psql as the admin role in the chart's PostgreSQL pod (its Unix socket), on database $1; SQL on stdin.
postgres_admin_sql() {
  # shellcheck disable=SC2016 # $POSTGRES_USER is the pod's own, expanded by its shell
  kubectl -n "$RELEASE_NAMESPACE" exec -i "deployment/$OPERATOR_DEPLOYMENT-postgres" -- \
    sh -c 'exec psql -X -At -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$0"' "$1" 2>&1
}

# The reference flow through the ingress, as tests/flow runs it with processes: a user in
# users-data (reached through a port-forward: a data service has no ingress), an order POSTed to
# orders-api through the ingress on localhost (twice, with one Idempotency-Key), then the one
# notification notifier-worker wrote to Redis for it (read with redis-cli in the chart's Redis pod).
cmd_ingress() {
  need curl python3
  require_cluster
  local host="orders.localtest.me" base="http://localhost:$HTTP_PORT" body user_id order_id again key worker_key value
  log "the api sample through the ingress: curl -H 'Host: $host' $base/health"
  for _ in $(seq 1 30); do
    if curl -fsS --max-time 5 -H "Host: $host"  "$base/health" >/dev/null; then break; fi
    sleep 2
  done
  curl -fsS --max-time 5 -H "Host: $host"  "$base/health" >&2 \
    || die "no answer from $base/health (Host: $host)"
  echo >&2
  forward "$DEMO_NAMESPACE" users-data 80
  body=$(curl -fsS --max-time 10 -H 'Content-Type: application/json' \
    -d "{\"email\": \"kind-$(date +%s)@example.com\", \"name\": \"Ada\"}" "http://127.0.0.1:$FORWARDED_PORT/users") \
    || die "users-data refused POST /users"
  user_id=$(json_field id <<<"$body")
  log "users-data: user $user_id"
  key="kind-$(date +%s%N)"
  body=$(curl -fsS --max-time 10 -H "Host: $host" -H 'Content-Type: application/json' -H "Idempotency-Key: $key" \
    -H 'X-Request-ID: kind-flow-1' -d "{\"user_id\": \"$user_id\", \"item\": \"book\", \"quantity\": 2}" \
    "$base/orders") || die "orders-api refused POST /orders through the ingress"
  order_id=$(json_field id <<<"$body")
  again=$(curl -fsS --max-time 10 -H "Host: $host" -H 'Content-Type: application/json' -H "Idempotency-Key: $key" \
    -d "{\"user_id\": \"$user_id\", \"item\": \"book\", \"quantity\": 2}" "$base/orders")
  [ "$(json_field id <<<"$again")" = "$order_id" ] || die "the same Idempotency-Key gave another order: $again"
  log "orders-api (through the ingress): order $order_id, the same on the repeated POST"
  worker_key="$DEMO_NAMESPACE:notifier-worker:notifications:$order_id"
  for _ in $(seq 1 60); do
    # shellcheck disable=SC2016 # $REDIS_PASSWORD is the pod's own, expanded by its shell
    value=$(kubectl -n "$RELEASE_NAMESPACE" exec "deployment/$OPERATOR_DEPLOYMENT-redis" -- \
      sh -c 'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli --no-auth-warning GET "$0"' "$worker_key" 2>/dev/null || true)
    [ -z "$value" ] || break
    sleep 2
  done
  [ -n "$value" ] || die "no notification for order $order_id in Redis ($worker_key) after 2 minutes"
  case $value in *"$order_id"*) ;; *) die "notification $worker_key does not name order $order_id: $value" ;; esac
  log "notifier-worker: $worker_key = $value"
  log "ingress flow OK"
}

json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# What to look at first after a failure.
diagnose() {
  [ -f "$KUBECONFIG" ] && command -v kubectl >/dev/null 2>&1 || return 0
  log "pods (ingress-nginx, $RELEASE_NAMESPACE, $DEMO_NAMESPACE):"
  kubectl get pods -o wide -n ingress-nginx >&2 2>/dev/null || true
  kubectl get pods -o wide -n "$RELEASE_NAMESPACE" >&2 2>/dev/null || true
  kubectl get psvc,pods -o wide -n "$DEMO_NAMESPACE" >&2 2>/dev/null || true
  log "recent events in $RELEASE_NAMESPACE:"
  kubectl get events -n "$RELEASE_NAMESPACE" --sort-by=.lastTimestamp 2>/dev/null | tail -n 15 >&2 || true
}

cmd_all() {
  need kubectl helm uv curl
  if [ "$KIND_OFFLINE" = 1 ]; then
    "$here/offline/docker-engine.sh" up
    "$here/offline/kind-node-image.sh" kind-cli >/dev/null # a new machine has no kind CLI yet
  fi
  need docker kind
  if cluster_exists; then
    # The tier starts from nothing: a cluster kept by an earlier run (KEEP_KIND=1, a failure)
    # still holds that run's release, namespaces and images.
    log "cluster $CLUSTER exists (kept by an earlier run): deleting it to start from nothing"
    kind delete cluster --name "$CLUSTER" >&2
  fi
  cmd_up
  cmd_images
  cmd_install
  cmd_test
}

case $MODE in
  e2e)
    shift
    cmd_e2e "$@"
    ;;
  up | down | images | install | test | samples | ingress | all) "cmd_$MODE" ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
