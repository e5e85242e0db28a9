# A development MongoDB-wire server for the data samples in kind (catalog-data:
# hack/kind-demo/demo-databases.yaml), where no MongoDB image can be pulled: FerretDB v1 (Apache-2.0)
# on its SQLite backend, the binary hack/ferretdb.sh builds from the Go module proxy (static,
# CGO_ENABLED=0). Built by `hack/offline/images.sh demo-databases`, with a context holding only that binary:
#
#   mkdir ctx && cp "$(hack/ferretdb.sh build)" ctx/ferretdb
#   docker build -f hack/offline/images/ferretdb.Dockerfile --build-arg BASE_IMAGE=<a Debian bookworm image> \
#     -t platform/ferretdb:v1.24.2 ctx
#
# - nothing but the binary (FROM scratch): no shell, no package; the base image only prepares the
#   directories (/state owned by the user, /tmp sticky), copied with their modes;
# - FerretDB's own settings by environment, as its official image has them: SQLite files and
#   state.json in /state (the volume), listening on 0.0.0.0:27017, no debug HTTP listener,
#   telemetry off, JSON logs. Without authentication: FerretDB v1's SQLite backend has no users
#   (credentials in a URL are not checked), so clients connect with mongodb://host:27017/<db>;
# - uid/gid 999 (numeric USER: Pod Security "restricted" needs runAsNonRoot), nothing written
#   outside /state (and SQLite's temporary files in /tmp, TMPDIR), so the root may be read-only;
# - FerretDB as PID 1: it stops cleanly on SIGTERM (and SIGINT).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE} AS prepare
COPY ferretdb /rootfs/ferretdb
RUN set -eux; \
    chmod 0755 /rootfs/ferretdb; \
    install -d -o 999 -g 999 -m 0770 /rootfs/state; \
    install -d -m 1777 /rootfs/tmp; \
    /rootfs/ferretdb --version

FROM scratch
COPY --from=prepare /rootfs/ /
ENV FERRETDB_HANDLER=sqlite \
    FERRETDB_SQLITE_URL=file:/state/ \
    FERRETDB_STATE_DIR=/state \
    FERRETDB_LISTEN_ADDR=0.0.0.0:27017 \
    FERRETDB_DEBUG_ADDR=- \
    FERRETDB_TELEMETRY=disable \
    FERRETDB_LOG_FORMAT=json \
    TMPDIR=/tmp
WORKDIR /state
VOLUME /state
USER 999:999
EXPOSE 27017
ENTRYPOINT ["/ferretdb"]
