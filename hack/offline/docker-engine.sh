#!/usr/bin/env bash
# A Docker engine of the project's own, for machines without one (the project's build machines).
#
#   hack/offline/docker-engine.sh up       install what is missing, start dockerd, prove `docker run --privileged`
#   hack/offline/docker-engine.sh down     stop that dockerd (its containers stop with it; images stay)
#   hack/offline/docker-engine.sh status   say whether it runs and answers (exit 0) or not (exit 3)
#   hack/offline/docker-engine.sh env      print the exports that point a shell at it:  eval "$(hack/offline/docker-engine.sh env)"
#
# Why: the build machines reach package registries only (no container registry, no Docker Hub), and
# a fresh one has a Docker 28 client at /usr/local/bin/docker but no engine. Debian's docker.io (20.10)
# installs and runs there (overlay2, cgroup v1), but `docker run --privileged` fails ("unable to
# apply caps: operation not permitted") because the machine's capability bounding set lacks
# CAP_SYS_RESOURCE. hack/offline/oci-runtime-wrapper drops what cannot be granted from the OCI spec and execs
# runc; this dockerd runs it as its default runtime. kind's node containers are privileged.
#
# `up` is idempotent: when the daemon already answers it does nothing. It installs with apt-get, when
# missing, docker.io (dockerd, containerd, runc, and /usr/bin/docker, a 20.10 client with BuildKit
# built in, which hack/offline/images.sh uses: the Docker 28 client has no buildx plugin here) and python3
# (the wrapper's interpreter), without letting the package start Debian's own docker service.
#
# Settings (environment):
#   PLATFORM_DOCKER_ROOT      data root                 (/var/lib/platform-docker)
#   PLATFORM_DOCKER_EXEC_ROOT exec root, containerd's   (/var/run/platform-docker)
#   PLATFORM_DOCKER_SOCK      the daemon's own socket   (/var/run/platform-docker.sock)
#   PLATFORM_DOCKER_DEFAULT_SOCK  also listen on /var/run/docker.sock: auto (when nothing else
#                             does), 1, 0               (auto)
#   PLATFORM_DOCKER_RUNTIME   name of the wrapper runtime in dockerd (platform-runc)
#   PLATFORM_DOCKERD_ARGS     more dockerd flags, split on spaces (e.g. "--bip=10.99.0.1/24"). Not for a
#                             second engine beside the first: it shares docker0, and one with
#                             --bridge=none deletes docker0 (seen here: the first engine's default network
#                             broke until docker0 was re-created by hand)
#   PLATFORM_CACHE            log (dockerd.log) and state (~/.cache/platform-operator)
# Progress goes to stderr as `[docker HH:MM:SS] ...`; the daemon's log to $PLATFORM_CACHE/dockerd.log.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

DATA_ROOT=${PLATFORM_DOCKER_ROOT:-/var/lib/platform-docker}
EXEC_ROOT=${PLATFORM_DOCKER_EXEC_ROOT:-/var/run/platform-docker}
SOCK=${PLATFORM_DOCKER_SOCK:-/var/run/platform-docker.sock}
DEFAULT_SOCK=/var/run/docker.sock
USE_DEFAULT_SOCK=${PLATFORM_DOCKER_DEFAULT_SOCK:-auto}
RUNTIME=${PLATFORM_DOCKER_RUNTIME:-platform-runc}
CACHE=${PLATFORM_CACHE:-$HOME/.cache/platform-operator}
LOG_FILE="$CACHE/dockerd.log"
PIDFILE="$EXEC_ROOT.pid"
WRAPPER_DIR=/usr/local/libexec/platform-docker
WRAPPER="$WRAPPER_DIR/oci-runtime-wrapper"
# The client with BuildKit built in (Debian's docker.io); any client works for the rest.
CLI=/usr/bin/docker
# A one-file image (tini, static, shipped by docker.io) to prove privileged containers start.
PROBE_IMAGE=platform/probe:tini-static
START_TIMEOUT=${PLATFORM_DOCKER_START_TIMEOUT:-90}

LOG_TAG=docker
# shellcheck source=hack/lib.sh
. "$here/../lib.sh"

docker_cli() { DOCKER_HOST="unix://$SOCK" "$CLI" "$@"; }

daemon_pid() {
  local pid
  [ -s "$PIDFILE" ] || return 1
  pid=$(cat "$PIDFILE")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

answers() { [ -x "$CLI" ] && docker_cli info --format '{{.ServerVersion}}' >/dev/null 2>&1; }

need_root() {
  [ "$(id -u)" = 0 ] || die "run as root (dockerd, apt-get and $WRAPPER_DIR need it)"
}

# apt-get install, without letting the docker.io package start Debian's own service: a policy-rc.d
# that refuses every start, for the duration, unless the machine has one already.
apt_install() {
  local policy=/usr/sbin/policy-rc.d added=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    added=1
  fi
  log "apt-get install $*"
  local rc=0
  {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2 ||
      { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2; }
  } || rc=$?
  [ "$added" = 1 ] && rm -f "$policy"
  [ "$rc" = 0 ] || die "apt-get install $* failed (exit $rc)"
}

install_packages() {
  local missing=()
  [ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] && [ -x /usr/sbin/runc ] || missing+=(docker.io)
  command -v iptables >/dev/null || missing+=(iptables)
  [ -x /usr/bin/python3 ] || missing+=(python3)
  if [ ${#missing[@]} -gt 0 ]; then
    apt_install "${missing[@]}"
  fi
}

# The wrapper, installed outside the checkout (dockerd keeps its path), run by Debian's python3 in
# isolated mode (-I: no user site, no PYTHON* variables; -S: no site import, faster start).
install_wrapper() {
  local tmp
  mkdir -p "$WRAPPER_DIR"
  tmp=$(mktemp "$WRAPPER_DIR/.wrapper.XXXXXX")
  { echo '#!/usr/bin/python3 -IS'; tail -n +2 "$here/oci-runtime-wrapper"; } >"$tmp"
  chmod 0755 "$tmp"
  if cmp -s "$tmp" "$WRAPPER"; then
    rm -f "$tmp"
  else
    mv -f "$tmp" "$WRAPPER"
    log "installed the runtime wrapper at $WRAPPER"
  fi
}

# The probe image: tini-static alone, imported from a tarball (no registry needed).
ensure_probe_image() {
  docker_cli image inspect "$PROBE_IMAGE" >/dev/null 2>&1 && return 0
  local tini=/usr/bin/tini-static work
  [ -x "$tini" ] || tini=$(readlink -f /usr/bin/docker-init)
  [ -x "$tini" ] || die "no static tini (/usr/bin/tini-static) for the probe image"
  work=$(mktemp -d)
  cp "$tini" "$work/tini"
  tar -C "$work" -c tini | docker_cli import --change 'ENTRYPOINT ["/tini"]' - "$PROBE_IMAGE" >/dev/null
  rm -rf "$work"
}

prove_privileged() {
  ensure_probe_image
  local out
  if ! out=$(docker_cli run --rm --privileged "$PROBE_IMAGE" --version 2>&1); then
    die "docker run --privileged failed: $out (daemon log: $LOG_FILE)"
  fi
  log "docker run --privileged works ($out)"
}

up() {
  need_root
  if daemon_pid >/dev/null && answers; then
    # A changed wrapper takes effect at once: dockerd runs it anew for every container operation.
    install_wrapper
    log "dockerd already running (pid $(daemon_pid), unix://$SOCK)"
    return 0
  fi
  install_packages
  install_wrapper
  if pid=$(daemon_pid); then
    log "dockerd (pid $pid) runs but does not answer yet; waiting"
  else
    rm -f "$PIDFILE"
    mkdir -p "$DATA_ROOT" "$EXEC_ROOT" "$CACHE" "$(dirname "$SOCK")"
    local hosts=(-H "unix://$SOCK")
    case "$USE_DEFAULT_SOCK" in
      1) hosts+=(-H "unix://$DEFAULT_SOCK") ;;
      auto)
        if [ -S "$DEFAULT_SOCK" ] && DOCKER_HOST="unix://$DEFAULT_SOCK" "$CLI" version >/dev/null 2>&1; then
          log "another daemon answers on $DEFAULT_SOCK: leaving it alone, use unix://$SOCK"
        else
          rm -f "$DEFAULT_SOCK"
          hosts+=(-H "unix://$DEFAULT_SOCK")
        fi
        ;;
    esac
    local extra=()
    read -r -a extra <<<"${PLATFORM_DOCKERD_ARGS:-}"
    log "starting dockerd (data root $DATA_ROOT, log $LOG_FILE)"
    printf '\n==== %s dockerd start\n' "$(date -Is)" >>"$LOG_FILE"
    # setsid: its own session, so that it outlives the shell (and job) that started it.
    setsid /usr/sbin/dockerd \
      --data-root "$DATA_ROOT" \
      --exec-root "$EXEC_ROOT" \
      --pidfile "$PIDFILE" \
      "${hosts[@]}" \
      --storage-driver overlay2 \
      --add-runtime "$RUNTIME=$WRAPPER" \
      --default-runtime "$RUNTIME" \
      ${extra[@]+"${extra[@]}"} \
      </dev/null >>"$LOG_FILE" 2>&1 &
  fi
  local waited=0
  until answers; do
    if [ "$waited" -ge "$START_TIMEOUT" ]; then
      tail -n 30 "$LOG_FILE" >&2 || true
      die "dockerd did not answer within ${START_TIMEOUT}s (log above: $LOG_FILE)"
    fi
    if [ "$waited" -ge 3 ] && ! daemon_pid >/dev/null && ! pgrep -f -- "--pidfile $PIDFILE" >/dev/null; then
      tail -n 30 "$LOG_FILE" >&2 || true
      die "dockerd exited (log above: $LOG_FILE)"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  log "dockerd $(docker_cli info --format '{{.ServerVersion}}, storage {{.Driver}}, cgroup v{{.CgroupVersion}}, default runtime {{.DefaultRuntime}}') answers on unix://$SOCK"
  prove_privileged
  log "ready; in a shell: eval \"\$($0 env)\""
}

down() {
  need_root
  local pid waited=0
  if ! pid=$(daemon_pid); then
    log "dockerd not running"
    rm -f "$PIDFILE"
    return 0
  fi
  log "stopping dockerd (pid $pid; its containers stop with it)"
  kill -TERM "$pid"
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$waited" -ge 60 ]; then
      log "still running after 60s; sending KILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 1
    waited=$((waited + 1))
  done
  log "stopped"
}

status() {
  local pid
  if pid=$(daemon_pid) && answers; then
    log "running: pid $pid, unix://$SOCK, $(docker_cli info --format 'server {{.ServerVersion}}, default runtime {{.DefaultRuntime}}, {{.Images}} images, {{.ContainersRunning}} containers running')"
    return 0
  fi
  if pid=$(daemon_pid); then
    log "dockerd pid $pid runs but does not answer on unix://$SOCK"
  else
    log "not running"
  fi
  return 3
}

env_exports() {
  # DOCKER_HOST works for every client (the Docker 28 one negotiates the 20.10 API down);
  # PLATFORM_DOCKER_CLI is the one to build with (BuildKit built in).
  printf 'export DOCKER_HOST=%q\n' "unix://$SOCK"
  printf 'export PLATFORM_DOCKER_CLI=%q\n' "$CLI"
  printf 'export DOCKER_BUILDKIT=1\n'
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  env) env_exports ;;
  *)
    sed -n '2,8p' "$0" >&2
    exit 2
    ;;
esac
