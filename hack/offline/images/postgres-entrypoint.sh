#!/bin/sh
# The entrypoint of platform/postgres:15-bookworm (hack/offline/images/postgres.Dockerfile).
# On first start (no $PGDATA/PG_VERSION) it initdb's $PGDATA inside the mounted volume as the
# current user, with the superuser POSTGRES_USER (postgres) whose password is POSTGRES_PASSWORD
# (required), allows password logins (scram-sha-256) from any address, creates the database
# POSTGRES_DB (POSTGRES_USER) through a server that listens on no TCP address meanwhile; then execs
# the command, `postgres` by default, in the foreground: listening on every address, port 5432.
# The password is never on a command line (initdb reads it from a pipe).
set -eu

# `docker run IMAGE -c name=value`: flags for postgres.
case "${1:-}" in -*) set -- postgres "$@" ;; esac

log() { echo "postgres-entrypoint: $*" >&2; }

if [ "${1:-}" = postgres ] && [ "$(id -u)" != 0 ]; then
  : "${PGDATA:=/var/lib/postgresql/data/pgdata}"
  export PGDATA
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    parent=$(dirname "$PGDATA")
    if ! { [ -d "$parent" ] && [ -w "$parent" ]; } && ! { [ -d "$PGDATA" ] && [ -w "$PGDATA" ]; }; then
      log "$parent is not a writable directory for uid $(id -u) (gid $(id -g), groups $(id -G));" \
        "mount a volume there that this user may write (Kubernetes: fsGroup)"
      exit 1
    fi
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
      log "POSTGRES_PASSWORD is not set: the database's superuser needs a password (password logins only)"
      exit 1
    fi
    user=${POSTGRES_USER:-postgres}
    db=${POSTGRES_DB:-$user}
    log "initializing $PGDATA (superuser $user, database $db)"
    # PostgreSQL wants its data directory owner-only (0700): a fresh one, not the volume's root.
    mkdir -p "$PGDATA"
    chmod 700 "$PGDATA"
    printf '%s\n' "$POSTGRES_PASSWORD" |
      initdb --username="$user" --pwfile=/dev/stdin --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >&2
    {
      echo
      echo "# postgres-entrypoint.sh: password logins from anywhere (the pod network)"
      echo "host all all all scram-sha-256"
    } >>"$PGDATA/pg_hba.conf"
    {
      echo
      echo "# postgres-entrypoint.sh"
      echo "listen_addresses = '*'"
      echo "port = 5432"
      echo "password_encryption = 'scram-sha-256'"
    } >>"$PGDATA/postgresql.conf"
    if [ "$db" != postgres ]; then
      # A server on the Unix socket only (no TCP: a readiness check must not pass meanwhile).
      pg_ctl -D "$PGDATA" -w -t 60 -o "-c listen_addresses=''" start >&2
      psql -X -q -v ON_ERROR_STOP=1 -v db="$db" --username="$user" --dbname=postgres <<'EOF'
CREATE DATABASE :"db";
EOF
      pg_ctl -D "$PGDATA" -w -t 60 -m fast stop >&2
    fi
    log "initialized; starting postgres"
  fi
  unset POSTGRES_PASSWORD
fi

exec "$@"
