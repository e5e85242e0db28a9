# A development Redis from Debian's packages, for the chart's redis.enabled (charts/templates/redis.yaml)
# where Docker Hub's redis:7-alpine cannot be pulled. Built by `hack/offline/images.sh dev-servers`:
#
#   docker build -f hack/offline/images/redis.Dockerfile --build-arg BASE_IMAGE=<a Debian bookworm image> \
#     -t platform/redis:7-bookworm hack/images
#
# Like redis:7-alpine where the chart relies on it: `redis-server` (7.0, Debian bookworm) on PATH,
# the user redis as uid/gid 999 (the chart's runAsUser/runAsGroup/fsGroup), working directory
# /data (the chart's emptyDir), nothing written outside it (the chart mounts the root read-only),
# no entrypoint (the chart sets the command: redis-server --requirepass $(REDIS_PASSWORD) ...).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# The user first, with the official image's ids, so that the package's postinst keeps it.
# policy-rc.d: the package's postinst must not try to start a service in the build.
RUN set -eux; \
    groupadd --system --gid 999 redis; \
    useradd --system --uid 999 --gid 999 --home-dir /var/lib/redis --no-create-home \
      --shell /usr/sbin/nologin redis; \
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; \
    apt-get update -q; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server; \
    rm -f /usr/sbin/policy-rc.d; \
    rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log /var/cache/debconf/*-old; \
    mkdir -p /data; chown redis:redis /data; \
    redis-server --version

WORKDIR /data
VOLUME /data
USER 999:999
EXPOSE 6379
CMD ["redis-server"]
