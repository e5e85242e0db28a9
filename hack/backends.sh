#!/usr/bin/env bash
# A real Redis and a real RabbitMQ (Debian's packages) on loopback for the tests and the demo, run
# as plain local processes (not the Debian service units) with their own data dir:
#   ${PLATFORM_CACHE:-~/.cache/platform-operator}/backends/${BACKENDS_NAME:-platform}
#
#   hack/backends.sh install          apt-get install redis-server rabbitmq-server if missing; stop the distro services
#   hack/backends.sh up               install, then start both (if not running) and wait until they answer
#   hack/backends.sh env              print the PLATFORM_* exports for the operator and the tests
#   hack/backends.sh down             stop both and delete the data dir
#   hack/backends.sh stop-redis|start-redis|stop-rabbitmq|start-rabbitmq
#                                     stop or start one of them, keeping its data (to simulate an outage)
#   hack/backends.sh ctl ARGS...      rabbitmqctl against our node
#   hack/backends.sh redis-cli ARGS...  redis-cli against our Redis, authenticated as the admin
#
# Ports (recorded in the data dir by `up`, so later commands find them): REDIS_PORT (6390),
# RABBITMQ_PORT (5682; Erlang distribution on it + 20000), RABBITMQ_MANAGEMENT_PORT (15682).
# Passwords are generated on the first `up` and kept in the data dir (redis-admin-password,
# rabbitmq-admin-password) until `down`. Progress goes to stderr; only `env`, `ctl` and `redis-cli`
# write to stdout.
set -euo pipefail

CACHE=${PLATFORM_CACHE:-$HOME/.cache/platform-operator}
NAME=${BACKENDS_NAME:-platform}
[[ $NAME =~ ^[A-Za-z0-9_-]+$ ]] || { echo "BACKENDS_NAME must match [A-Za-z0-9_-]+: $NAME" >&2; exit 2; }
DIR=$CACHE/backends/$NAME
REDIS_DIR=$DIR/redis
RABBIT_DIR=$DIR/rabbitmq
PORTS_FILE=$DIR/ports.env
RABBIT_BIN=/usr/lib/rabbitmq/bin   # not /usr/sbin: Debian's wrapper there su's to the rabbitmq user and resets HOME
RABBIT_NODE=platform-$NAME@localhost
RABBIT_ADMIN=platform-admin

LOG_TAG=backends
# shellcheck source=hack/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Ports: the environment wins, then what `up` recorded for this instance, then the defaults.
if [ -f "$PORTS_FILE" ]; then
  while IFS='=' read -r key value; do
    case $key in
      REDIS_PORT | RABBITMQ_PORT | RABBITMQ_MANAGEMENT_PORT) [ -n "${!key:-}" ] || printf -v "$key" '%s' "$value" ;;
    esac
  done < "$PORTS_FILE"
fi
REDIS_PORT=${REDIS_PORT:-6390}
RABBITMQ_PORT=${RABBITMQ_PORT:-5682}
RABBITMQ_MANAGEMENT_PORT=${RABBITMQ_MANAGEMENT_PORT:-15682}
RABBITMQ_DIST_PORT=$((RABBITMQ_PORT + 20000))

SUDO=()
[ "$(id -u)" = 0 ] || SUDO=(sudo)

# ---------------------------------------------------------------------------------------------
# helpers

need_secret() {  # the password of an instance that `up` created
  [ -s "$DIR/$1" ] || die "no $DIR/$1: run hack/backends.sh up first"
  cat "$DIR/$1"
}

prepare() {
  (umask 077 && mkdir -p "$DIR" "$REDIS_DIR" "$RABBIT_DIR/mnesia" "$RABBIT_DIR/log")
  printf 'REDIS_PORT=%s\nRABBITMQ_PORT=%s\nRABBITMQ_MANAGEMENT_PORT=%s\n' \
    "$REDIS_PORT" "$RABBITMQ_PORT" "$RABBITMQ_MANAGEMENT_PORT" > "$PORTS_FILE"
}

# ---------------------------------------------------------------------------------------------
# install

distro_service_stop() {  # distro_service_stop SERVICE USER COMM
  local svc=$1 user=$2 comm=$3 pids
  id -u "$user" >/dev/null 2>&1 || return 0
  # Never started again at boot (our instances are started by this script only).
  if [ -d /run/systemd/system ]; then
    if systemctl is-enabled --quiet "$svc" 2>/dev/null; then
      log "disabling the distro's $svc unit"
      "${SUDO[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true
    fi
  elif compgen -G "/etc/rc[2-5].d/S[0-9][0-9]$svc" >/dev/null; then
    log "disabling the distro's $svc init script"
    "${SUDO[@]}" update-rc.d "$svc" disable >/dev/null 2>&1 || true
  fi
  pids=$(pgrep -u "$user" -x "$comm" || true)
  [ -n "$pids" ] || return 0
  log "stopping the distro's $svc (pids ${pids//$'\n'/ }) so that it holds no port"
  "${SUDO[@]}" timeout 60 service "$svc" stop >/dev/null 2>&1 || true
  pids=$(pgrep -u "$user" -x "$comm" || true)
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086
    "${SUDO[@]}" kill $pids 2>/dev/null || true
    sleep 2
    pids=$(pgrep -u "$user" -x "$comm" || true)
    # shellcheck disable=SC2086
    [ -z "$pids" ] || "${SUDO[@]}" kill -KILL $pids 2>/dev/null || true
  fi
}

install() {
  local missing=() pkg
  for pkg in redis-server rabbitmq-server; do
    # not `dpkg -s` alone: it succeeds for a removed package whose config files remain
    [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" = "install ok installed" ] || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} (apt-get)"
    "${SUDO[@]}" apt-get update -qq >&2
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      redis-server rabbitmq-server >&2
  fi
  command -v openssl >/dev/null || die "openssl is needed (apt-get install openssl)"
  command -v curl >/dev/null || die "curl is needed (apt-get install curl)"
  distro_service_stop redis-server redis redis-server
  distro_service_stop rabbitmq-server rabbitmq beam.smp
}

# ---------------------------------------------------------------------------------------------
# Redis

redis_cli() {  # the password goes by environment, not on the command line
  REDISCLI_AUTH=$(need_secret redis-admin-password) redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --no-auth-warning "$@"
}

redis_ping() { [ "$(redis_cli ping 2>/dev/null)" = PONG ]; }

start_redis() {
  prepare
  local pass pid deadline
  pass=$(secret "$DIR/redis-admin-password")
  if pid=$(alive "$REDIS_DIR/redis.pid" redis-server) && redis_ping; then
    log "redis: already running on 127.0.0.1:$REDIS_PORT (pid $pid)"
    return 0
  fi
  [ -z "$pid" ] || { log "redis: pid $pid does not answer on $REDIS_PORT; restarting it"; stop_redis; }
  rm -f "$REDIS_DIR/redis.pid"
  port_busy "$REDIS_PORT" && die "redis: port $REDIS_PORT is taken by another process (set REDIS_PORT)"
  (umask 077 && cat > "$REDIS_DIR/redis.conf" <<EOF
# generated by hack/backends.sh; rewritten on every start
bind 127.0.0.1
protected-mode yes
port $REDIS_PORT
daemonize yes
pidfile $REDIS_DIR/redis.pid
logfile $REDIS_DIR/redis.log
dir $REDIS_DIR
save ""
appendonly no
user default on >$pass ~* &* +@all
EOF
  )
  log "redis: starting on 127.0.0.1:$REDIS_PORT (data and log: $REDIS_DIR)"
  redis-server "$REDIS_DIR/redis.conf" >&2
  deadline=$((SECONDS + 30))
  until redis_ping; do
    [ $SECONDS -lt $deadline ] || { tail -n 20 "$REDIS_DIR/redis.log" >&2 || true; die "redis: no PONG after 30s"; }
    sleep 0.2
  done
  log "redis: ready (pid $(cat "$REDIS_DIR/redis.pid"))"
}

stop_redis() {
  local pid
  if ! pid=$(alive "$REDIS_DIR/redis.pid" redis-server); then
    log "redis: not running"
    rm -f "$REDIS_DIR/redis.pid"
    return 0
  fi
  log "redis: stopping (pid $pid)"
  redis_cli shutdown nosave >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
  if ! wait_gone "$pid" 30; then
    log "redis: still running after 30s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || die "redis: pid $pid does not die"
  fi
  rm -f "$REDIS_DIR/redis.pid"
  log "redis: stopped"
}

# ---------------------------------------------------------------------------------------------
# RabbitMQ

rabbit_env() {  # the environment of our node, for rabbitmq-server and rabbitmqctl alike
  # HOME holds the Erlang cookie that the server and the CLI share (RABBITMQ_ERLANG_COOKIE is
  # deprecated). RABBITMQ_CONF_ENV_FILE keeps /etc/rabbitmq/rabbitmq-env.conf out.
  local loopback='-kernel inet_dist_use_interface {127,0,0,1}'
  rabbit_env=(
    HOME="$RABBIT_DIR"
    LC_ALL=C.UTF-8
    RABBITMQ_NODENAME="$RABBIT_NODE"
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    RABBITMQ_NODE_PORT="$RABBITMQ_PORT"
    RABBITMQ_DIST_PORT="$RABBITMQ_DIST_PORT"
    RABBITMQ_MNESIA_BASE="$RABBIT_DIR/mnesia"
    RABBITMQ_LOG_BASE="$RABBIT_DIR/log"
    RABBITMQ_CONFIG_FILE="$RABBIT_DIR/rabbitmq.conf"
    RABBITMQ_ADVANCED_CONFIG_FILE="$RABBIT_DIR/advanced.config"
    RABBITMQ_ENABLED_PLUGINS_FILE="$RABBIT_DIR/enabled_plugins"
    RABBITMQ_CONF_ENV_FILE="$RABBIT_DIR/rabbitmq-env.conf"
    RABBITMQ_PID_FILE="$RABBIT_DIR/rabbitmq.pid"
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="$loopback"
    RABBITMQ_CTL_ERL_ARGS="$loopback"
    ERL_EPMD_ADDRESS=127.0.0.1
  )
}

rabbitmqctl() {
  rabbit_env
  env "${rabbit_env[@]}" "$RABBIT_BIN/rabbitmqctl" -n "$RABBIT_NODE" "$@"
}

rabbit_api() {  # rabbit_api PATH: GET on the management API as the admin
  curl -fsS --max-time 5 -u "$RABBIT_ADMIN:$(need_secret rabbitmq-admin-password)" \
    "http://127.0.0.1:$RABBITMQ_MANAGEMENT_PORT/api/$1"
}

rabbit_admin_user() {  # create or repair the admin user; remove guest
  local pass=$1
  if rabbit_api whoami >/dev/null 2>&1; then
    return 0
  fi
  log "rabbitmq: creating user $RABBIT_ADMIN (administrator, all permissions on /), deleting guest"
  # The password goes on stdin (3.10 reads it from there when the argument is left out), not in argv.
  if ! printf '%s\n' "$pass" | rabbitmqctl -q add_user "$RABBIT_ADMIN" >/dev/null 2>&1; then
    printf '%s\n' "$pass" | rabbitmqctl -q change_password "$RABBIT_ADMIN" >/dev/null
  fi
  rabbitmqctl -q set_user_tags "$RABBIT_ADMIN" administrator >&2
  rabbitmqctl -q set_permissions -p / "$RABBIT_ADMIN" '.*' '.*' '.*' >&2
  if rabbitmqctl -q list_users | awk '{print $1}' | grep -qx guest; then
    rabbitmqctl -q delete_user guest >&2
  fi
}

start_rabbitmq() {
  prepare
  local pass pid launcher='' deadline p
  pass=$(secret "$DIR/rabbitmq-admin-password")
  if [ ! -s "$RABBIT_DIR/.erlang.cookie" ]; then
    (umask 077 && openssl rand -hex 20 > "$RABBIT_DIR/.erlang.cookie")
    chmod 400 "$RABBIT_DIR/.erlang.cookie"
  fi
  cat > "$RABBIT_DIR/rabbitmq.conf" <<EOF
# generated by hack/backends.sh; rewritten on every start
management.tcp.port = $RABBITMQ_MANAGEMENT_PORT
management.tcp.ip = 127.0.0.1
loopback_users = none
log.console = false
log.file.level = info
EOF
  echo '[rabbitmq_management].' > "$RABBIT_DIR/enabled_plugins"
  echo '# hack/backends.sh passes everything by environment; this file replaces /etc/rabbitmq/rabbitmq-env.conf' \
    > "$RABBIT_DIR/rabbitmq-env.conf"

  if pid=$(alive "$RABBIT_DIR/rabbitmq.pid" beam.smp); then
    log "rabbitmq: node $RABBIT_NODE already running (pid $pid)"
  else
    rm -f "$RABBIT_DIR/rabbitmq.pid"
    for p in "$RABBITMQ_PORT" "$RABBITMQ_DIST_PORT" "$RABBITMQ_MANAGEMENT_PORT"; do
      port_busy "$p" && die "rabbitmq: port $p is taken by another process (set RABBITMQ_PORT / RABBITMQ_MANAGEMENT_PORT)"
    done
    log "rabbitmq: starting node $RABBIT_NODE on 127.0.0.1:$RABBITMQ_PORT, management :$RABBITMQ_MANAGEMENT_PORT (data and logs: $RABBIT_DIR)"
    rabbit_env
    # Its own session, all descriptors away from the caller's: it outlives this script.
    (cd "$RABBIT_DIR" && exec env "${rabbit_env[@]}" setsid "$RABBIT_BIN/rabbitmq-server") \
      > "$RABBIT_DIR/log/startup.log" 2>&1 < /dev/null &
    launcher=$!
  fi

  deadline=$((SECONDS + 90))
  until rabbitmqctl -q await_startup --timeout 10 >/dev/null 2>&1; do
    if [ -n "$launcher" ] && ! kill -0 "$launcher" 2>/dev/null && ! alive "$RABBIT_DIR/rabbitmq.pid" beam.smp >/dev/null; then
      tail -n 30 "$RABBIT_DIR/log/startup.log" >&2 || true
      die "rabbitmq: the node exited during startup (logs: $RABBIT_DIR/log)"
    fi
    [ $SECONDS -lt $deadline ] || die "rabbitmq: node $RABBIT_NODE not started after 90s (logs: $RABBIT_DIR/log)"
    sleep 1
  done
  rabbit_admin_user "$pass"
  deadline=$((SECONDS + 60))
  until rabbit_api overview >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "rabbitmq: management API on :$RABBITMQ_MANAGEMENT_PORT not answering after 60s"
    sleep 0.5
  done
  log "rabbitmq: ready (pid $(cat "$RABBIT_DIR/rabbitmq.pid" 2>/dev/null || echo '?'))"
}

stop_rabbitmq() {
  local pid
  if ! pid=$(alive "$RABBIT_DIR/rabbitmq.pid" beam.smp); then
    log "rabbitmq: not running"
    rm -f "$RABBIT_DIR/rabbitmq.pid"
    return 0
  fi
  log "rabbitmq: stopping node $RABBIT_NODE (pid $pid)"
  # `stop PIDFILE` returns once that process is gone; 3.10 spends ~5s of it in the management agent.
  rabbit_env
  timeout 60 env "${rabbit_env[@]}" "$RABBIT_BIN/rabbitmqctl" -n "$RABBIT_NODE" -q stop "$RABBIT_DIR/rabbitmq.pid" \
    >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
  if ! wait_gone "$pid" 30; then
    log "rabbitmq: still running after 30s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || die "rabbitmq: pid $pid does not die"
  fi
  rm -f "$RABBIT_DIR/rabbitmq.pid"
  log "rabbitmq: stopped"
}

# ---------------------------------------------------------------------------------------------

print_env() {
  local redis_pass rabbit_pass
  redis_pass=$(need_secret redis-admin-password)
  rabbit_pass=$(need_secret rabbitmq-admin-password)
  cat <<EOF
export PLATFORM_REDIS_URL=redis://default:$redis_pass@127.0.0.1:$REDIS_PORT/0
export PLATFORM_REDIS_SERVICE_HOST=127.0.0.1 PLATFORM_REDIS_SERVICE_PORT=$REDIS_PORT
export PLATFORM_RABBITMQ_MANAGEMENT_URL=http://127.0.0.1:$RABBITMQ_MANAGEMENT_PORT PLATFORM_RABBITMQ_ADMIN_USER=$RABBIT_ADMIN PLATFORM_RABBITMQ_ADMIN_PASSWORD=$rabbit_pass PLATFORM_RABBITMQ_VHOST=/
export PLATFORM_RABBITMQ_SERVICE_HOST=127.0.0.1 PLATFORM_RABBITMQ_SERVICE_PORT=$RABBITMQ_PORT
export PLATFORM_RABBITMQ_NODENAME=$RABBIT_NODE BACKENDS_NAME=$NAME
EOF
}

cmd=${1:-}
[ $# -eq 0 ] || shift
case $cmd in
  install) install ;;
  up)
    install
    start_redis
    start_rabbitmq
    log "up: eval \"\$(hack/backends.sh env)\" for the PLATFORM_* variables"
    ;;
  env) print_env ;;
  down)
    stop_rabbitmq
    stop_redis
    # postgres/ and ferretdb/ in the same folder are hack/postgres.sh's and hack/ferretdb.sh's, each
    # stopped and removed by its own `down`: removed from under a running server, they left it
    # running with no pid file to stop it by, holding its port.
    find "$DIR" -mindepth 1 -maxdepth 1 ! -name postgres ! -name ferretdb -exec rm -rf {} + 2>/dev/null || true
    rmdir "$DIR" 2>/dev/null || true
    log "down: removed Redis and RabbitMQ of $DIR"
    ;;
  start-redis) start_redis ;;
  stop-redis) stop_redis ;;
  start-rabbitmq) start_rabbitmq ;;
  stop-rabbitmq) stop_rabbitmq ;;
  ctl) rabbitmqctl "$@" ;;
  redis-cli) redis_cli "$@" ;;
  *)
    echo "usage: $0 install|up|env|down|start-redis|stop-redis|start-rabbitmq|stop-rabbitmq|ctl ARGS...|redis-cli ARGS..." >&2
    exit 2
    ;;
esac
