#!/usr/bin/env bash
# A kind node image assembled on this machine, offline, for `kind create cluster --image ...`.
#
# Why: `kind build node-image` and kind's published kindest/node images come from container
# registries (docker.io, registry.k8s.io) and GitHub releases, which the project's build machines do
# not reach; they reach the Go module proxy and Debian's mirrors only. So every part is built here:
#   - the kind CLI (go install sigs.k8s.io/kind@KIND_VERSION);
#   - kubelet, kubeadm, kube-proxy, kubectl and the control plane at KUBE_VERSION (k8s.io/kubernetes
#     through a small module that points its staging modules at the published v0.Y.Z; the control
#     plane and kubectl come from hack/build-cluster-tools.sh, which this script calls);
#   - crictl (sigs.k8s.io/cri-tools), etcd, coredns and local-path-provisioner at the versions the
#     images want, pause (static C build of Kubernetes' build/pause/linux/pause.c), and a small
#     kindnetd of our own (hack/offline/kind-node/kindnetd: kind's own source is not on the module proxy);
#   - a Debian bookworm node root filesystem (debootstrap: systemd, containerd, runc, CNI plugins,
#     iptables, ...), with kind's base-image files taken from the sigs.k8s.io/kind module zip
#     (images/base/files: entrypoint, containerd config, systemd units) as kind's base Dockerfile
#     lays them out;
#   - the images kubeadm and kind's default manifests name (`kubeadm config images list`, the pause
#     image of kind's containerd config, kindnetd and local-path-provisioner/helper from kind's
#     pkg/build/nodeimage/const_*.go), each a `docker import` of a small root filesystem with the
#     binary, tagged with exactly that name, `docker save`d, and imported into the node's containerd
#     (namespace k8s.io, pinned, not unpacked, as kind does) by a containerd run on the host against
#     the node root filesystem's /var/lib/containerd;
#   - /kind/version and /kind/manifests/default-{cni,storage}.yaml, as kind writes them.
# The node root filesystem is then imported as one image with kind's entrypoint, env and stop signal.
#
# Privileged containers: this machine's capability bounding set lacks CAP_SYS_RESOURCE, so runc
# refuses privileged containers. Docker on the host runs them through hack/offline/oci-runtime-wrapper
# (hack/offline/docker-engine.sh); inside the node, kube-proxy's privileged pods hit the same wall, so the
# node image installs the same wrapper as /usr/local/sbin/runc (python3 is in the node for it) and
# containerd's runc runtimes call it (BinaryName); it execs Debian's /usr/sbin/runc. Lowering
# oom_score_adj needs the same capability, so the node's containerd has restrict_oom_score_adj = true.
#
# Usage:
#   hack/offline/kind-node-image.sh build   build what is missing, print the image name on stdout
#   hack/offline/kind-node-image.sh kind-cli  build only the kind CLI (go install), print its path
#   hack/offline/kind-node-image.sh print   print the image name (platform/kind-node:KUBE_VERSION-KEY)
#   hack/offline/kind-node-image.sh parts   only the parts that need no docker engine (Go builds, rootfs)
#   hack/offline/kind-node-image.sh test    build, then prove it: a cluster (kind create cluster, a control
#                                   plane and a worker), nodes Ready, every kube-system/local-path pod
#                                   Ready, a PVC bound, and two pods of our own on two nodes talking
#                                   over the pod network, by IP and by Service name; then delete it
# Needs: root, go, debootstrap, docker (a running engine, e.g. hack/offline/docker-engine.sh up), gcc with
# static glibc (pause), jq. Progress on stderr as `[kind-node HH:MM:SS] ...`.
#
# Settings (environment): PLATFORM_CACHE (~/.cache/platform-operator), DEBIAN_MIRROR
# (http://deb.debian.org/debian), KIND_NODE_IMAGE_NAME (platform/kind-node); for `test`:
# TEST_CLUSTER (nodetest), TEST_WORKERS (1), KEEP_TEST_CLUSTER=1 keeps the cluster (its kubeconfig:
# $PLATFORM_CACHE/build/kind-node/kubeconfig-CLUSTER). Versions: KUBE_VERSION and KIND_VERSION from
# hack/versions.env; CRICTL_VERSION, LOCAL_PATH_PROVISIONER_VERSION below (the newest on the module
# proxy for this Kubernetes minor; kind v0.33 ships local-path-provisioner v0.0.34, which the proxy
# refuses); etcd, coredns and pause versions from kubeadm; image names from kind's sources.
#
# Cache layout ($PLATFORM_CACHE), every entry keyed by version, reused when present:
#   bin/kind-VERSION/kind                        kind CLI
#   bin/kube-VERSION/{kubelet,kubeadm,kube-proxy,kube-apiserver,...}   (shared with build-cluster-tools)
#   bin/crictl-VERSION/crictl  bin/coredns-VERSION/coredns  bin/etcd-VERSION/{etcd,etcdctl}
#   bin/local-path-provisioner-VERSION/local-path-provisioner  bin/pause-VERSION/pause
#   bin/kindnetd-HASH/kindnetd                   (HASH of hack/offline/kind-node/kindnetd and client-go version)
#   kind-node/rootfs/{node,slim,probe}-bookworm-HASH.tar   debootstrap results (HASH of package list)
#   kind-node/images/NAME_TAG-HASH.tar           docker save of each component image
#   build/kind-node/...                          Go modules and scratch space
# The node image's tag carries a KEY: a hash of this script, hack/offline/kind-node/, the runtime wrapper and
# the versions, so a change to any of them makes a new image; `print` computes it without building.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/../versions.env"

LOG_TAG=kind-node
# shellcheck source=hack/lib.sh
. "$here/../lib.sh"
go_build_env build/kind-node
KN="$CACHE/kind-node"
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
IMAGE_REPO=${KIND_NODE_IMAGE_NAME:-platform/kind-node}
CRICTL_VERSION=v1.34.0
LOCAL_PATH_PROVISIONER_VERSION=v0.0.30
WRAPPER="$here/oci-runtime-wrapper"

# The node: what kind's base image installs from apt (less nfs/iscsi), Debian's containerd/runc/CNI
# plugins in place of kind's builds, python3 for the runtime wrapper.
NODE_PACKAGES=systemd,systemd-sysv,dbus,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,fuse-overlayfs,e2fsprogs,bash,ca-certificates,curl,jq,procps,containerd,runc,containernetworking-plugins,socat,ebtables,ipset,netbase,python3
# kube-proxy, kindnetd and local-path-helper: a shell, iptables and iproute2.
SLIM_PACKAGES=iptables,nftables,iproute2,conntrack,ca-certificates,netbase
# Test pods (`test`), when hack/offline/images.sh is not there: python3 for an HTTP server and client.
PROBE_PACKAGES=python3,ca-certificates,netbase,iproute2

sha() { sha256sum | cut -c1-"${1:-12}"; }

kind_dir() {
  local d
  d=$(cd "$WORK" && go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
  [ -d "$d" ] || die "sigs.k8s.io/kind@$KIND_VERSION not on the module proxy (go list -m -versions sigs.k8s.io/kind)"
  echo "$d"
}

image_key() {
  {
    cat "$0" "$here/../lib.sh" "$WRAPPER"
    find "$here/kind-node" -type f | sort | xargs cat
    echo "$KUBE_VERSION $KIND_VERSION $CRICTL_VERSION $LOCAL_PATH_PROVISIONER_VERSION $SUITE"
  } | sha 10
}
node_image() { echo "$IMAGE_REPO:$KUBE_VERSION-$(image_key)"; }

# ---------------------------------------------------------------------------------------------
# Go builds


build_kind() { go_install kind "$KIND_VERSION" sigs.k8s.io/kind; }
build_crictl() { go_install crictl "$CRICTL_VERSION" sigs.k8s.io/cri-tools/cmd/crictl; }

# kubelet, kubeadm, kube-proxy (hack/lib.sh), beside the control plane of hack/build-cluster-tools.sh.
build_kube_node() { go_build_kubernetes kubelet kubeadm kube-proxy; }

build_kube_control_plane() { # kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
  "$here/../build-cluster-tools.sh" kubernetes >/dev/null
}

# pause: Kubernetes' build/pause/linux/pause.c, static, as its Makefile builds it.
build_pause() { # version
  local ver=$1 out="$BIN/pause-$1"
  [ -x "$out/pause" ] && return
  local src
  src=$(cd "$WORK" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')/build/pause/linux/pause.c
  [ -f "$src" ] || die "no $src"
  mkdir -p "$out"
  log "pause $ver: gcc -static $src"
  gcc -Os -Wall -Werror -static -DVERSION="v$ver-platform" -o "$out/pause.tmp" "$src"
  strip "$out/pause.tmp"
  mv "$out/pause.tmp" "$out/pause"
}

build_kindnetd() { # prints the binary's path
  local client_ver="v0.${KUBE_VERSION#v1.}" src="$here/kind-node/kindnetd/main.go"
  local key
  key=$(cat "$src" <(echo "$client_ver") | sha 12)
  local out="$BIN/kindnetd-$key"
  if [ ! -x "$out/kindnetd" ]; then
    local dir="$WORK/kindnetd-$key"
    mkdir -p "$dir" "$out"
    cp "$src" "$dir/main.go"
    printf 'module platform.dev/kindnetd\n\ngo 1.24.0\n\nrequire (\n\tk8s.io/api %s\n\tk8s.io/apimachinery %s\n\tk8s.io/client-go %s\n)\n' \
      "$client_ver" "$client_ver" "$client_ver" >"$dir/go.mod"
    log "kindnetd: building (client-go $client_ver)"
    (cd "$dir" && go mod tidy >/dev/null && timed kindnetd go build -trimpath -ldflags "-s -w" -o "$out/kindnetd.tmp" .)
    mv "$out/kindnetd.tmp" "$out/kindnetd"
  fi
  echo "$out/kindnetd"
}

kindconst() { # file name: a string constant of a kind source file
  local tool="$WORK/kindconst/kindconst"
  if [ ! -x "$tool" ] || [ "$here/kind-node/kindconst/main.go" -nt "$tool" ]; then
    mkdir -p "$WORK/kindconst"
    cp "$here/kind-node/kindconst/main.go" "$WORK/kindconst/"
    [ -f "$WORK/kindconst/go.mod" ] || printf 'module platform.dev/kindconst\n\ngo 1.24.0\n' >"$WORK/kindconst/go.mod"
    (cd "$WORK/kindconst" && go build -o kindconst .)
  fi
  "$tool" "$1" "$2"
}

# ---------------------------------------------------------------------------------------------
# Root filesystems (debootstrap), cached as tarballs

rootfs() { # name packages: prints the tarball of `debootstrap --variant=minbase --include=packages`
  local name=$1 pkgs=$2 tar
  tar="$KN/rootfs/$name-$SUITE-$(echo "$pkgs $MIRROR" | sha 10).tar"
  mkdir -p "$KN/rootfs"
  local lock
  exec {lock}>"$tar.lock"
  flock "$lock" # one debootstrap per tarball, when two runs overlap
  if [ ! -f "$tar" ]; then
    local dir="$WORK/rootfs-$name"
    rm -rf "$dir"
    log "rootfs $name: debootstrap $SUITE ($pkgs)"
    timed "rootfs $name" debootstrap --variant=minbase --include="$pkgs" "$SUITE" "$dir" "$MIRROR" >"$WORK/debootstrap-$name.log" 2>&1 ||
      die "debootstrap $name failed, see $WORK/debootstrap-$name.log"
    chroot "$dir" apt-get clean
    rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/log/*.log
    tar --numeric-owner --xattrs -C "$dir" -cf "$tar.tmp" .
    mv "$tar.tmp" "$tar"
    rm -rf "$dir"
  fi
  exec {lock}>&-
  echo "$tar"
}

# ---------------------------------------------------------------------------------------------
# Component images: docker import of a root filesystem, docker save to the cache

# A root filesystem for static binaries: passwd/group, CA certificates, /tmp.
static_root() { # dir
  local d=$1
  mkdir -p "$d/etc/ssl/certs" "$d/tmp" "$d/usr/local/bin" "$d/var/run" "$d/root"
  chmod 1777 "$d/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$d/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$d/etc/group"
  echo 'hosts: files dns' >"$d/etc/nsswitch.conf"
  cp /etc/ssl/certs/ca-certificates.crt "$d/etc/ssl/certs/"
}

PATH_ENV='PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

# make_image ref base key populate_fn [docker import --change ...]: saves the image to the cache
# (unless there) and appends the tarball to TARS.
# base: "static" or a rootfs tarball. populate_fn DIR adds the image's files.
make_image() {
  local ref=$1 base=$2 key=$3 fn=$4
  shift 4
  local file
  file="$KN/images/$(echo "${ref##*/}" | tr ':@' '__')-$(echo "$ref $base $key $*" | sha 10).tar"
  if [ ! -f "$file" ]; then
    local dir="$WORK/img-root"
    rm -rf "$dir"
    mkdir -p "$dir" "$KN/images"
    if [ "$base" = static ]; then static_root "$dir"; else tar --numeric-owner -xf "$base" -C "$dir"; fi
    "$fn" "$dir"
    local changes=(--change "ENV $PATH_ENV") c
    for c in "$@"; do changes+=(--change "$c"); done
    log "image $ref: docker import"
    tar --numeric-owner -C "$dir" -c . | docker import "${changes[@]}" - "$ref" >/dev/null
    docker save -o "$file.tmp" "$ref"
    mv "$file.tmp" "$file"
    rm -rf "$dir"
  fi
  TARS+=("$file")
}

# populate functions read globals set just before make_image
put_bin() { install -m 0755 "$SRC_BIN" "$1$DEST_PATH"; }

component_images() { # sets TARS (saved images) and IMAGE_REFS (their names)
  local kubeadm="$BIN/kube-$KUBE_VERSION/kubeadm" kdir slim ref name tag
  kdir=$(kind_dir)
  slim=$(rootfs slim "$SLIM_PACKAGES")
  IMAGE_REFS=() TARS=()
  local list
  list=$("$kubeadm" config images list --kubernetes-version "$KUBE_VERSION" 2>/dev/null)
  for ref in $list; do
    name=${ref%:*}
    name=${name##*/}
    tag=${ref##*:}
    case $name in
    kube-apiserver | kube-controller-manager | kube-scheduler)
      SRC_BIN="$BIN/kube-$KUBE_VERSION/$name" DEST_PATH="/usr/local/bin/$name"
      make_image "$ref" static "$(sha256sum <"$SRC_BIN" | cut -c1-16)" put_bin "ENTRYPOINT [\"/usr/local/bin/$name\"]"
      ;;
    kube-proxy)
      SRC_BIN="$BIN/kube-$KUBE_VERSION/$name" DEST_PATH="/usr/local/bin/$name"
      make_image "$ref" "$slim" "$(sha256sum <"$SRC_BIN" | cut -c1-16)" put_bin "ENTRYPOINT [\"/usr/local/bin/$name\"]"
      ;;
    etcd)
      go_build_etcd "v${tag%-*}" etcd etcdctl >&2
      ETCD_DIR="$BIN/etcd-v${tag%-*}"
      make_image "$ref" static "$(cat "$ETCD_DIR"/etcd "$ETCD_DIR"/etcdctl | sha 16)" put_etcd 'ENTRYPOINT ["/usr/local/bin/etcd"]'
      ;;
    coredns)
      go_install coredns "$tag" github.com/coredns/coredns >&2
      SRC_BIN="$BIN/coredns-$tag/coredns" DEST_PATH=/coredns
      make_image "$ref" static "$(sha256sum <"$SRC_BIN" | cut -c1-16)" put_bin 'ENTRYPOINT ["/coredns"]' 'EXPOSE 53 53/udp'
      ;;
    pause)
      build_pause "$tag" >&2
      SRC_BIN="$BIN/pause-$tag/pause" DEST_PATH=/pause
      make_image "$ref" static "$(sha256sum <"$SRC_BIN" | cut -c1-16)" put_bin 'ENTRYPOINT ["/pause"]' 'USER 65535:65535'
      ;;
    *) die "kubeadm wants $ref, which this script does not know how to build" ;;
    esac
    IMAGE_REFS+=("$ref")
  done
  # kind's containerd config names its own sandbox (pause) image; same binary under that tag.
  local sandbox
  sandbox=$(sed -n 's/^ *sandbox_image = "\(.*\)"/\1/p' "$kdir/images/base/files/etc/containerd/config.toml")
  if [ -n "$sandbox" ] && ! printf '%s\n' "${IMAGE_REFS[@]}" | grep -qxF "$sandbox"; then
    local pause_tag
    pause_tag=$(printf '%s\n' $list | sed -n 's#.*/pause:##p')
    SRC_BIN="$BIN/pause-$pause_tag/pause" DEST_PATH=/pause
    make_image "$sandbox" static "$(sha256sum <"$SRC_BIN" | cut -c1-16)" put_bin 'ENTRYPOINT ["/pause"]' 'USER 65535:65535'
    IMAGE_REFS+=("$sandbox")
  fi
  # kind's default CNI and storage images.
  local nd="$kdir/pkg/build/nodeimage" kindnetd_ref lpp_ref helper_ref
  kindnetd_ref=$(kindconst "$nd/const_cni.go" kindnetdImage)
  lpp_ref=$(kindconst "$nd/const_storage.go" storageProvisionerImage)
  helper_ref=$(kindconst "$nd/const_storage.go" storageHelperImage)
  SRC_BIN=$(build_kindnetd) DEST_PATH=/bin/kindnetd
  make_image "$kindnetd_ref" "$slim" "$(sha256sum <"$SRC_BIN" | cut -c1-16)" put_bin 'ENTRYPOINT ["/bin/kindnetd"]'
  go_install local-path-provisioner "$LOCAL_PATH_PROVISIONER_VERSION" github.com/rancher/local-path-provisioner >&2
  SRC_BIN="$BIN/local-path-provisioner-$LOCAL_PATH_PROVISIONER_VERSION/local-path-provisioner" DEST_PATH=/usr/local/bin/local-path-provisioner
  make_image "$lpp_ref" static "$(sha256sum <"$SRC_BIN" | cut -c1-16)" put_bin 'ENTRYPOINT ["/usr/local/bin/local-path-provisioner"]'
  make_image "$helper_ref" "$slim" helper true
  IMAGE_REFS+=("$kindnetd_ref" "$lpp_ref" "$helper_ref")
}

put_etcd() {
  install -m 0755 "$ETCD_DIR/etcd" "$1/usr/local/bin/etcd"
  install -m 0755 "$ETCD_DIR/etcdctl" "$1/usr/local/bin/etcdctl"
  mkdir -p "$1/var/lib/etcd" "$1/var/etcd"
}

# ---------------------------------------------------------------------------------------------
# The node image

# kind's base Dockerfile: static files with its modes, then its RUN steps, in a chroot.
install_kind_base_files() { # rootfs kind-dir
  local r=$1 f="$2/images/base/files"
  install -d -m 0755 "$r/kind" "$r/kind/bin" "$r/LICENSES" "$r/etc/containerd" "$r/etc/default" \
    "$r/etc/sysctl.d" "$r/etc/systemd/system/kubelet.service.d"
  install -m 0755 "$f"/usr/local/bin/* "$r/usr/local/bin/"
  install -m 0644 "$f"/kind/README.txt "$r/kind/"
  install -m 0755 "$f"/kind/bin/* "$r/kind/bin/"
  install -m 0644 "$f"/LICENSES/* "$r/LICENSES/"
  install -m 0644 "$f"/etc/crictl.yaml "$r/etc/"
  install -m 0644 "$f"/etc/containerd/* "$r/etc/containerd/"
  install -m 0644 "$f"/etc/default/* "$r/etc/default/"
  install -m 0644 "$f"/etc/sysctl.d/* "$r/etc/sysctl.d/"
  find "$f/etc/systemd/system" -maxdepth 1 -type f -exec install -m 0644 {} "$r/etc/systemd/system/" \;
  install -m 0644 "$f"/etc/systemd/system/kubelet.service.d/* "$r/etc/systemd/system/kubelet.service.d/"
  chroot "$r" /bin/bash -euc '
    find /lib/systemd/system/sysinit.target.wants/ -name "systemd-tmpfiles-setup.service" -delete
    rm -f /lib/systemd/system/multi-user.target.wants/*
    rm -f /etc/systemd/system/*.wants/*
    rm -f /lib/systemd/system/local-fs.target.wants/*
    rm -f /lib/systemd/system/sockets.target.wants/*udev*
    rm -f /lib/systemd/system/sockets.target.wants/*initctl*
    rm -f /lib/systemd/system/basic.target.wants/*
    echo "ReadKMsg=no" >> /etc/systemd/journald.conf
    ln -sf /usr/lib/systemd/systemd /sbin/init
    systemctl enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
    systemctl mask systemd-binfmt.service >/dev/null 2>&1
    mkdir -p /etc/kubernetes/manifests'
  # kind builds containerd into /usr/local/bin and its CNI plugins into /opt/cni/bin; Debian ships
  # them in /usr/bin and /usr/lib/cni.
  ln -sf /usr/bin/containerd "$r/usr/local/bin/containerd"
  ln -sf /usr/bin/ctr "$r/usr/local/bin/ctr"
  ln -sf /usr/bin/containerd-shim-runc-v2 "$r/usr/local/bin/containerd-shim-runc-v2"
  mkdir -p "$r/opt/cni/bin"
  local p
  for p in host-local loopback ptp portmap bridge; do cp -a "$r/usr/lib/cni/$p" "$r/opt/cni/bin/$p"; done
  chroot "$r" /bin/bash -euc "ctr oci spec \
    | jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {\"path\": \"/kind/bin/mount-product-files.sh\"}' \
    | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json"
  # privileged pods in the node: runc through the runtime wrapper (see the header)
  install -m 0755 "$WRAPPER" "$r/usr/local/sbin/runc"
  sed -i 's#^\( *\)SystemdCgroup = true#&\n\1BinaryName = "/usr/local/sbin/runc"#' "$r/etc/containerd/config.toml"
  grep -q 'BinaryName = "/usr/local/sbin/runc"' "$r/etc/containerd/config.toml" || die "could not set containerd's runc BinaryName"
  # Lowering a process's oom_score_adj (kubelet asks -998 for sandboxes, -997 for critical pods)
  # needs CAP_SYS_RESOURCE too; runc then fails with "failed to update /proc/self/oom_score_adj:
  # Permission denied". Restricted, containerd clamps it to its own value (as kind does rootless).
  sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' "$r/etc/containerd/config.toml"
  grep -q 'restrict_oom_score_adj = true' "$r/etc/containerd/config.toml" || die "could not set restrict_oom_score_adj"
}

# Import the saved images into the node's containerd store with a containerd of the node's own,
# run on the host against $rootfs/var/lib/containerd (kind: ctr images import --no-unpack, pinned).
import_images() { # rootfs tarball...
  local r=$1
  shift
  local st="$WORK/containerd-import"
  rm -rf "$st"
  mkdir -p "$st" "$r/var/lib/containerd"
  cat >"$st/config.toml" <<TOML
version = 2
root = "$r/var/lib/containerd"
state = "$st/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$st/containerd.sock"
[ttrpc]
  address = "$st/containerd.sock.ttrpc"
[debug]
  address = ""
TOML
  "$r/usr/bin/containerd" --config "$st/config.toml" >"$st/containerd.log" 2>&1 &
  local pid=$! i
  for i in $(seq 1 50); do [ -S "$st/containerd.sock" ] && break; sleep 0.2; done
  local ctr=("$r/usr/bin/ctr" --address "$st/containerd.sock" --namespace k8s.io) t rc=0
  for t in "$@"; do
    "${ctr[@]}" images import --label=io.cri-containerd.pinned=pinned --all-platforms --no-unpack --digests - <"$t" >/dev/null || {
      rc=1
      break
    }
  done
  [ $rc = 0 ] && "${ctr[@]}" images ls -q | grep -v -e '^sha256:' -e '^import-' >"$st/imported"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  [ $rc = 0 ] || die "ctr images import failed (containerd log: $st/containerd.log)"
  local ref
  for ref in "${IMAGE_REFS[@]}"; do
    grep -qxF "$ref" "$st/imported" || grep -qxF "docker.io/$ref" "$st/imported" || die "image $ref missing after import; have: $(tr '\n' ' ' <"$st/imported")"
  done
  log "node: $(wc -l <"$st/imported") images in containerd (k8s.io): $(tr '\n' ' ' <"$st/imported")"
}

# The engine of hack/offline/docker-engine.sh when the default one does not answer (kind uses the same).
build() {
  ensure_docker
  mkdir -p "$WORK" "$KN"
  local image
  image=$(node_image)
  build_kind # the CLI too, even when the image is there (a new machine may have one without the other)
  if docker image inspect "$image" >/dev/null 2>&1; then
    log "node image $image present"
    echo "$image"
    return
  fi
  local t0=$SECONDS kdir
  kdir=$(kind_dir)
  build_kind
  build_crictl
  build_kube_node
  build_kube_control_plane
  local node_tar
  node_tar=$(rootfs node "$NODE_PACKAGES")
  component_images
  log "node: assembling $image"
  local r="$WORK/node-root"
  rm -rf "$r"
  mkdir -p "$r"
  tar --numeric-owner --xattrs -xf "$node_tar" -C "$r"
  install_kind_base_files "$r" "$kdir"
  local b
  for b in kubelet kubeadm kubectl; do install -m 0755 "$BIN/kube-$KUBE_VERSION/$b" "$r/usr/bin/$b"; done
  install -m 0755 "$BIN/crictl-$CRICTL_VERSION/crictl" "$r/usr/local/bin/crictl"
  printf '%s' "$KUBE_VERSION" >"$r/kind/version"
  mkdir -p "$r/kind/manifests"
  kindconst "$kdir/pkg/build/nodeimage/const_cni.go" defaultCNIManifest >"$r/kind/manifests/default-cni.yaml"
  kindconst "$kdir/pkg/build/nodeimage/const_storage.go" defaultStorageManifest >"$r/kind/manifests/default-storage.yaml"
  import_images "$r" "${TARS[@]}"
  log "node: docker import"
  tar --numeric-owner --xattrs -C "$r" -c . | docker import \
    --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
    --change 'ENV container=docker' \
    --change "ENV $PATH_ENV" \
    - "$image-flat" >/dev/null
  rm -rf "$r"
  # docker import (20.10) takes no STOPSIGNAL: one Dockerfile line on top, classic builder (local
  # FROM, no registry).
  printf 'FROM %s\nSTOPSIGNAL SIGRTMIN+3\n' "$image-flat" | DOCKER_BUILDKIT=0 docker build -q -t "$image" - >/dev/null 2>"$WORK/stopsignal.log" ||
    die "docker build (STOPSIGNAL) failed: $(cat "$WORK/stopsignal.log")"
  docker rmi "$image-flat" >/dev/null
  log "node image $image built in $((SECONDS - t0))s ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
  # Earlier builds of this repository (a container still using one keeps it).
  docker images "$IMAGE_REPO" --format '{{.Repository}}:{{.Tag}}' | grep -vxF "$image" | xargs -r docker rmi >/dev/null 2>&1 || true
  echo "$image"
}

# ---------------------------------------------------------------------------------------------
# test: a real cluster from the image

put_probe() { :; }

cmd_test() {
  local image kind kubectl cluster=${TEST_CLUSTER:-nodetest}
  ensure_docker
  image=$(build)
  kind="$BIN/kind-$KIND_VERSION/kind"
  kubectl="$BIN/kube-$KUBE_VERSION/kubectl"
  # The test pods' image: the project's Python base (hack/offline/images.sh) when there, else our own.
  local probe_ref
  if [ -x "$here/images.sh" ]; then
    "$here/images.sh" base >&2
    probe_ref=$("$here/images.sh" base-tag)
  else
    probe_ref=platform/kind-node-probe:$SUITE
    TARS=()
    make_image "$probe_ref" "$(rootfs probe "$PROBE_PACKAGES")" probe put_probe 'CMD ["sleep", "infinity"]'
    docker image inspect "$probe_ref" >/dev/null 2>&1 || docker load -i "${TARS[0]}" >/dev/null
  fi
  export KUBECONFIG="$WORK/kubeconfig-$cluster"
  "$kind" delete cluster --name "$cluster" >/dev/null 2>&1 || true
  # One control plane and TEST_WORKERS workers: the server pod on a worker when there is one, the
  # client on the control plane, so that their traffic crosses nodes (kindnetd's routes).
  local workers=${TEST_WORKERS:-1} i
  {
    printf 'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n'
    for ((i = 0; i < workers; i++)); do printf -- '- role: worker\n'; done
  } >"$WORK/kind-test-config.yaml"
  local server_node="$cluster-control-plane"
  [ "$workers" = 0 ] || server_node="$cluster-worker"
  log "test: kind create cluster --name $cluster --image $image (1 control plane, $workers workers)"
  local t0=$SECONDS
  "$kind" create cluster --name "$cluster" --image "$image" --config "$WORK/kind-test-config.yaml" --wait 3m
  log "test: cluster created in $((SECONDS - t0))s"
  # shellcheck disable=SC2064 # expanded now: the locals are gone when the trap runs
  [ "${KEEP_TEST_CLUSTER:-0}" = 1 ] || trap "'$kind' delete cluster --name '$cluster'" EXIT
  "$kubectl" get nodes -o wide
  "$kubectl" wait --for=condition=Ready node --all --timeout=60s
  log "test: waiting for every pod to be Ready"
  "$kubectl" wait --for=condition=Ready pod --all -A --timeout=180s
  "$kubectl" get pods -A -o wide
  log "test: kind load docker-image $probe_ref"
  "$kind" load docker-image "$probe_ref" --name "$cluster"
  "$kubectl" apply -f - <<YAML
apiVersion: v1
kind: Pod
metadata: {name: server, labels: {app: probe-server}}
spec:
  nodeName: $server_node
  containers:
  - name: http
    image: $probe_ref
    imagePullPolicy: Never
    command: [python3, -m, http.server, "8000", --directory, /etc]
    ports: [{containerPort: 8000}]
    readinessProbe: {tcpSocket: {port: 8000}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: server}
spec:
  selector: {app: probe-server}
  ports: [{port: 80, targetPort: 8000}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  # scheduled (not nodeName), so that the PVC (WaitForFirstConsumer) gets its node
  nodeSelector: {kubernetes.io/hostname: $cluster-control-plane}
  tolerations: [{key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}]
  containers:
  - name: sleep
    image: $probe_ref
    imagePullPolicy: Never
    command: [sleep, infinity]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes:
  - name: data
    persistentVolumeClaim: {claimName: data}
YAML
  "$kubectl" wait --for=condition=Ready pod/server pod/client --timeout=180s
  "$kubectl" get pods,pvc -o wide
  local server_ip
  server_ip=$("$kubectl" get pod server -o jsonpath='{.status.podIP}')
  log "test: client -> server pod $server_ip:8000"
  "$kubectl" exec client -- python3 -c "import urllib.request as u; r = u.urlopen('http://$server_ip:8000/hostname', timeout=10); print(r.status, r.read().decode().strip())"
  log "test: client -> Service server.default.svc.cluster.local (DNS, kube-proxy)"
  "$kubectl" exec client -- python3 -c "import urllib.request as u; r = u.urlopen('http://server.default.svc.cluster.local/hostname', timeout=10); print(r.status, r.read().decode().strip())"
  "$kubectl" exec client -- sh -c 'echo written > /data/f && cat /data/f'
  log "test: passed"
}

# Everything that needs no docker engine: Go builds and root filesystems.
parts() {
  mkdir -p "$WORK" "$KN"
  kind_dir >/dev/null
  build_kind
  build_crictl
  build_kube_node
  build_kube_control_plane
  build_kindnetd >/dev/null
  go_install local-path-provisioner "$LOCAL_PATH_PROVISIONER_VERSION" github.com/rancher/local-path-provisioner
  local list ref tag
  list=$("$BIN/kube-$KUBE_VERSION/kubeadm" config images list --kubernetes-version "$KUBE_VERSION" 2>/dev/null)
  for ref in $list; do
    tag=${ref##*:}
    case $ref in
    */etcd:*) go_build_etcd "v${tag%-*}" etcd etcdctl ;; # the etcd image's tag (3.6.5-0 -> v3.6.5)
    */coredns:*) go_install coredns "$tag" github.com/coredns/coredns ;;
    */pause:*) build_pause "$tag" ;;
    esac
  done
  rootfs node "$NODE_PACKAGES" >/dev/null
  rootfs slim "$SLIM_PACKAGES" >/dev/null
}

main() {
  case ${1:-build} in
  build) build ;;
  kind-cli) build_kind && echo "$BIN/kind-$KIND_VERSION/kind" ;;
  parts) parts ;;
  print) node_image ;;
  test) cmd_test ;;
  *)
    echo "usage: $0 [build|kind-cli|print|parts|test]" >&2
    exit 2
    ;;
  esac
}

# One line, read whole before it runs: editing this file while it runs does not derail it.
main "$@"; exit $?
