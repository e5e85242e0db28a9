#!/usr/bin/env bash
# A real MongoDB-wire server on loopback for the Mongo data services' tests and the demo: FerretDB v1
# (Apache-2.0) on its SQLite backend, so that no PostgreSQL is needed. No release download either:
# the binary is built from source through the Go module proxy (pure Go, CGO_ENABLED=0) and cached
# outside the checkout, one folder per version:
#   ${PLATFORM_CACHE:-~/.cache/platform-operator}/bin/ferretdb-$FERRETDB_VERSION/ferretdb
# Its data lives in
#   ${PLATFORM_CACHE:-~/.cache/platform-operator}/backends/${BACKENDS_NAME:-platform}/ferretdb
#     data/         the SQLite files, one per database
#     state/        FerretDB's state.json (instance id, telemetry choice)
#     ferretdb.pid  ferretdb.log  port.env
#
#   hack/ferretdb.sh build        build the binary if it is not cached (prints its path on stdout)
#   hack/ferretdb.sh up           build, then start (if not running) and wait until it answers a ping
#   hack/ferretdb.sh env          print `export PLATFORM_MONGODB_URL=mongodb://127.0.0.1:27027/`
#   hack/ferretdb.sh stop|start   stop or start the server, keeping its data (to simulate an outage)
#   hack/ferretdb.sh down         stop it and delete its data
#
# Version: FERRETDB_VERSION (environment, else hack/versions.env, else the pin below). v1 is the last
# major with the SQLite and plain PostgreSQL backends (v2 needs the DocumentDB extension).
# Port: FERRETDB_PORT (27027), else what `up` recorded. It listens on 127.0.0.1 only, without
# authentication (a loopback test server), with telemetry disabled and no debug HTTP listener.
# Progress goes to stderr; only `build` and `env` write to stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

LOG_TAG=ferretdb
# shellcheck source=hack/lib.sh
. "$here/lib.sh"

CACHE=${PLATFORM_CACHE:-$HOME/.cache/platform-operator}
DIR=$(instance_dir)/ferretdb
DATA=$DIR/data
STATE=$DIR/state
LOG=$DIR/ferretdb.log
PID_FILE=$DIR/ferretdb.pid
PORT_FILE=$DIR/port.env

# The version: the environment wins, then hack/versions.env, then the pin here.
setting FERRETDB_VERSION "$here/versions.env" v1.24.2
[[ $FERRETDB_VERSION =~ ^v1\.[0-9]+\.[0-9]+$ ]] || die "FERRETDB_VERSION must be a v1.x.y release (v2 has no SQLite backend): $FERRETDB_VERSION"
BIN_DIR=$CACHE/bin/ferretdb-$FERRETDB_VERSION
BIN=$BIN_DIR/ferretdb

# The port: the environment wins, then what `up` recorded for this instance, then the default.
port_setting FERRETDB_PORT "$PORT_FILE" 27027
ADDR=127.0.0.1:$FERRETDB_PORT

# ---------------------------------------------------------------------------------------------
# helpers

ping_server() {
  # A real round trip on the wire: an OP_MSG `{ping: 1, $db: "admin"}` (51 bytes, written out by
  # hand), answered with `ok: 1.0` (the BSON double element 01 "ok" 00 then 1.0 little-endian).
  # Not `ferretdb ping`: that one needs credentials, which a server without auth refuses.
  # shellcheck disable=SC2016 # the inner script expands its own $1
  timeout 5 bash -c '
    exec 3<> "/dev/tcp/127.0.0.1/$1" || exit 1
    printf "\x33\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\xdd\x07\x00\x00\x00\x00\x00\x00\x00" >&3
    printf "\x1e\x00\x00\x00\x10ping\x00\x01\x00\x00\x00\x02\$db\x00\x06\x00\x00\x00admin\x00\x00" >&3
    dd bs=65536 count=1 <&3 2>/dev/null | od -An -v -tx1 | tr -d " \n"
  ' _ "$FERRETDB_PORT" 2>/dev/null | grep -q '016f6b00000000000000f03f'
}

# ---------------------------------------------------------------------------------------------
# build

build() {
  # `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.x` builds, but the binary panics at
  # start: its build/version/version.txt is generated at release time and the module zip lacks it.
  # So the module's source is copied from the module cache, version.txt written, and built there.
  if [ -x "$BIN" ]; then
    log "$FERRETDB_VERSION cached: $BIN"
    return 0
  fi
  command -v go >/dev/null || die "go is needed to build FerretDB (https://go.dev/dl, or the golang-go package)"
  local work=$CACHE/build/ferretdb-$FERRETDB_VERSION src started=$SECONDS
  mkdir -p "$work" "$BIN_DIR"
  log "$FERRETDB_VERSION: downloading the module (Go module proxy)"
  src=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  if [ -z "$src" ] || [ ! -d "$src/cmd/ferretdb" ]; then
    die "go mod download github.com/FerretDB/FerretDB@$FERRETDB_VERSION gave no source"
  fi
  rm -rf "$work/src"
  cp -R "$src" "$work/src"
  chmod -R u+w "$work/src"
  printf '%s\n' "$FERRETDB_VERSION" > "$work/src/build/version/version.txt"
  printf 'platform-operator\n' > "$work/src/build/version/package.txt"
  log "$FERRETDB_VERSION: building cmd/ferretdb (CGO_ENABLED=0; a few minutes on a cold Go cache)"
  (cd "$work/src" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=${GOTOOLCHAIN:-local} \
    go build -trimpath -ldflags "-s -w" -o "$BIN.tmp" ./cmd/ferretdb) \
    || die "go build of FerretDB $FERRETDB_VERSION failed (source in $work/src)"
  mv "$BIN.tmp" "$BIN"
  rm -rf "$work/src"
  log "$FERRETDB_VERSION: built in $((SECONDS - started))s: $BIN ($("$BIN" --version 2>/dev/null | head -n 1 || true))"
}

# ---------------------------------------------------------------------------------------------
# the server

start() {
  local pid deadline
  [ -x "$BIN" ] || die "no $BIN: run hack/ferretdb.sh build (or up) first"
  (umask 077 && mkdir -p "$DATA" "$STATE")
  if pid=$(alive "$PID_FILE" ferretdb); then
    if ping_server; then
      log "already running on $ADDR (pid $pid)"
      return 0
    fi
    log "pid $pid does not answer on $ADDR; restarting it"
    stop
  fi
  rm -f "$PID_FILE"
  port_busy "$FERRETDB_PORT" && die "port $FERRETDB_PORT is taken by another process (set FERRETDB_PORT)"
  printf 'FERRETDB_PORT=%s\n' "$FERRETDB_PORT" > "$PORT_FILE"
  log "starting $FERRETDB_VERSION on $ADDR (sqlite data: $DATA, log: $LOG)"
  # Its own session, all descriptors away from the caller's: it outlives this script.
  (cd "$DIR" && exec setsid "$BIN" \
    --handler=sqlite --sqlite-url="file:$DATA/" \
    --listen-addr="$ADDR" --state-dir="$STATE" \
    --debug-addr=- --telemetry=disable --log-level=info --log-format=json) \
    >> "$LOG" 2>&1 < /dev/null &
  echo $! > "$PID_FILE"
  deadline=$((SECONDS + 30))
  until ping_server; do
    if ! alive "$PID_FILE" ferretdb >/dev/null; then
      tail -n 20 "$LOG" >&2 || true
      die "ferretdb exited during startup (log: $LOG)"
    fi
    [ $SECONDS -lt $deadline ] || { tail -n 20 "$LOG" >&2 || true; die "no answer on $ADDR after 30s (log: $LOG)"; }
    sleep 0.2
  done
  log "ready (pid $(cat "$PID_FILE"))"
}

stop() { stop_process "" "$PID_FILE" ferretdb; }

print_env() {
  echo "export PLATFORM_MONGODB_URL=mongodb://$ADDR/"
}

cmd=${1:-}
[ $# -eq 0 ] || shift
case $cmd in
  build)
    build
    echo "$BIN"
    ;;
  up)
    build
    start
    log "up: eval \"\$(hack/ferretdb.sh env)\" for PLATFORM_MONGODB_URL"
    ;;
  env) print_env ;;
  start) start ;;
  stop) stop ;;
  down)
    stop
    rm -rf "$DIR"
    rmdir "$(dirname "$DIR")" 2>/dev/null || true  # the instance's folder, unless backends.sh/postgres.sh use it too
    log "down: removed $DIR"
    ;;
  *)
    echo "usage: $0 build|up|env|start|stop|down" >&2
    exit 2
    ;;
esac
