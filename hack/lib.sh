# shellcheck shell=bash
# What the hack/ scripts share. Sourced, never run: a script sets LOG_TAG, then
#   LOG_TAG=backends; . "$here/lib.sh"
#
#   log MSG...          "[TAG HH:MM:SS] MSG" on stderr: the progress lines of the make targets
#   die MSG...          log "error: MSG", exit 1
#   port_busy PORT      true when something accepts connections on 127.0.0.1:PORT
#   alive PIDFILE COMM  the pid in PIDFILE if that process runs and its command is COMM
#   wait_gone PID SECS  true once PID has exited (a zombie counts: its parent, not us, reaps it)
#   secret FILE         the password in FILE, generated once (hex: safe in SQL quotes and URLs)
#   service_names ROOT  the reference services under ROOT/services, one per line: the folders whose
#                       package runs as `python -m` (src/<package>/__main__.py; not platform-contract),
#                       each built by services/Dockerfile with --build-arg SERVICE=<folder>
#   ensure_docker       a Docker engine answers the docker CLI: the default one, else the one of
#                       hack/offline/docker-engine.sh (DOCKER_HOST exported); dies otherwise
#   timed LABEL CMD...  run CMD, then log how long it took
#   go_install NAME VERSION PACKAGE...
#                       GOBIN=$BIN/NAME-VERSION go install PACKAGE@VERSION for each PACKAGE whose
#                       binary is not there yet ("NAME VERSION cached" when none is missing);
#                       EXTRA_LDFLAGS joins -ldflags. The cache folder is keyed by version, outside
#                       the checkout, so a warm machine builds nothing.

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
