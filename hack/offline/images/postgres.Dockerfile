# A development PostgreSQL from Debian's packages: the chart's (postgres.enabled, charts/templates/
# postgres.yaml) in kind, where Docker Hub's postgres image cannot be pulled; the operator provisions
# data services' databases on it. Built by `hack/offline/images.sh dev-servers`:
#
#   docker build -f hack/offline/images/postgres.Dockerfile --build-arg BASE_IMAGE=<a Debian bookworm image> \
#     -t platform/postgres:15-bookworm hack/images
#
# Like postgres:15 where the demo relies on it:
# - postgresql-15 (Debian bookworm), its binaries first on PATH (initdb, postgres, pg_ctl, psql,
#   pg_isready; not Debian's pg_wrapper/pg_ctlcluster cluster management: no cluster is created at
#   install time, create_main_cluster = false);
# - PGDATA=/var/lib/postgresql/data/pgdata: a directory *inside* the mounted volume, which initdb
#   creates owner-only (PostgreSQL refuses a data directory that it does not own or that others may
#   read, as an emptyDir's root is);
# - POSTGRES_USER (postgres), POSTGRES_PASSWORD (required), POSTGRES_DB (POSTGRES_USER) from the
#   environment on first start (postgres-entrypoint.sh); the user is the superuser, as in the
#   official image;
# - listening on all addresses, port 5432, with scram-sha-256 password authentication from
#   anywhere (`host all all all scram-sha-256`); trust on the Unix socket only (kubectl exec ... psql);
# - the user postgres as uid/gid 999 (numeric USER: Pod Security "restricted" needs runAsNonRoot),
#   the Unix socket in /run/postgresql, nothing written outside the volume and that directory, so the
#   root may be read-only;
# - postgres in the foreground as PID 1 (exec). STOPSIGNAL SIGINT, as the official image: Docker and
#   containerd (Kubernetes) stop it with a fast shutdown (clients disconnected, a checkpoint, exit 0);
#   SIGTERM is PostgreSQL's smart shutdown, also clean, after the clients have gone.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# The user first, with the official image's ids, so that postgresql-common's postinst keeps it.
# policy-rc.d: no service started in the build.
RUN set -eux; \
    groupadd --system --gid 999 postgres; \
    useradd --system --uid 999 --gid 999 --home-dir /var/lib/postgresql --no-create-home \
      --shell /bin/sh postgres; \
    mkdir -p /etc/postgresql-common; \
    echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.conf; \
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; \
    apt-get update -q; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql-15; \
    rm -f /usr/sbin/policy-rc.d; \
    rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log /var/cache/debconf/*-old; \
    install -d -o postgres -g postgres -m 0755 /var/lib/postgresql; \
    install -d -o postgres -g postgres -m 0770 /var/lib/postgresql/data; \
    install -d -o postgres -g postgres -m 2775 /run/postgresql; \
    /usr/lib/postgresql/15/bin/postgres --version

ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data/pgdata
# Executable in git (mode 0755); COPY keeps the mode (no --chmod: Docker 20.10's built-in frontend lacks it).
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh

WORKDIR /var/lib/postgresql
VOLUME /var/lib/postgresql/data
USER 999:999
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["postgres-entrypoint.sh"]
CMD ["postgres"]
