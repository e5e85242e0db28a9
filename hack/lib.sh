# shellcheck shell=bash
# What the hack/ scripts share. Sourced, never run: a script sets LOG_TAG, then
#   LOG_TAG=backends; . "$here/lib.sh"
#
#   log MSG...          "[TAG HH:MM:SS] MSG" on stderr: the progress lines of the make targets
#   die MSG...          log "error: MSG", exit 1
#   port_busy PORT      true when something accepts connections on 127.0.0.1:PORT
#   alive PIDFILE COMM  the pid in PIDFILE if that process runs and its command is COMM
#   wait_gone PID SECS  true once PID has exited (a zombie counts: its parent, not us, reaps it)
#   stop_process WHAT PIDFILE COMM [CMD...]
#                       stop the process of PIDFILE (as alive finds it): CMD (when it fails, or without one:
#                       SIGTERM), SIGKILL after 30s; then PIDFILE is removed. WHAT (may be "") leads its log lines
#   instance_dir        the folder of this BACKENDS_NAME's local servers: $PLATFORM_CACHE/backends/NAME
#                       (backends.sh's, with postgres/ and ferretdb/ in it); exits 2 unless NAME is [A-Za-z0-9_-]+
#   setting NAME FILE DEFAULT
#                       set the variable NAME: the environment's value wins, then NAME=VALUE in FILE (what
#                       `up` recorded, or a pin file; none when FILE is missing), then DEFAULT
#   port_setting NAME FILE DEFAULT   the same, and dies unless the port is a number
#   apt_ensure PKG...   apt-get install those of the Debian packages PKG that are not installed (sudo unless root)
#   distro_unit_disable SERVICE
#                       the distro's SERVICE (systemd unit or init script) never starts at boot or by itself again:
#                       the local servers are started by the hack/ scripts only
#   secret FILE         the password in FILE, generated once (hex: safe in SQL quotes and URLs)
#   service_names ROOT  the reference services under ROOT/services, one per line: the folders whose
#                       package runs as `python -m` (src/<package>/__main__.py; not platform-contract),
#                       each built by services/Dockerfile with --build-arg SERVICE=<folder>
#   ensure_docker       a Docker engine answers the docker CLI: the default one, else the one of
#                       hack/offline/docker-engine.sh (DOCKER_HOST exported); dies otherwise
#   timed LABEL CMD...  run CMD, then log how long it took
#   go_build_env DIR    the settings of the Go builds below: BIN=$PLATFORM_CACHE/bin (a folder per tool and
#                       version), WORK=$PLATFORM_CACHE/DIR (their modules and scratch; not made here),
#                       CGO_ENABLED=0 and GOFLAGS (-buildvcs=false unless set) exported; CACHE as well
#   go_install NAME VERSION PACKAGE...
#                       GOBIN=$BIN/NAME-VERSION go install PACKAGE@VERSION for each PACKAGE whose
#                       binary is not there yet ("NAME VERSION cached" when none is missing);
#                       EXTRA_LDFLAGS joins -ldflags. The cache folder is keyed by version, outside
#                       the checkout, so a warm machine builds nothing.
#   go_build_kubernetes CMD...   Kubernetes' commands at KUBE_VERSION (below)
#   go_build_etcd VERSION BINARY...   etcd and etcdctl (below)

log() { printf '[%s %s] %s\n' "${LOG_TAG:-hack}" "$(date +%H:%M:%S)" "$*" >&2; }

die() {
  log "error: $*"
  exit 1
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

alive() {
  local pid
  [ -s "$1" ] || return 1
  pid=$(cat "$1")
  [[ $pid =~ ^[0-9]+$ ]] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] || return 1
  echo "$pid"
}

wait_gone() {
  local deadline=$((SECONDS + $2))
  while kill -0 "$1" 2>/dev/null; do
    [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ] && return 0
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}

stop_process() {
  local what=${1:+$1: } pidfile=$2 comm=$3 pid
  shift 3
  if ! pid=$(alive "$pidfile" "$comm"); then
    log "${what}not running"
    rm -f "$pidfile"
    return 0
  fi
  log "${what}stopping (pid $pid)"
  { [ $# -gt 0 ] && "$@" >/dev/null 2>&1; } || kill "$pid" 2>/dev/null || true
  if ! wait_gone "$pid" 30; then
    log "${what}still running after 30s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || die "${what}pid $pid does not die"
  fi
  rm -f "$pidfile"
  log "${what}stopped"
}

instance_dir() {
  local name=${BACKENDS_NAME:-platform}
  [[ $name =~ ^[A-Za-z0-9_-]+$ ]] || { log "BACKENDS_NAME must match [A-Za-z0-9_-]+: $name"; exit 2; }
  echo "${PLATFORM_CACHE:-$HOME/.cache/platform-operator}/backends/$name"
}

setting() {
  local name=$1 file=$2 default=$3 key value
  if [ -z "${!name:-}" ] && [ -f "$file" ]; then
    while IFS='=' read -r key value; do
      [ "$key" != "$name" ] || printf -v "$name" '%s' "$value"
    done <"$file"
  fi
  [ -n "${!name:-}" ] || printf -v "$name" '%s' "$default"
}

port_setting() {
  setting "$@"
  [[ ${!1} =~ ^[0-9]+$ ]] || die "$1 must be a number: ${!1}"
}

apt_ensure() {
  local absent=() pkg sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  for pkg in "$@"; do
    # not `dpkg -s` alone: it succeeds for a removed package whose config files remain
    [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" = "install ok installed" ] || absent+=("$pkg")
  done
  [ ${#absent[@]} -gt 0 ] || return 0
  log "installing ${absent[*]} (apt-get)"
  "${sudo[@]}" apt-get update -qq >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${absent[@]}" >&2
}

distro_unit_disable() {
  local svc=$1 sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  if [ -d /run/systemd/system ]; then
    if systemctl is-enabled --quiet "$svc" 2>/dev/null; then
      log "disabling the distro's $svc unit"
      "${sudo[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true
    fi
  elif compgen -G "/etc/rc[2-5].d/S[0-9][0-9]$svc" >/dev/null; then
    log "disabling the distro's $svc init script"
    "${sudo[@]}" update-rc.d "$svc" disable >/dev/null 2>&1 || true
  fi
}

secret() {
  local file=$1
  if [ ! -s "$file" ]; then
    (umask 077 && openssl rand -hex 16 >"$file.tmp") && mv "$file.tmp" "$file"
  fi
  cat "$file"
}

service_names() {
  local dir name
  for dir in "$1"/services/*/; do
    name=$(basename "$dir")
    [ -f "$dir/src/${name//-/_}/__main__.py" ] && echo "$name"
  done
  return 0
}

ensure_docker() {
  command -v docker >/dev/null || die "no docker client"
  docker info >/dev/null 2>&1 && return 0
  local engine
  engine="$(dirname "${BASH_SOURCE[0]}")/offline/docker-engine.sh"
  if "$engine" status >/dev/null 2>&1; then
    eval "$("$engine" env)"
    export DOCKER_HOST
    docker info >/dev/null 2>&1 && return 0
  fi
  die "no running docker engine (hack/offline/docker-engine.sh up)"
}

timed() {
  local label=$1 start=$SECONDS
  shift
  "$@"
  log "$label: done in $((SECONDS - start))s"
}

go_build_env() {
  CACHE=${PLATFORM_CACHE:-$HOME/.cache/platform-operator}
  BIN=$CACHE/bin
  WORK=$CACHE/$1
  export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--buildvcs=false}"
}

go_install() {
  local name=$1 ver=$2
  shift 2
  local out="$BIN/$name-$ver" p missing=0
  for p in "$@"; do [ -x "$out/$(basename "$p")" ] || missing=1; done
  [ $missing = 1 ] || { log "$name $ver cached"; return 0; }
  mkdir -p "$out"
  for p in "$@"; do
    [ -x "$out/$(basename "$p")" ] && continue
    log "$name $ver: building $(basename "$p")"
    timed "$name $ver $(basename "$p")" \
      env GOBIN="$out" go install -trimpath -ldflags "-s -w ${EXTRA_LDFLAGS:-}" "$p@$ver"
  done
}

# k8s.io/kubernetes requires its staging modules at v0.0.0 through ./staging replaces that its zip does
# not carry: a small module of our own in $WORK points each one at the published v0.Y.Z.
# `go_build_kubernetes CMD...` builds those of Kubernetes' commands (kubelet, kubectl, ...) at
# KUBE_VERSION that are not in $BIN/kube-KUBE_VERSION yet, with the version stamped in as Kubernetes'
# own build does (kubeadm and kwokctl read it). Needs BIN and WORK.
go_build_kubernetes() {
  local out="$BIN/kube-$KUBE_VERSION" dir="$WORK/kubernetes-$KUBE_VERSION" staging_ver="v0.${KUBE_VERSION#v1.}"
  local c absent=() gomod minor ld="" pkg
  for c in "$@"; do [ -x "$out/$c" ] || absent+=("$c"); done
  [ ${#absent[@]} -gt 0 ] || { log "kubernetes $KUBE_VERSION cached: $*"; return 0; }
  mkdir -p "$dir" "$out"
  log "kubernetes $KUBE_VERSION: resolving modules for $* (staging at $staging_ver)"
  gomod=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  {
    printf 'module platform.dev/kubebuild\n\ngo 1.24.0\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$KUBE_VERSION"
    grep -E '=> \./staging/src/' "$gomod" | awk -v v="$staging_ver" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } >"$dir/go.mod"
  printf 'package main\n\nfunc main() {}\n' >"$dir/main.go"
  (cd "$dir" && { go get "${@/#/k8s.io/kubernetes/cmd/}" >/dev/null 2>&1 || true; })
  minor=${KUBE_VERSION#v1.}
  minor=${minor%%.*}
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitCommit=0000000000000000000000000000000000000000 -X $pkg.gitTreeState=clean"
    ld+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  for c in "${absent[@]}"; do
    log "kubernetes $KUBE_VERSION: building $c (several minutes on a cold cache)"
    (cd "$dir" && timed "$c" go build -mod=mod -trimpath -tags=selinux,notest -ldflags "-s -w $ld" -o "$out/$c.tmp" "k8s.io/kubernetes/cmd/$c")
    mv "$out/$c.tmp" "$out/$c"
  done
}

# etcd's `go install` is refused (relative replaces in its modules): a module of our own whose mains
# call etcdmain and ctlv3, built into $BIN/etcd-VERSION. `go_build_etcd VERSION etcd [etcdctl]`
# builds the binaries asked for that are not there yet. Needs BIN and WORK.
go_build_etcd() {
  local ver=$1
  shift
  local out="$BIN/etcd-$ver" dir="$WORK/etcd-$ver" b missing=()
  for b in "$@"; do [ -x "$out/$b" ] || missing+=("$b"); done
  [ ${#missing[@]} -gt 0 ] || { log "etcd $ver cached"; return 0; }
  mkdir -p "$dir/etcd" "$dir/etcdctl" "$out"
  cat >"$dir/go.mod" <<GOMOD
module platform.dev/etcdbuild

go 1.24.0

require (
	go.etcd.io/etcd/server/v3 $ver
	go.etcd.io/etcd/etcdctl/v3 $ver
)
GOMOD
  printf 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' >"$dir/etcd/main.go"
  printf 'package main\n\nimport "go.etcd.io/etcd/etcdctl/v3/ctlv3"\n\nfunc main() { ctlv3.MustStart() }\n' >"$dir/etcdctl/main.go"
  (cd "$dir" && go mod tidy >/dev/null 2>&1)
  for b in "${missing[@]}"; do
    log "etcd $ver: building $b"
    (cd "$dir" && timed "$b $ver" go build -trimpath -ldflags "-s -w" -o "$out/$b.tmp" "./$b")
    mv "$out/$b.tmp" "$out/$b"
  done
}
