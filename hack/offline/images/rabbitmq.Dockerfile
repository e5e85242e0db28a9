# A development RabbitMQ with the management plugin, from Debian's packages, for the chart's
# rabbitmq.enabled (charts/templates/rabbitmq.yaml) where Docker Hub's rabbitmq:3.13-management cannot
# be pulled. Built by `hack/offline/images.sh dev-servers`:
#
#   docker build -f hack/offline/images/rabbitmq.Dockerfile --build-arg BASE_IMAGE=<a Debian bookworm image> \
#     -t platform/rabbitmq:3-management-bookworm hack/images
#
# Like rabbitmq:3-management where the chart relies on it:
# - rabbitmq-server 3.10 (Debian bookworm; Erlang 25) in the foreground as the main process (the
#   broker's own script, /usr/lib/rabbitmq/bin/rabbitmq-server: it stops the node on SIGTERM), not
#   Debian's /usr/sbin wrapper (that one sends the output to /var/log/rabbitmq/startup_log);
# - the management plugin enabled at build time (/etc/rabbitmq/enabled_plugins), ports 5672, 15672;
# - RABBITMQ_DEFAULT_USER / RABBITMQ_DEFAULT_PASS (/ RABBITMQ_DEFAULT_VHOST): read by the broker
#   itself since 3.9 (rabbit_env), which creates that user, tagged administrator, on first boot;
# - the user rabbitmq as uid/gid 999 (the chart's runAsUser/runAsGroup/fsGroup), HOME and all data
#   in /var/lib/rabbitmq (the chart's emptyDir), logs to stdout (RABBITMQ_LOGS, and
#   RABBITMQ_UPGRADE_LOG: else that one goes to /var/log/rabbitmq/<node>_upgrade.log, and a read-only
#   root stops the broker), nothing written elsewhere: the root may be read-only;
# - a container memory limit (cgroup v1 or v2) as the memory RabbitMQ 3.10 computes its high
#   watermark from (it sees the host's memory otherwise): set by the entrypoint;
# - the node name rabbit@localhost (RABBITMQ_NODENAME): a single development node, so it need not
#   resolve the pod's hostname, and its data directory does not depend on the pod's name;
# - the Erlang cookie: the package's postinst generates one into the image; it is deleted here, and
#   the entrypoint writes a fresh random one into the data volume on first start (or the value of
#   RABBITMQ_ERLANG_COOKIE), owner-only, as Erlang demands. rabbitmqctl in the container (same HOME,
#   same node name) uses it.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

RUN set -eux; \
    groupadd --system --gid 999 rabbitmq; \
    useradd --system --uid 999 --gid 999 --home-dir /var/lib/rabbitmq --no-create-home \
      --shell /usr/sbin/nologin rabbitmq; \
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; \
    apt-get update -q; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends rabbitmq-server; \
    rm -f /usr/sbin/policy-rc.d; \
    rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log /var/cache/debconf/*-old; \
    /usr/lib/rabbitmq/bin/rabbitmq-plugins --offline enable rabbitmq_management; \
    rm -rf /var/lib/rabbitmq /var/log/rabbitmq/*; \
    install -d -o rabbitmq -g rabbitmq -m 0750 /var/lib/rabbitmq; \
    chown rabbitmq:rabbitmq /var/log/rabbitmq; \
    cat /etc/rabbitmq/enabled_plugins

ENV PATH=/usr/lib/rabbitmq/bin:$PATH \
    HOME=/var/lib/rabbitmq \
    RABBITMQ_NODENAME=rabbit@localhost \
    RABBITMQ_LOGS=- \
    RABBITMQ_UPGRADE_LOG=-
# Executable in git (mode 0755); COPY keeps the mode (no --chmod: Docker 20.10's built-in frontend lacks it).
COPY rabbitmq-entrypoint.sh /usr/local/bin/rabbitmq-entrypoint.sh

WORKDIR /var/lib/rabbitmq
VOLUME /var/lib/rabbitmq
USER 999:999
EXPOSE 4369 5671 5672 15671 15672 25672
ENTRYPOINT ["rabbitmq-entrypoint.sh"]
CMD ["rabbitmq-server"]
