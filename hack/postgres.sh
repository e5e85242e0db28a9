#!/usr/bin/env bash
# A real PostgreSQL (Debian's package) on loopback for the data services' tests and the demo, run as
# a plain local cluster (not the Debian `main` cluster) with its own directory:
#   ${PLATFORM_CACHE:-~/.cache/platform-operator}/backends/${BACKENDS_NAME:-platform}/postgres
#     data/               the cluster (initdb), owned by the user PostgreSQL runs as
#     run/                its Unix socket (the superuser's only way in: peer authentication)
#     postgres.log        the server log
#     platform-password   the password of the role `platform`, generated on the first `up`
#     admin-password      the password of the role `platform_admin` (the operator's), generated likewise
#     port.env            the port `up` used, so that later commands find it
#
#   hack/postgres.sh install      apt-get install postgresql if missing; stop and disable the distro clusters
#   hack/postgres.sh up           install, then initdb (once), start (if not running), create the role and
#                                 database `platform`, and wait until it accepts connections
#   hack/postgres.sh env          print `export PLATFORM_POSTGRES_DSN=postgresql+asyncpg://platform:...` and
#                                 `export PLATFORM_POSTGRES_ADMIN_URL=postgresql://platform_admin:...`
#   hack/postgres.sh stop|start   stop or start the cluster, keeping its data (to simulate an outage)
#   hack/postgres.sh down         stop it and delete its directory
#   hack/postgres.sh psql ARGS... psql against our cluster as its superuser
#
# Port: POSTGRES_PORT (5442), else what `up` recorded. The server listens on 127.0.0.1 only.
# PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres` system user and
# every server command runs through `runuser -u postgres --`; as anyone else it runs as that user.
# The role `platform` may create databases, so that each test module can make (and drop) its own.
# The role `platform_admin` (CREATEDB CREATEROLE, not a superuser) is the operator's: it makes each
# data service's role and database.
# Progress goes to stderr; only `env` and `psql` write to stdout.
# Note: `hack/backends.sh down` with the same BACKENDS_NAME deletes this directory too; run
# `hack/postgres.sh down` first.
set -euo pipefail

LOG_TAG=postgres
# shellcheck source=hack/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DIR=$(instance_dir)/postgres
DATA=$DIR/data
RUN=$DIR/run
LOG=$DIR/postgres.log
PORT_FILE=$DIR/port.env
PASSWORD_FILE=$DIR/platform-password
ADMIN_PASSWORD_FILE=$DIR/admin-password
ADMIN_ROLE=platform_admin
ROLE=platform
DATABASE=platform

# The port: the environment wins, then what `up` recorded for this instance, then the default.
port_setting POSTGRES_PORT "$PORT_FILE" 5442

SUDO=()
[ "$(id -u)" = 0 ] || SUDO=(sudo)

# The user the cluster runs as, and how to run a command as that user.
if [ "$(id -u)" = 0 ]; then
  PG_USER=postgres
  as_pg() { runuser -u "$PG_USER" -- "$@"; }
else
  PG_USER=$(id -un)
  as_pg() { "$@"; }
fi

# ---------------------------------------------------------------------------------------------
# helpers

pg_bin() {  # the newest installed server version's bin directory (initdb and pg_ctl are not on PATH)
  local bin
  bin=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
  { [ -n "$bin" ] && [ -x "$bin/pg_ctl" ]; } || die "no PostgreSQL server under /usr/lib/postgresql: run hack/postgres.sh install"
  echo "$bin"
}

running() {  # the postmaster's pid if our cluster runs (pg_ctl status reads data/postmaster.pid)
  [ -f "$DATA/PG_VERSION" ] || return 1
  local pid
  as_pg "$(pg_bin)/pg_ctl" status -D "$DATA" >/dev/null 2>&1 || return 1
  pid=$(head -n 1 "$DATA/postmaster.pid" 2>/dev/null || true)
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  echo "$pid"
}

superuser_psql() {  # psql as the cluster's superuser, over the Unix socket (peer authentication)
  as_pg psql -X -q -v ON_ERROR_STOP=1 -h "$RUN" -p "$POSTGRES_PORT" -d postgres "$@"
}

grant_traversal() {
  # As root the cluster belongs to `postgres`, which must be able to walk down to it, but root's
  # home is usually private (0700). Grant that one user search permission (x: no listing) on the
  # directories in the way, with an ACL, instead of opening them to every local user.
  [ "$(id -u)" = 0 ] || return 0
  local dir=$DIR ancestors=() i
  while [ "$dir" != / ]; do
    dir=$(dirname "$dir")
    ancestors+=("$dir")
  done
  # from the top down: a directory is reachable only once its parents are
  for ((i = ${#ancestors[@]} - 1; i >= 0; i--)); do
    dir=${ancestors[i]}
    if ! runuser -u "$PG_USER" -- test -x "$dir"; then
      command -v setfacl >/dev/null || die "$PG_USER cannot reach $DIR (no x on $dir) and setfacl is missing: run hack/postgres.sh install, or set PLATFORM_CACHE to a directory $PG_USER can reach"
      log "granting $PG_USER search permission (ACL u:$PG_USER:x) on $dir so that it can reach its cluster"
      setfacl -m "u:$PG_USER:x" "$dir" || die "setfacl failed on $dir; set PLATFORM_CACHE to a directory $PG_USER can reach"
    fi
  done
}

# ---------------------------------------------------------------------------------------------
# install

stop_distro_clusters() {
  # The package creates and starts a cluster on 5432; ours is started by this script only, so the
  # distro's is stopped and set to manual start, never to come back at boot and hold the port.
  local conf ver cluster
  for conf in /etc/postgresql/*/*/start.conf; do
    [ -f "$conf" ] || continue
    ver=$(basename "$(dirname "$(dirname "$conf")")")
    cluster=$(basename "$(dirname "$conf")")
    if [ "$(grep -v '^#' "$conf" | tr -d '[:space:]')" != manual ]; then
      log "setting the distro's cluster $ver/$cluster to manual start"
      echo manual | "${SUDO[@]}" tee "$conf" >/dev/null
    fi
    if pg_lsclusters -h "$ver" "$cluster" 2>/dev/null | awk '{print $4}' | grep -qx online; then
      log "stopping the distro's cluster $ver/$cluster so that it holds no port"
      "${SUDO[@]}" pg_ctlcluster "$ver" "$cluster" stop >&2 || true
    fi
  done
  distro_unit_disable postgresql
}

install() {
  local packages=(postgresql)
  # root needs setfacl to let the postgres user reach a cluster under its private home
  [ "$(id -u)" != 0 ] || command -v setfacl >/dev/null || packages+=(acl)
  apt_ensure "${packages[@]}"
  command -v openssl >/dev/null || die "openssl is needed (apt-get install openssl)"
  stop_distro_clusters
}

# ---------------------------------------------------------------------------------------------
# the cluster

init_cluster() {
  [ -f "$DATA/PG_VERSION" ] && return 0
  (umask 077 && mkdir -p "$DIR")
  [ "$(id -u)" != 0 ] || chown "$PG_USER:" "$DIR"
  grant_traversal
  log "initdb: new cluster in $DATA (owner $PG_USER)"
  # The superuser is the owning OS user, reached only through the Unix socket by peer
  # authentication; TCP needs a password (SCRAM), and the role `platform` has one.
  as_pg "$(pg_bin)/initdb" -D "$DATA" -U "$PG_USER" --encoding=UTF8 --no-locale \
    --auth-local=peer --auth-host=scram-sha-256 >"$DIR/initdb.log" 2>&1 \
    || { tail -n 20 "$DIR/initdb.log" >&2; die "initdb failed (log: $DIR/initdb.log)"; }
  echo "include_if_exists = 'platform.conf'" | as_pg tee -a "$DATA/postgresql.conf" >/dev/null
}

write_config() {  # rewritten on every start, so that a new POSTGRES_PORT takes effect
  as_pg mkdir -p -m 0700 "$RUN"
  as_pg tee "$DATA/platform.conf" >/dev/null <<EOF
# generated by hack/postgres.sh; rewritten on every start
listen_addresses = '127.0.0.1'
port = $POSTGRES_PORT
unix_socket_directories = '$RUN'
unix_socket_permissions = 0700
max_connections = 200
EOF
  printf 'POSTGRES_PORT=%s\n' "$POSTGRES_PORT" > "$PORT_FILE"
}

start_cluster() {
  local pid port deadline
  [ -f "$DATA/PG_VERSION" ] || die "no cluster in $DATA: run hack/postgres.sh up first"
  if pid=$(running); then
    port=$(sed -n 4p "$DATA/postmaster.pid")  # the 4th line of postmaster.pid is the port it listens on
    [ "$port" = "$POSTGRES_PORT" ] \
      || die "already running on port $port (pid $pid): hack/postgres.sh stop first to move it to $POSTGRES_PORT"
    log "already running on 127.0.0.1:$POSTGRES_PORT (pid $pid)"
    return 0
  fi
  port_busy "$POSTGRES_PORT" && die "port $POSTGRES_PORT is taken by another process (set POSTGRES_PORT)"
  [ "$(( ${#RUN} + 20 ))" -le 107 ] || die "socket path under $RUN is too long for a Unix socket; set a shorter PLATFORM_CACHE"
  grant_traversal
  write_config
  [ "$(id -u)" != 0 ] || { touch "$LOG" && chown "$PG_USER:" "$LOG"; }
  log "starting on 127.0.0.1:$POSTGRES_PORT (data: $DATA, log: $LOG)"
  # pg_ctl -w returns once the server accepts connections; its own session keeps it alive after us
  if ! as_pg setsid "$(pg_bin)/pg_ctl" start -D "$DATA" -l "$LOG" -w -t 60 >/dev/null 2>&1 </dev/null; then
    tail -n 20 "$LOG" >&2 || true
    die "the server did not start (log: $LOG)"
  fi
  deadline=$((SECONDS + 30))
  until pg_isready -q -h 127.0.0.1 -p "$POSTGRES_PORT"; do
    [ $SECONDS -lt $deadline ] || { tail -n 20 "$LOG" >&2 || true; die "not accepting TCP connections after 30s"; }
    sleep 0.2
  done
  log "ready (pid $(running || echo '?'))"
}

ensure_role_and_database() {
  local pass admin_pass
  pass=$(secret "$PASSWORD_FILE")
  admin_pass=$(secret "$ADMIN_PASSWORD_FILE")
  # On stdin, not argv (ps would show it); set every time so that the kept file stays the truth.
  superuser_psql >/dev/null <<EOF
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN CREATE ROLE $ROLE; END IF;
END \$\$;
ALTER ROLE $ROLE WITH LOGIN CREATEDB PASSWORD '$pass';
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ADMIN_ROLE') THEN CREATE ROLE $ADMIN_ROLE; END IF;
END \$\$;
ALTER ROLE $ADMIN_ROLE WITH LOGIN CREATEDB CREATEROLE PASSWORD '$admin_pass';
SELECT 'CREATE DATABASE $DATABASE OWNER $ROLE' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DATABASE')\gexec
EOF
  log "role $ROLE (LOGIN CREATEDB), role $ADMIN_ROLE (LOGIN CREATEDB CREATEROLE) and database $DATABASE ready"
}

stop_cluster() {
  local pid
  if ! pid=$(running); then
    log "not running"
    return 0
  fi
  log "stopping (pid $pid)"
  # fast: roll back open transactions and disconnect clients, then a clean shutdown
  as_pg "$(pg_bin)/pg_ctl" stop -D "$DATA" -m fast -w -t 30 >/dev/null 2>&1 \
    || as_pg "$(pg_bin)/pg_ctl" stop -D "$DATA" -m immediate -w -t 30 >/dev/null 2>&1 \
    || die "pid $pid does not stop"
  log "stopped"
}

print_env() {
  [ -s "$PASSWORD_FILE" ] || die "no $PASSWORD_FILE: run hack/postgres.sh up first"
  echo "export PLATFORM_POSTGRES_DSN=postgresql+asyncpg://$ROLE:$(cat "$PASSWORD_FILE")@127.0.0.1:$POSTGRES_PORT/$DATABASE"
  if [ -s "$ADMIN_PASSWORD_FILE" ]; then
    echo "export PLATFORM_POSTGRES_ADMIN_URL=postgresql://$ADMIN_ROLE:$(cat "$ADMIN_PASSWORD_FILE")@127.0.0.1:$POSTGRES_PORT/$DATABASE"
  fi
}

cmd=${1:-}
[ $# -eq 0 ] || shift
case $cmd in
  install) install ;;
  up)
    install
    init_cluster
    start_cluster
    ensure_role_and_database
    log "up: eval \"\$(hack/postgres.sh env)\" for PLATFORM_POSTGRES_DSN"
    ;;
  env) print_env ;;
  start) start_cluster ;;
  stop) stop_cluster ;;
  down)
    if [ -f "$DATA/PG_VERSION" ]; then stop_cluster; fi
    rm -rf "$DIR"
    rmdir "$(dirname "$DIR")" 2>/dev/null || true  # the instance's folder, unless hack/backends.sh uses it too
    log "down: removed $DIR"
    ;;
  psql) superuser_psql "$@" ;;
  *)
    echo "usage: $0 install|up|env|start|stop|down|psql ARGS..." >&2
    exit 2
    ;;
esac
