#!/bin/sh
# The entrypoint of platform/rabbitmq:3-management-bookworm (hack/offline/images/rabbitmq.Dockerfile).
# Prepares $HOME (/var/lib/rabbitmq, the data volume) and execs the command, rabbitmq-server by
# default, in the foreground. Default user and password: RABBITMQ_DEFAULT_USER/RABBITMQ_DEFAULT_PASS,
# read by rabbitmq-server itself.
set -eu

# `docker run IMAGE -some-flag`: flags for rabbitmq-server.
case "${1:-}" in -*) set -- rabbitmq-server "$@" ;; esac

home=${HOME:-/var/lib/rabbitmq}
if ! { [ -d "$home" ] && [ -w "$home" ]; }; then
  echo "rabbitmq-entrypoint: $home is not a writable directory for uid $(id -u) (gid $(id -g), groups $(id -G));" \
    "mount a volume there that this user may write (Kubernetes: fsGroup)" >&2
  exit 1
fi

# The Erlang cookie: from RABBITMQ_ERLANG_COOKIE, else a random one made on first start. Erlang
# refuses a cookie file that the group or others can read (a volume with fsGroup may have made it so).
cookie=$home/.erlang.cookie
if [ -n "${RABBITMQ_ERLANG_COOKIE:-}" ]; then
  [ ! -e "$cookie" ] || chmod 600 "$cookie"
  (umask 077 && printf '%s' "$RABBITMQ_ERLANG_COOKIE" >"$cookie")
  unset RABBITMQ_ERLANG_COOKIE
elif [ ! -s "$cookie" ]; then
  rm -f "$cookie"
  (umask 077 && od -An -N30 -tx1 /dev/urandom | tr -d ' \n' >"$cookie")
fi
chmod 400 "$cookie"

# RabbitMQ 3.10 takes the host's memory for the node's: with a container limit below it, the memory
# alarm (40% of that by default) would come after the OOM killer. The limit is the node's memory
# instead, unless the arguments set it already.
limit=
for file in /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes; do
  [ -r "$file" ] && limit=$(cat "$file") && break
done
host=$(awk '/^MemTotal:/ { printf "%.0f\n", $2 * 1024 }' /proc/meminfo)
case "$limit" in
  '' | *[!0-9]*) ;;
  *)
    if [ "$limit" -lt "$host" ] && [ "${1:-}" = rabbitmq-server ] &&
      case "${RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS:-}" in *total_memory_available_override_value*) false ;; *) true ;; esac; then
      export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="${RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS:-} -rabbit total_memory_available_override_value $limit"
    fi
    ;;
esac

exec "$@"
